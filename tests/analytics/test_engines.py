"""The same analyses give the same hand-computed answers on DuckDB and on Spark (local)."""

from __future__ import annotations

from tests.analytics._data import load
from yunying.analytics.common import DateRange, PropertyFilter
from yunying.analytics.funnels import FunnelQuery, FunnelStep, run_funnel
from yunying.analytics.lifecycle import LifecycleQuery, run_lifecycle
from yunying.analytics.retention import RetentionQuery, run_retention
from yunying.analytics.stickiness import StickinessQuery, run_stickiness
from yunying.analytics.trends import TrendsQuery, run_trends
from yunying.warehouse.engine import Warehouse


def dr(a: str, b: str) -> DateRange:
    return DateRange(**{"from": a, "to": b})


def test_every_analysis_on_every_engine(any_wh: Warehouse) -> None:
    wh = load(any_wh)
    f = run_funnel(
        wh,
        FunnelQuery(
            steps=[
                FunnelStep(event="view"),
                FunnelStep(event="cart"),
                FunnelStep(event="pay", filters=[PropertyFilter(property="revenue", operator="gt", value=1)]),
            ],
            dates=dr("2024-03-04", "2024-03-10"),
            time_to_convert=False,
        ),
    )
    assert [s.users for s in f.steps] == [6, 5, 2]
    tr = run_trends(
        wh, TrendsQuery(event="pay", measure="sum", property="revenue", dates=dr("2024-03-04", "2024-03-07"))
    )
    assert [p.value for p in tr.series[0].points] == [0, 100.5, 0, 7]
    r = run_retention(
        wh, RetentionQuery(start_event="view", periods=3, dates=dr("2024-03-04", "2024-03-05"))
    )
    assert [c.retained for c in r.cohorts] == [[4, 1, 1, 0], [1, 0, 0, 0]]
    lc = run_lifecycle(wh, LifecycleQuery(grain="day", dates=dr("2024-03-04", "2024-03-06")))
    assert [(p.new, p.returning, p.resurrecting, p.dormant) for p in lc.periods] == [
        (5, 0, 0, 0), (1, 1, 0, -4), (0, 0, 1, -2)
    ]
    st = run_stickiness(wh, StickinessQuery(dates=dr("2024-03-04", "2024-03-10")))
    assert st.distribution[:3] == [4, 3, 0]


def test_funnel_breakdown_value_of_the_first_start_on_every_engine(any_wh: Warehouse) -> None:
    """A user's breakdown value is the one on their first step-1 event; two at the same
    instant go to the lower event id (DuckDB's ordered aggregate, Spark's window)."""
    from datetime import datetime

    from yunying.analytics.common import Breakdown

    t = datetime(2024, 3, 4, 9)
    rows = [
        ("a", "view", t, {"ch": "ads"}), ("a", "view", t, {"ch": "seo"}),  # tie: e00000 wins
        ("a", "pay", t.replace(hour=10), None),
        ("b", "view", t.replace(hour=8), {"ch": "seo"}), ("b", "view", t, {"ch": "ads"}),
        ("c", "view", t, None),  # no value: (none)
    ]
    load(any_wh, rows)
    f = run_funnel(
        any_wh,
        FunnelQuery(
            steps=[FunnelStep(event="view"), FunnelStep(event="pay")],
            dates=dr("2024-03-04", "2024-03-04"),
            breakdown=Breakdown(property="ch"),
            interval="day",
        ),
    )
    got = {g.value: [s.users for s in g.steps] for g in f.groups}
    assert got == {"ads": [1, 1], "seo": [1, 0], "(none)": [1, 0]}
    assert [(p.entered, p.converted) for p in f.over_time] == [(3, 1)]
