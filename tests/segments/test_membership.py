"""Membership across refreshes, static snapshots, schedules, export, tags."""

from __future__ import annotations

import csv
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.segments import (
    SegmentSpec,
    add_tag,
    create_segment,
    export_members,
    history,
    is_member,
    list_segments,
    list_tags,
    load_spec,
    members,
    refresh,
    refresh_due,
    remove_tag,
)
from yunying.segments.tags import read_user_csv
from yunying.warehouse.engine import Warehouse

from .fixture_data import AS_OF, append_events, load

VIEWED_30D = {"event": {"name": "view", "within": {"last_days": 30}}}
T0 = datetime(2026, 11, 1, 8, 0)


def test_history_across_refreshes(settings: Settings, wh: Warehouse) -> None:
    load(wh)
    spec = SegmentSpec(name="viewers", rule=VIEWED_30D)
    first = create_segment(settings, wh, spec, as_of=AS_OF, now=T0)
    assert (first.size, first.joined, first.left) == (4, 4, 0)
    assert members(settings, "viewers") == ["u1", "u2", "u3", "u5"]
    # Twenty days later the 30-day window is [10-21, 11-20): u6 viewed on 11-05.
    t1 = T0 + timedelta(days=20)
    second = refresh(settings, wh, "viewers", as_of=datetime(2026, 11, 20), now=t1)
    assert (second.size, second.joined, second.left) == (3, 1, 2)
    assert members(settings, "viewers") == ["u3", "u5", "u6"]
    assert is_member(settings, "viewers", "u6") and not is_member(settings, "viewers", "u1")
    # Nothing changed: a refresh records nothing new.
    third = refresh(settings, wh, "viewers", as_of=datetime(2026, 11, 20), now=t1 + timedelta(hours=1))
    assert (third.joined, third.left) == (0, 0)
    h = history(settings, "viewers", "u1").entries
    assert [(e.change, e.at) for e in h] == [("joined", T0), ("left", t1)]
    assert [(e.change, e.at) for e in history(settings, "viewers", "u6").entries] == [("joined", t1)]
    assert len(history(settings, "viewers").entries) == 7


def test_static_snapshot_is_frozen(settings: Settings, wh: Warehouse) -> None:
    load(wh)
    spec = SegmentSpec(name="snap", kind="static", rule=VIEWED_30D)
    create_segment(settings, wh, spec, as_of=AS_OF)
    append_events(wh, [("u4", "view", datetime(2026, 10, 29)), ("u6", "view", datetime(2026, 10, 29))], "late")
    with pytest.raises(YunyingError) as e:
        refresh(settings, wh, "snap", as_of=AS_OF)
    assert e.value.key == "segment.static_frozen"
    assert members(settings, "snap") == ["u1", "u2", "u3", "u5"]
    # A segment referring to the static one sees the frozen members, a dynamic one the live rule.
    create_segment(settings, wh, SegmentSpec(name="live", rule=VIEWED_30D), as_of=AS_OF)
    create_segment(settings, wh, SegmentSpec(name="in_snap", rule={"segment": "snap"}), as_of=AS_OF)
    create_segment(settings, wh, SegmentSpec(name="in_live", rule={"segment": "live"}), as_of=AS_OF)
    assert members(settings, "in_snap") == ["u1", "u2", "u3", "u5"]
    assert members(settings, "in_live") == ["u1", "u2", "u3", "u4", "u5", "u6"]
    with pytest.raises(YunyingError) as e:
        create_segment(settings, wh, SegmentSpec(name="bad", kind="static", refresh_every_minutes=5, rule=VIEWED_30D))
    assert e.value.key == "segment.static_schedule"


def test_refresh_due_only_when_interval_passed(settings: Settings, wh: Warehouse) -> None:
    load(wh)
    create_segment(settings, wh, SegmentSpec(name="hourly", refresh_every_minutes=60, rule=VIEWED_30D), as_of=AS_OF, now=T0)
    create_segment(settings, wh, SegmentSpec(name="manual", rule=VIEWED_30D), as_of=AS_OF, now=T0)
    assert refresh_due(settings, wh, now=T0 + timedelta(minutes=59), as_of=AS_OF).results == []
    due = refresh_due(settings, wh, now=T0 + timedelta(minutes=60), as_of=AS_OF).results
    assert [r.name for r in due] == ["hourly"]
    assert refresh_due(settings, wh, now=T0 + timedelta(minutes=61), as_of=AS_OF).results == []
    summaries = {s.name: s for s in list_segments(settings).segments}
    assert summaries["hourly"].last_refreshed_at == T0 + timedelta(minutes=60)
    assert summaries["manual"].last_refreshed_at == T0


def test_export_csv_and_errors(settings: Settings, wh: Warehouse, tmp_path: Path) -> None:
    load(wh)
    create_segment(settings, wh, SegmentSpec(name="viewers", rule=VIEWED_30D), as_of=AS_OF, now=T0)
    out = tmp_path / "out" / "viewers.csv"
    assert export_members(settings, "viewers", out) == 4
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["user_id"] for r in rows] == ["u1", "u2", "u3", "u5"]
    assert rows[0]["joined_at"] == "2026-11-01 08:00:00"
    with pytest.raises(YunyingError) as e:
        export_members(settings, "nope", out)
    assert e.value.key == "segment.not_found"
    with pytest.raises(YunyingError) as e:
        create_segment(settings, wh, SegmentSpec(name="viewers", rule=VIEWED_30D))
    assert e.value.key == "segment.exists"


def test_load_spec_from_yaml_names_bad_fields() -> None:
    spec = load_spec("name: 高价值\nrule:\n  and:\n    - tag: vip\n    - not: {tag: blacklist}\n")
    assert spec.name == "高价值" and spec.kind == "dynamic"
    with pytest.raises(YunyingError) as e:
        load_spec("name: x\nkind: sometimes\nrule: {tag: vip}\n")
    assert e.value.params["path"] == "kind"
    with pytest.raises(YunyingError) as e:
        load_spec("name: x\nrule:\n  and:\n    - tag: vip\n    - event: {name: pay, times: -1}\n")
    assert e.value.params["path"] == "rule.and[1].event.times"
    with pytest.raises(YunyingError) as e:
        load_spec("name: [unclosed\n", "seg.yaml")
    assert e.value.key == "segment.bad_file" and e.value.params["path"] == "seg.yaml"


def test_tags_add_remove_bulk(settings: Settings, tmp_path: Path) -> None:
    assert add_tag(settings, "vip", ["u1", "u2", "u2", " "]).changed == 2
    assert add_tag(settings, "vip", ["u2", "u3"]).changed == 1
    f = tmp_path / "users.csv"
    f.write_text("name,user_id\na,u7\nb,u8\n", encoding="utf-8")
    assert read_user_csv(f) == ["u7", "u8"]
    assert add_tag(settings, "vip", read_user_csv(f)).changed == 2
    g = tmp_path / "plain.csv"
    g.write_text("u9\nu10\n", encoding="utf-8")
    assert read_user_csv(g) == ["u9", "u10"]
    assert remove_tag(settings, "vip", ["u1", "u404"]).changed == 1
    assert [(c.tag, c.users) for c in list_tags(settings).counts] == [("vip", 4)]
    assert [r.user_id for r in list_tags(settings, tag="vip").rows] == ["u2", "u3", "u7", "u8"]
    with pytest.raises(YunyingError) as e:
        add_tag(settings, "has space", ["u1"])
    assert e.value.key == "tag.bad_name"
    with pytest.raises(YunyingError) as e:
        read_user_csv(tmp_path / "missing.csv")
    assert e.value.key == "tag.read_failed"


def test_eligibility_for_the_tools(settings: Settings, wh: Warehouse) -> None:
    from yunying.segments.eligibility import SegmentEligibility

    load(wh)
    create_segment(settings, wh, SegmentSpec(name="viewers", rule=VIEWED_30D), as_of=AS_OF, now=T0)
    elig = SegmentEligibility(settings, wh)
    assert elig.is_member("viewers", "u1") and not elig.is_member("viewers", "u4")
    assert elig.first_seen("u3") == datetime(2026, 10, 20, 12, 0)
    assert elig.first_seen("nobody") is None
    with pytest.raises(YunyingError):
        elig.is_member("no-such-segment", "u1")


def test_tools_module_uses_segment_eligibility(settings: Settings, wh: Warehouse) -> None:
    from yunying.engage.schemas import IssueRequest, ToolSpec
    from yunying.engage.service import create_tool, issue
    from yunying.segments.eligibility import SegmentEligibility

    load(wh)
    create_segment(settings, wh, SegmentSpec(name="viewers", rule=VIEWED_30D), as_of=AS_OF, now=T0)
    url = settings.appdb_url
    create_tool(url, ToolSpec(
        id="newbie", kind="voucher", name="新人券", starts_at=datetime(2026, 10, 1),
        ends_at=datetime(2026, 12, 1), rules={"amount": "10"}, segment="viewers", new_user_days=30,
    ))
    elig = SegmentEligibility(settings, wh)
    at = datetime(2026, 10, 25)
    assert issue(url, IssueRequest(key="k3", tool_id="newbie", user_id="u3", at=at), elig).user_id == "u3"
    for user, key in (("u4", "engage.not_eligible_segment"), ("u1", "engage.not_new_user")):
        with pytest.raises(YunyingError) as e:
            issue(url, IssueRequest(key=f"k-{user}", tool_id="newbie", user_id=user, at=at), elig)
        assert e.value.key == key
