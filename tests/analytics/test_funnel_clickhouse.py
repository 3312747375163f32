"""The default funnel equals ClickHouse ``windowFunnel`` (chdb, in-process) on generated data.

Timestamps sit on an hourly grid so ties, repeated step events and events exactly on the
window bound are common; the window is a whole number of hours.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import chdb
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.analytics._data import load
from tests.support.fuzz import examples
from yunying.analytics.common import DateRange
from yunying.analytics.funnels import FunnelQuery, FunnelStep, run_funnel
from yunying.config import load_settings
from yunying.warehouse.engine import Warehouse

T0 = datetime(2024, 1, 1)
EVENTS = ["a", "b", "c", "x"]
STEPS = ["a", "b", "c", "a"]  # a repeated step event on purpose

event_st = st.tuples(
    st.integers(0, 7), st.sampled_from(EVENTS), st.integers(0, 24 * 12)
)


def clickhouse_levels(rows: list[tuple[int, str, int]], window_h: int, steps: list[str],
                      end_h: int) -> list[int]:
    df = pd.DataFrame(  # noqa: F841 - read by name by chdb: Python(df)
        {
            "user_id": [f"u{u}" for u, _, _ in rows],
            "event": [e for _, e, _ in rows],
            "ts": [T0 + timedelta(hours=h) for _, _, h in rows],
        }
    )
    end = T0 + timedelta(hours=end_h)
    conds = [f"event = '{steps[0]}' AND ts < '{end}'"] + [f"event = '{s}'" for s in steps[1:]]
    sql = (
        f"SELECT level, count() AS n FROM (SELECT user_id, windowFunnel({window_h * 3600})("
        f"toDateTime(ts), {', '.join(conds)}) AS level FROM Python(df) "
        f"WHERE ts >= '{T0}' AND ts <= '{end + timedelta(hours=window_h)}' GROUP BY user_id) "
        "GROUP BY level"
    )
    out = chdb.query(sql, "DataFrame")
    per = {int(r.level): int(r.n) for r in out.itertuples()}
    return [sum(c for lv, c in per.items() if lv >= k) for k in range(1, len(steps) + 1)]


@pytest.fixture(scope="module")
def utc_wh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    w = Warehouse(load_settings(tmp_path_factory.mktemp("ch"), timezone="UTC"), "duckdb")
    yield w
    w.close()


@settings(max_examples=examples(25), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rows=st.lists(event_st, min_size=1, max_size=60),
    window_h=st.sampled_from([0, 1, 6, 24, 48]),
    n_steps=st.integers(2, 4),
)
def test_equals_clickhouse_windowfunnel(
    utc_wh: Warehouse, rows: list[tuple[int, str, int]], window_h: int, n_steps: int
) -> None:
    steps = STEPS[:n_steps]
    wh = utc_wh
    wh.truncate("events")
    load(wh, [(f"u{u}", e, T0 + timedelta(hours=h), None) for u, e, h in rows])
    q = FunnelQuery(
        steps=[FunnelStep(event=e) for e in steps],
        dates=DateRange(**{"from": "2024-01-01", "to": "2024-01-08"}),
        window_seconds=window_h * 3600,
        time_to_convert=False,
    )
    got = [x.users for x in run_funnel(wh, q).steps]
    want = clickhouse_levels(rows, window_h, steps, end_h=8 * 24)
    assert got == want
    # property: each step has no more users than the one before
    assert all(a >= b for a, b in zip(got, got[1:], strict=False))
