"""Each metric type, grains, breakdowns, time zones and the cache."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.metrics import data
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.metrics import compute
from yunying.metrics.compute import local_ts, periods
from yunying.metrics.spec import Registry, registry_from_texts
from yunying.warehouse.engine import Warehouse

SPECS = """\
metrics:
  - name: views
    label: {zh: 浏览, en: Views}
    type: simple
    table: events
    agg: count
    where: {event: view}
    dimensions: [channel, properties.platform]
  - name: visitors
    label: {zh: 访客, en: Visitors}
    type: simple
    table: events
    agg: count_distinct
    column: user_id
    dimensions: [channel, properties.platform]
  - name: views_per_visitor
    label: {zh: 人均浏览, en: Views per visitor}
    type: ratio
    numerator: views
    denominator: visitors
  - name: double_views
    label: {zh: 双倍, en: Double}
    type: derived
    formula: (views + views) / 2 * 2 - 0
  - name: views_running
    label: {zh: 累计浏览, en: Running views}
    type: cumulative
    base: views
    window: running
  - name: views_wtd
    label: {zh: 周累计, en: Week to date}
    type: cumulative
    base: views
    window: wtd
  - name: paid_amount_max
    label: {zh: 最大订单, en: Largest order}
    type: simple
    table: orders
    agg: max
    column: amount
    where: {status: {ne: cancelled}}
  - name: cheap_orders
    label: {zh: 小额订单, en: Small orders}
    type: simple
    table: orders
    agg: count
    where: {amount: {lt: 80}, status: {in: [paid, refunded]}}
  - name: view_to_order
    label: {zh: 浏览到下单, en: View to order}
    type: conversion
    from: {table: events, where: {event: view}}
    to: {table: orders, where: {status: [paid, refunded]}}
    within_days: 1
    after_days: -1
    dimensions: [channel]
"""


@pytest.fixture
def reg() -> Registry:
    return registry_from_texts({"m.yaml": SPECS})


D1, D7 = dt.date(2026, 10, 1), dt.date(2026, 10, 7)


def test_simple_with_filters_and_aggregations(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    res = compute(wh, reg, ["views", "visitors", "paid_amount_max", "cheap_orders"], "total", D1, D7)
    assert res.get("views").total() == 7
    assert res.get("visitors").total() == 4
    assert res.get("paid_amount_max").total() == 200.0
    assert res.get("cheap_orders").total() == 2  # o2 (50) and o5 (70); o4 is cancelled


def test_ratio_is_computed_on_sums_not_averaged(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    daily = compute(wh, reg, ["views_per_visitor"], "day", D1, dt.date(2026, 10, 2))
    assert [p.value for p in daily.get("views_per_visitor").points] == [4 / 3, 3 / 2]
    total = compute(wh, reg, ["views_per_visitor"], "total", D1, dt.date(2026, 10, 2))
    # 7 views / 4 distinct visitors, not the mean of the daily ratios (1.4167).
    assert total.get("views_per_visitor").total() == pytest.approx(7 / 4)


def test_derived_and_cumulative(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    res = compute(wh, reg, ["views", "double_views", "views_running", "views_wtd"], "day", dt.date(2026, 10, 4), dt.date(2026, 10, 8))
    assert [p.value for p in res.get("views").points] == [0, 0, 0, 0, 1]
    assert [p.value for p in res.get("double_views").points] == [0, 0, 0, 0, 2]
    # Views before the range: 7 in October plus u5's and u6's earlier views.
    assert [p.value for p in res.get("views_running").points] == [9, 9, 9, 9, 10]
    # Week to date resets on Monday 2026-10-05.
    assert [p.value for p in res.get("views_wtd").points] == [0, 0, 0, 0, 1]


def test_conversion_with_a_window(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    res = compute(wh, reg, ["view_to_order"], "total", D1, D7, by="channel")
    got = {p.dim: p.value for p in res.get("view_to_order").points}
    # organic: u1 (order same day) and u3 (same day) → 2/2; sem: u2 ordered, u4 only a cancelled order → 1/2.
    assert got == {"organic": 1.0, "sem": 0.5}


def test_breakdown_by_json_property_and_joined_column(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    res = compute(wh, reg, ["views"], "total", D1, D7, by="properties.platform")
    assert {p.dim: p.value for p in res.get("views").points} == {"android": 3.0, "ios": 4.0}
    res = compute(wh, reg, ["views", "views_per_visitor"], "total", D1, D7, by="channel")
    assert {p.dim: p.value for p in res.get("views_per_visitor").points} == {"organic": 5 / 2, "sem": 2 / 2}


def test_week_and_month_grains(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    res = compute(wh, reg, ["views"], "week", D1, dt.date(2026, 10, 14))
    assert [(p.period, p.value) for p in res.get("views").points] == [
        (dt.date(2026, 9, 28), 7.0), (dt.date(2026, 10, 5), 1.0), (dt.date(2026, 10, 12), 0.0)
    ]
    res = compute(wh, reg, ["views"], "month", dt.date(2026, 9, 1), D7)
    assert [(p.period, p.value) for p in res.get("views").points] == [
        (dt.date(2026, 9, 1), 1.0), (dt.date(2026, 10, 1), 7.0)
    ]


def test_days_follow_the_project_time_zone(wh: Warehouse, reg: Registry) -> None:
    # 17:00 UTC on 1 October is 01:00 on 2 October in Shanghai.
    data.load(wh, "events", [{"event": "view", "user_id": "x", "ts": dt.datetime(2026, 10, 1, 17)}])
    res = compute(wh, reg, ["views"], "day", D1, dt.date(2026, 10, 2))
    assert [p.value for p in res.get("views").points] == [0, 1]


def test_dst_offsets_are_exact(settings: Settings) -> None:
    import ibis

    expr = local_ts(ibis.literal(dt.datetime(2026, 3, 29, 0, 30)), "Europe/Berlin",
                    dt.datetime(2026, 3, 1), dt.datetime(2026, 4, 30))
    later = local_ts(ibis.literal(dt.datetime(2026, 3, 29, 1, 30)), "Europe/Berlin",
                     dt.datetime(2026, 3, 1), dt.datetime(2026, 4, 30))
    assert ibis.duckdb.connect().execute(expr) == dt.datetime(2026, 3, 29, 1, 30)
    assert ibis.duckdb.connect().execute(later) == dt.datetime(2026, 3, 29, 3, 30)
    assert len(periods(dt.date(2026, 1, 31), dt.date(2026, 3, 1), "month")) == 3


def test_cache_hits_and_is_invalidated_by_new_data(wh: Warehouse, reg: Registry, settings: Settings) -> None:
    data.shop(wh)
    first = compute(wh, reg, ["views"], "total", D1, D7)
    again = compute(wh, reg, ["views"], "total", D1, D7)
    assert not first.cached and again.cached and again.get("views").total() == 7
    assert list((settings.data_dir / "cache" / "metrics").glob("*.json"))
    data.load(wh, "events", [{"event": "view", "user_id": "x", "ts": data.ts(3)}])
    fresh = compute(wh, reg, ["views"], "total", D1, D7)
    assert not fresh.cached and fresh.get("views").total() == 8
    # A changed spec is a different cache entry too.
    reg2 = registry_from_texts({"m.yaml": SPECS.replace("where: {event: view}", "where: {event: pay}", 1)})
    assert compute(wh, reg2, ["views"], "total", D1, D7).get("views").total() == 0


def test_request_errors(wh: Warehouse, reg: Registry) -> None:
    with pytest.raises(YunyingError, match="Unknown metric 'nope'"):
        compute(wh, reg, ["nope"], "day", D1, D7)
    with pytest.raises(YunyingError) as e:
        compute(wh, reg, ["paid_amount_max"], "day", D1, D7, by="channel")
    assert "cannot be broken down by 'channel'" in e.value.message("en")
    with pytest.raises(YunyingError) as e:
        compute(wh, reg, ["views"], "day", D7, D1)
    assert e.value.key == "metrics.bad_range"
    with pytest.raises(YunyingError) as e:
        compute(wh, reg, ["views"], "year", D1, D7)
    assert e.value.key == "metrics.bad_grain"


def test_rows_for_table_and_csv(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    res = compute(wh, reg, ["views", "views_per_visitor"], "day", D1, dt.date(2026, 10, 2), by="channel")
    headers, rows = res.to_rows()
    assert headers == ["Period", "channel", "Views", "Views per visitor"]
    assert rows[0] == ["2026-10-01", "organic", "2", "2"]
