"""The same metrics give the same answers on DuckDB and Spark (kept small: Spark jobs are slow)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.metrics import data
from yunying.config import Settings
from yunying.metrics import compute, load_registry
from yunying.metrics.spec import LIBRARIES
from yunying.warehouse.engine import Warehouse

OCT1, OCT7 = dt.date(2026, 10, 1), dt.date(2026, 10, 7)


def test_library_metrics_on_every_engine(any_wh: Warehouse, settings: Settings) -> None:
    reg = load_registry(settings, list(LIBRARIES))
    data.shop(any_wh)
    data.saas(any_wh)
    # Batched simple metrics with a joined breakdown, a ratio and a conversion (semi-join).
    res = compute(any_wh, reg, ["gmv", "conversion_rate", "repurchase_rate"], "total", OCT1, OCT7,
                  by="channel", use_cache=False)
    got = {s.name: {p.dim: p.value for p in s.points} for s in res.series}
    assert got == {
        "gmv": {"organic": 220.0, "sem": 200.0},
        "conversion_rate": {"organic": 1.0, "sem": 0.5},
        "repurchase_rate": {"organic": 0.5, "sem": 0.0},
    }
    # Subscription movements (a calendar cross join) and a formula over them.
    saas = compute(any_wh, reg, ["mrr", "nrr"], "total", OCT1, OCT7, use_cache=False)
    # On 7 October: a1 100, a2 200, a3 80, a4 300 (a5 returns on the 12th); start 600.
    assert saas.get("mrr").total() == pytest.approx(680.0)
    assert saas.get("nrr").total() == pytest.approx(1.0)
