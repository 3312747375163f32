"""Every condition type against the hand-computed fixture, invalid rules naming the part."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import ibis
import pytest

from yunying.config import Settings, load_settings
from yunying.errors import YunyingError
from yunying.segments import SegmentSpec, add_tag, create_segment
from yunying.segments.rules import dump_rule, parse_rule
from yunying.segments.service import compiler, evaluate
from yunying.warehouse.engine import Warehouse

from .fixture_data import AS_OF, load

CASES: list[tuple[dict[str, Any], set[str]]] = [
    ({"property": {"field": "channel", "op": "eq", "value": "wechat"}}, {"u1", "u4"}),
    ({"property": {"field": "channel", "op": "in", "value": ["douyin", "baidu"]}}, {"u2", "u5", "u6"}),
    # A missing channel never matches a comparison, not even "not equal".
    ({"property": {"field": "channel", "op": "ne", "value": "wechat"}}, {"u2", "u5", "u6"}),
    ({"property": {"field": "properties.city", "op": "eq", "value": "sh"}}, {"u1"}),
    ({"property": {"field": "age", "op": "gte", "value": 18}}, {"u1", "u6"}),
    ({"property": {"field": "city", "op": "is_not_set"}}, {"u3", "u5", "u6"}),
    ({"first_seen": {"last_days": 30}}, {"u3"}),
    ({"first_seen": {"within": {"start": "2026-05-01", "end": "2026-06-30"}}}, {"u4", "u6"}),
    ({"event": {"name": "view", "times": 2, "within": {"last_days": 30}}}, {"u1", "u5"}),
    ({"event": {"name": "pay", "did": False}}, {"u2", "u4", "u5", "u6"}),
    # Absolute periods are local dates: 08-31 16:30 UTC is 09-01 in Shanghai.
    ({"event": {"name": "share", "within": {"start": "2026-09-01", "end": "2026-09-30"}}}, {"u1"}),
    ({"orders": {"measure": "count", "op": "gte", "value": 2}}, {"u1"}),
    ({"orders": {"measure": "count", "op": "lte", "value": 0}}, {"u4", "u5"}),
    ({"orders": {"measure": "paid_amount", "op": "gte", "value": 100, "within": {"last_days": 30}}}, {"u1", "u3"}),
    ({"orders": {"measure": "count", "op": "eq", "value": 1, "status": ["refunded"]}}, {"u1"}),
    ({"rfm": {"class": "general_value"}}, {"u1"}),
    ({"rfm": {"class": "general_development"}}, {"u2"}),
    ({"rfm": {"class": "important_development"}}, {"u3"}),
    ({"rfm": {"class": "important_winback"}}, {"u6"}),
    ({"rfm": {"class": "important_value"}}, set()),
    ({"lifecycle": {"stage": "new"}}, {"u3"}),
    ({"lifecycle": {"stage": "active"}}, {"u1"}),
    ({"lifecycle": {"stage": "returning"}}, {"u2"}),
    ({"lifecycle": {"stage": "resurrected"}}, {"u5"}),
    ({"lifecycle": {"stage": "dormant"}}, {"u4"}),
    ({"lifecycle": {"stage": "churned"}}, {"u6"}),
    # Calendar weeks (as the lifecycle chart): the week of Mon 10-26 .. Sun 11-01 local.
    ({"lifecycle": {"stage": "resurrected", "grain": "week"}}, {"u5"}),
    ({"lifecycle": {"stage": "dormant", "grain": "week"}}, {"u3"}),
    ({"lifecycle": {"stage": "active", "grain": "month"}}, {"u1"}),  # u2 skipped September
    ({"lifecycle": {"stage": "new", "grain": "month"}}, {"u3"}),
    ({"funnel": {"steps": ["view", "cart", "pay"], "dropped_at": 2, "within": {"last_days": 60}}}, {"u1", "u4", "u5"}),
    ({"funnel": {"steps": ["view", "cart", "pay"], "dropped_at": 3, "within": {"last_days": 60}}}, {"u2"}),
    ({"tag": "vip"}, {"u1", "u3"}),
    ({"segment": "wechat_users"}, {"u1", "u4"}),
    ({"and": [{"property": {"field": "channel", "op": "eq", "value": "wechat"}}, {"not": {"tag": "vip"}}]}, {"u4"}),
    ({"or": [{"lifecycle": {"stage": "new"}}, {"rfm": {"class": "important_winback"}}]}, {"u3", "u6"}),
    ({"not": {"segment": "wechat_users"}}, {"u2", "u3", "u5", "u6"}),
]

# A few of every kind, small enough for the shared Spark session.
# RFM, calendar lifecycle and funnels come from yunying.analytics, tested there on Spark.
ENGINE_CASES = [CASES[i] for i in (4, 10, 13, 22, 32)]


def _prepare(settings: Settings, wh: Warehouse) -> None:
    load(wh)
    add_tag(settings, "vip", ["u1", "u3"])
    spec = SegmentSpec(name="wechat_users", rule={"property": {"field": "channel", "value": "wechat"}})
    create_segment(settings, wh, spec, as_of=AS_OF)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Warehouse]]:
    """One loaded project for all the read-only condition cases."""
    s = load_settings(tmp_path_factory.mktemp("rules"))
    w = Warehouse(s, "duckdb")
    _prepare(s, w)
    yield s, w
    w.close()


@pytest.mark.parametrize(("rule", "expected"), CASES, ids=[str(i) for i in range(len(CASES))])
def test_condition_on_duckdb(prepared: tuple[Settings, Warehouse], rule: dict[str, Any], expected: set[str]) -> None:
    settings, wh = prepared
    assert set(evaluate(settings, wh, parse_rule(rule), AS_OF)) == expected


def test_conditions_on_every_engine(settings: Settings, any_wh: Warehouse) -> None:
    """One query for all cases (a Spark job per case would be slow to schedule)."""
    load(any_wh)
    add_tag(settings, "vip", ["u1", "u3"])
    comp = compiler(settings, any_wh, AS_OF)
    parts = [
        comp.members(parse_rule(rule)).mutate(case=ibis.literal(i)) for i, (rule, _) in enumerate(ENGINE_CASES)
    ]
    df = any_wh.execute(ibis.union(*parts, distinct=False))
    for i, (rule, expected) in enumerate(ENGINE_CASES):
        assert set(df[df["case"] == i]["user_id"]) == expected, rule


def test_rule_round_trips() -> None:
    for rule, _ in CASES:
        assert dump_rule(parse_rule(dump_rule(parse_rule(rule)))) == dump_rule(parse_rule(rule))


@pytest.mark.parametrize(
    ("rule", "path"),
    [
        ("everyone", "rule"),
        ({"and": [{"channel": "x"}]}, "rule.and[0]"),
        ({"or": []}, "rule.or"),
        ({"and": [{"tag": "vip"}, {"event": {"name": "pay", "times": 0}}]}, "rule.and[1].event.times"),
        ({"not": {"event": {"name": "pay", "nme": "x"}}}, "rule.not.event.nme"),
        ({"event": {"name": "x", "within": {"last_days": 5, "start": "2026-01-01"}}}, "rule.event.within"),
        ({"property": {"field": "city", "op": "in", "value": "sh"}}, "rule.property"),
        ({"property": {"field": "bad key!", "value": "x"}}, "rule.property"),
        ({"rfm": {"class": "vip"}}, "rule.rfm.class"),
        ({"lifecycle": {"stage": "sleeping"}}, "rule.lifecycle.stage"),
        ({"lifecycle": {"stage": "churned", "grain": "week"}}, "rule.lifecycle"),
        ({"funnel": {"steps": ["a", "b"], "dropped_at": 3}}, "rule.funnel"),
        ({"orders": {"measure": "gmv", "value": 1}}, "rule.orders.measure"),
        ({"or": [{"tag": "ok"}, {"not": {"tag": "has space"}}]}, "rule.or[1].not.tag"),
    ],
)
def test_invalid_rules_name_the_part(rule: Any, path: str) -> None:
    with pytest.raises(YunyingError) as e:
        parse_rule(rule)
    assert e.value.key == "segment.rule_invalid"
    assert e.value.params["path"] == path
    assert f"at {path}:" in e.value.message("en")


def test_unknown_segment_and_cycles_name_the_part(settings: Settings, wh: Warehouse) -> None:
    load(wh)
    with pytest.raises(YunyingError) as e:
        evaluate(settings, wh, parse_rule({"and": [{"tag": "t"}, {"segment": "nope"}]}), AS_OF)
    assert e.value.params["path"] == "rule.and[1].segment"
    create_segment(settings, wh, SegmentSpec(name="a", rule={"tag": "t"}), as_of=AS_OF)
    create_segment(settings, wh, SegmentSpec(name="b", rule={"segment": "a"}), as_of=AS_OF)
    with pytest.raises(YunyingError) as e:
        create_segment(settings, wh, SegmentSpec(name="c", rule={"segment": "c"}), as_of=AS_OF)
    assert e.value.key == "segment.cycle"
