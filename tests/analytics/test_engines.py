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
