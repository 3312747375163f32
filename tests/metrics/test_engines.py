"""The same metrics give the same answers on DuckDB and Spark (kept small: Spark jobs are slow)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.metrics import data
from yunying.config import Settings
from yunying.metrics import compute, load_registry
from yunying.metrics.spec import LIBRARIES
from yunying.warehouse.engine import Warehouse


def test_library_metrics_on_every_engine(any_wh: Warehouse, settings: Settings) -> None:
    reg = load_registry(settings, list(LIBRARIES))
    data.shop(any_wh)
    data.saas(any_wh)
    # One of each main computation path: batched simple, ratio, conversion, subscription.
    names = ["gmv", "conversion_rate", "repurchase_rate", "mrr", "nrr"]
    res = compute(any_wh, reg, names, "total", dt.date(2026, 10, 1), dt.date(2026, 10, 7), use_cache=False)
    got = {s.name: s.total() for s in res.series}
    assert got == pytest.approx({
        "gmv": 420.0, "conversion_rate": 0.75, "repurchase_rate": 1 / 3,
        # On 7 October: a1 100, a2 200, a3 80, a4 300 (a5 returns on the 12th); start 600.
        "mrr": 680.0, "nrr": 1.0,
    })
    by = compute(any_wh, reg, ["gmv"], "total", dt.date(2026, 10, 1), dt.date(2026, 10, 7),
                 by="channel", use_cache=False)
    assert {p.dim: p.value for p in by.get("gmv").points} == {"organic": 220.0, "sem": 200.0}
