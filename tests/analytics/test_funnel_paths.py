"""The DuckDB fast path of the ordered funnel equals the generic Ibis path (the one Spark
runs) per user: same level, same time to convert — on generated data with ties, repeated
step events, step filters and events exactly on the window bound."""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.analytics._data import load
from tests.support.fuzz import examples
from yunying.analytics.common import DateRange, PropertyFilter
from yunying.analytics.funnels import FunnelQuery, FunnelStep, funnel_levels, run_funnel
from yunying.config import load_settings
from yunying.warehouse.engine import Warehouse

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import analytics_bench as bench  # noqa: E402

T0 = datetime(2024, 1, 1)
EVENTS = ["a", "b", "c", "x"]

event_st = st.tuples(
    st.integers(0, 6),
    st.sampled_from(EVENTS),
    st.integers(0, 24 * 10),
    st.integers(0, 59),  # seconds: whole-hour ties are common, sub-hour times too
    st.sampled_from(["ads", "organic"]),
)


@pytest.fixture(scope="module")
def utc_wh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    w = Warehouse(load_settings(tmp_path_factory.mktemp("paths"), timezone="UTC"), "duckdb")
    yield w
    w.close()


def per_user(wh: Warehouse, q: FunnelQuery, fast: bool) -> dict[str, tuple[int, float | None]]:
    df = wh.execute(funnel_levels(wh, q, fast=fast))
    out: dict[str, tuple[int, float | None]] = {}
    for r in df.itertuples():
        ttc = None if r.ttc_seconds is None or math.isnan(r.ttc_seconds) else float(r.ttc_seconds)
        out[str(r.user_id)] = (int(r.level), ttc)
    return out


@settings(max_examples=examples(40), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rows=st.lists(event_st, min_size=0, max_size=80),
    steps=st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=5),
    window_h=st.sampled_from([0, 1, 6, 24, 72]),
    step_filter=st.booleans(),
)
def test_fast_path_equals_generic(
    utc_wh: Warehouse,
    rows: list[tuple[int, str, int, int, str]],
    steps: list[str],
    window_h: int,
    step_filter: bool,
) -> None:
    wh = utc_wh
    wh.truncate("events")
    if rows:
        load(
            wh,
            [
                (f"u{u}", e, T0 + timedelta(hours=h, seconds=s), {"channel": ch})
                for u, e, h, s, ch in rows
            ],
        )
    fs = [FunnelStep(event=e) for e in steps]
    if step_filter:  # a filtered step: steps no longer map one event name to one step
        fs[1] = FunnelStep(event=steps[1], filters=[PropertyFilter(property="channel", operator="eq", value="ads")])
    q = FunnelQuery(
        steps=fs,
        dates=DateRange(**{"from": "2024-01-01", "to": "2024-01-07"}),
        window_seconds=window_h * 3600,
    )
    generic = per_user(wh, q, fast=False)
    fast = per_user(wh, q, fast=True)
    assert fast.keys() == generic.keys()
    for u, (lv, ttc) in generic.items():
        assert fast[u][0] == lv, u
        if ttc is None:
            assert fast[u][1] is None, u
        else:
            assert fast[u][1] == pytest.approx(ttc, abs=1e-6), u
    # run_funnel (fast path) counts = counts from the generic levels
    n = len(steps)
    want = [sum(1 for lv, _ in generic.values() if lv >= k) for k in range(1, n + 1)]
    assert [s.users for s in run_funnel(wh, q).steps] == want


def test_fast_path_on_benchmark_data(utc_wh: Warehouse) -> None:
    """The benchmark's generator (skewed users, sessions through the shop funnel)."""
    wh = utc_wh
    wh.truncate("events")
    wh.append_arrow("events", bench.generate(20_000))
    wh.refresh()
    q = bench.funnel_query().model_copy(update={"time_to_convert": True})
    generic = per_user(wh, q, fast=False)
    fast = per_user(wh, q, fast=True)
    assert {u: v[0] for u, v in fast.items()} == {u: v[0] for u, v in generic.items()}
    assert max(v[0] for v in fast.values()) == len(q.steps)
    for u, (_, ttc) in generic.items():
        assert (fast[u][1] is None) == (ttc is None)
        if ttc is not None:
            assert fast[u][1] == pytest.approx(ttc, abs=1e-6)
