"""Retention on DuckDB (matrix and D1/D7/D30 in one pass, ``_cells_and_hits``) equals the
generic path (``_cells`` + ``_summary``, the one Spark runs) on generated data."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from yunying.analytics.common import DateRange
from yunying.analytics.retention import (
    RetentionQuery,
    _cells,
    _cells_and_hits,
    _matched,
    _summary,
    run_retention,
)
from yunying.config import load_settings
from yunying.warehouse.engine import Warehouse

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import analytics_bench as bench  # noqa: E402


@pytest.fixture(scope="module", params=["UTC", "Asia/Shanghai"])
def gen_wh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    w = Warehouse(load_settings(tmp_path_factory.mktemp("ret"), timezone=request.param), "duckdb")
    w.append_arrow("events", bench.generate(30_000, seed=11))
    w.refresh()
    yield w
    w.close()


@pytest.mark.parametrize(
    ("cohort", "period", "periods", "method"),
    [
        ("first_in_range", "week", 12, "classic"),
        ("first_ever", "day", 40, "classic"),
        ("recurring", "day", 10, "rolling"),
        ("first_in_range", "month", 2, "rolling"),
        ("recurring", "week", 5, "classic"),
    ],
)
def test_one_pass_equals_generic(
    gen_wh: Warehouse, cohort: str, period: str, periods: int, method: str
) -> None:
    wh = gen_wh
    q = RetentionQuery(
        start_event="search",
        return_event="add_to_cart",
        cohort=cohort,  # type: ignore[arg-type]
        period=period,  # type: ignore[arg-type]
        periods=periods,
        method=method,  # type: ignore[arg-type]
        dates=DateRange(**{"from": date(2024, 1, 3), "to": date(2024, 1, 3) + timedelta(days=50)}),
    )
    c, j = _matched(wh, q)
    sizes = wh.execute(c.group_by(["c", "cday"]).aggregate(size=c.count()))
    last_day = int(sizes["cday"].max()) + 20  # some cohorts' day 30 not observable
    generic = {
        (int(r.c), int(r.n)): int(r.users) for r in wh.execute(_cells(q, j)).itertuples()
    }
    cells, hits = _cells_and_hits(wh, q, j, last_day)
    fast = {(int(r.c), int(r.n)): int(r.users) for r in cells.itertuples() if r.users}
    assert fast == {k: v for k, v in generic.items() if v}
    assert sum(generic.values()) > 0
    want = _summary(wh, q, sizes, j, last_day)
    got = _summary(wh, q, sizes, j, last_day, hits)
    assert got == want
    assert any(s.retained for s in want)
    # the runner (one-pass path) agrees with itself on totals
    r = run_retention(wh, q)
    assert sum(cc.size for cc in r.cohorts) == int(sizes["size"].sum())
