"""Trends, retention, lifecycle and stickiness on the hand-made events (Asia/Shanghai)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analytics._data import load
from yunying.analytics.common import DateRange, PropertyFilter
from yunying.analytics.lifecycle import LifecycleQuery, export_lifecycle_users, run_lifecycle
from yunying.analytics.retention import RetentionQuery, export_retention_users, run_retention
from yunying.analytics.stickiness import StickinessQuery, run_stickiness
from yunying.analytics.trends import TrendsQuery, run_trends
from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse


def dr(a: str, b: str) -> DateRange:
    return DateRange(**{"from": a, "to": b})


def values(r: object, group: int = 0) -> list[float | None]:
    return [p.value for p in r.series[group].points]  # type: ignore[attr-defined]


def test_trends_by_hand(wh: Warehouse) -> None:
    load(wh)
    r = run_trends(wh, TrendsQuery(event="view", dates=dr("2024-03-04", "2024-03-06")))
    assert [p.period for p in r.series[0].points] == ["2024-03-04", "2024-03-05", "2024-03-06"]
    assert values(r) == [4, 1, 0]
    assert r.series[0].total == 5
    # revenue on pay, local days: u1's pay is local 03-05 09:00, u5's local 03-07 01:00
    rev = run_trends(
        wh, TrendsQuery(event="pay", measure="sum", property="revenue", dates=dr("2024-03-04", "2024-03-07"))
    )
    assert values(rev) == [0, 100.5, 0, 7]
    p50 = run_trends(
        wh, TrendsQuery(event="pay", measure="p50", property="revenue", dates=dr("2024-03-04", "2024-03-07"))
    )
    assert p50.series[0].total == pytest.approx(53.75)
    users = run_trends(wh, TrendsQuery(measure="users", grain="week", dates=dr("2024-03-04", "2024-03-10")))
    assert values(users) == [7]
    bd = run_trends(
        wh, TrendsQuery(event="view", dates=dr("2024-03-04", "2024-03-05"), breakdown={"property": "channel", "limit": 2})
    )
    # top 2 by users: ads (u1, u2) and no channel (u6, u7); organic (u3) becomes other
    assert {s.group: values(bd, i) for i, s in enumerate(bd.series)} == {
        "(none)": [2, 0], "ads": [2, 0], "(other)": [0, 1]
    }
    filt = run_trends(
        wh,
        TrendsQuery(
            dates=dr("2024-03-04", "2024-03-24"), grain="month",
            filters=[PropertyFilter(property="revenue", operator="gte", value=20)],
        ),
    )
    assert values(filt) == [3]


def test_active_users(wh: Warehouse) -> None:
    load(wh)
    dau = run_trends(wh, TrendsQuery(measure="dau", dates=dr("2024-03-04", "2024-03-06")))
    assert values(dau) == [5, 2, 1]
    wau = run_trends(wh, TrendsQuery(measure="wau", dates=dr("2024-03-06", "2024-03-06")))
    assert values(wau) == [6]
    with pytest.raises(ValueError):
        TrendsQuery(measure="dau", grain="week", dates=dr("2024-03-04", "2024-03-06"))
    with pytest.raises(ValueError):
        TrendsQuery(measure="sum", dates=dr("2024-03-04", "2024-03-06"))


def test_retention_by_hand(wh: Warehouse, tmp_path: Path) -> None:
    load(wh)
    q = RetentionQuery(start_event="view", period="day", periods=3, dates=dr("2024-03-04", "2024-03-05"))
    r = run_retention(wh, q)
    assert [(c.cohort, c.size, c.retained) for c in r.cohorts] == [
        ("2024-03-04", 4, [4, 1, 1, 0]),
        ("2024-03-05", 1, [1, 0, 0, 0]),
    ]
    assert r.total.retained == [5, 1, 1, 0]
    d1 = r.summary[0]
    assert (d1.day, d1.users, d1.retained) == (1, 5, 1)
    assert r.summary[1].retained == 0
    assert r.summary[2].rate is None  # day 30 is not observable yet
    rolling = run_retention(wh, q.model_copy(update={"method": "rolling"}))
    assert [c.retained for c in rolling.cohorts] == [[4, 2, 1, 1], [1, 1, 1, 1]]
    out = tmp_path / "kept.csv"
    assert export_retention_users(wh, q, "2024-03-04", 1, str(out), retained=False) == 3
    assert out.read_text().split() == ["user_id", "u2", "u6", "u7"]
    with pytest.raises(YunyingError):
        export_retention_users(wh, q, "2024-01-01", 1, str(out))


def test_retention_recurring_weekly(wh: Warehouse) -> None:
    load(wh)
    q = RetentionQuery(
        start_event="view", return_event="pay", cohort="recurring", period="week", periods=2,
        dates=dr("2024-03-04", "2024-03-17"),
    )
    r = run_retention(wh, q)
    # week of 03-04: u1,u2,u3,u5,u6,u7 viewed; paid that week: u1, u5; in the week of
    # 03-18: u2 (03-20) and u3 (local 03-24 08:00)
    # week of 03-11: nobody viewed (u3's 2nd view is local 03-10, a Sunday)
    assert [(c.cohort, c.size, c.retained) for c in r.cohorts] == [("2024-03-04", 6, [2, 0, 2])]


def test_lifecycle_by_hand(wh: Warehouse, tmp_path: Path) -> None:
    load(wh)
    q = LifecycleQuery(grain="day", dates=dr("2024-03-04", "2024-03-06"))
    r = run_lifecycle(wh, q)
    got = [(p.period, p.new, p.returning, p.resurrecting, p.dormant) for p in r.periods]
    assert got == [
        ("2024-03-04", 5, 0, 0, 0),
        ("2024-03-05", 1, 1, 0, -4),
        ("2024-03-06", 0, 0, 1, -2),
    ]
    out = tmp_path / "dormant.csv"
    assert export_lifecycle_users(wh, q, "2024-03-05", "dormant", str(out)) == 4
    assert out.read_text().split() == ["user_id", "u2", "u4", "u6", "u7"]
    with pytest.raises(YunyingError):
        export_lifecycle_users(wh, q, "2024-03-05", "zombie", str(out))


def test_stickiness_by_hand(wh: Warehouse) -> None:
    load(wh)
    r = run_stickiness(wh, StickinessQuery(dates=dr("2024-03-04", "2024-03-10")))
    assert r.distribution == [4, 3, 0, 0, 0, 0, 0]
    assert r.average_days == pytest.approx(10 / 7)
    # 03-05..03-10 holds no whole week
    with pytest.raises(YunyingError):
        run_stickiness(wh, StickinessQuery(dates=dr("2024-03-05", "2024-03-10")))
