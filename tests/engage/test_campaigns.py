"""Campaign lifecycle, approval and assignment, on SQLite and on a real PostgreSQL."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from yunying.config import Settings, load_settings
from yunying.engage import campaigns as C
from yunying.errors import YunyingError
from yunying.segments import SegmentSpec, create_segment
from yunying.warehouse.engine import Warehouse

NOW = datetime(2026, 11, 5, 2, 0)  # UTC
BASE = {
    "name": "双11 回流",
    "goal_metric": "gmv",
    "goal_target": "100000",
    "starts_at": "2026-11-10 00:00:00",  # Shanghai wall time = 11-09 16:00 UTC
    "ends_at": "2026-11-12 00:00:00",
    "budget": "5000.00",
    "channel": "push",
    "holdout_share": 0.25,
    "owner": "小王",
}


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def csettings(request: pytest.FixtureRequest, settings: Settings, tmp_path: Path) -> Settings:
    if request.param == "sqlite":
        return settings
    return load_settings(tmp_path, appdb={"url": str(request.getfixturevalue("pg_url"))})


@pytest.fixture
def cwh(csettings: Settings) -> Iterator[Warehouse]:
    w = Warehouse(csettings, "duckdb")
    yield w
    w.close()


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def add_users(wh: Warehouse, start: int, n: int) -> None:
    ids = [f"user{i:05d}" for i in range(start, start + n)]
    wh.append_arrow(
        "users",
        pa.table({
            "user_id": ids,
            "first_seen": [datetime(2026, 1, 1)] * n,
            "channel": ["app"] * n,
            "properties": [None] * n,
        }),
    )


def segment(settings: Settings, wh: Warehouse) -> str:
    name = uid("seg")
    spec = SegmentSpec(name=name, rule={"property": {"field": "channel", "value": "app"}})
    create_segment(settings, wh, spec)
    return name


def campaign(settings: Settings, seg: str, **kw: object) -> str:
    cid = uid("c")
    C.create_campaign(settings, C.parse_spec({**BASE, "id": cid, "segment": seg, **kw}), "小王", "operator", NOW)
    return cid


def test_lifecycle_with_approval_and_guards(csettings: Settings, cwh: Warehouse) -> None:
    add_users(cwh, 0, 5)
    cid = campaign(csettings, segment(csettings, cwh))
    c = C.get_campaign(csettings, cid)
    assert c.status == "draft" and c.starts_at == datetime(2026, 11, 9, 16) and c.timezone == "Asia/Shanghai"

    def fails(key: str, action: str, role: str = "operator", actor: str = "小王", at: datetime = NOW) -> None:
        with pytest.raises(YunyingError) as e:
            C.transition(csettings, cid, action, actor, role, at)
        assert e.value.key == key, (action, e.value.key)

    fails("campaign.needs_approval", "schedule")
    fails("campaign.bad_transition", "start")
    fails("campaign.bad_transition", "end")
    fails("campaign.forbidden", "approve", role="analyst")
    fails("campaign.forbidden", "approve", role="viewer")
    fails("campaign.forbidden", "approve", role="operator")  # approving is an approver's, not the doer's
    fails("campaign.unknown_role", "approve", role="boss")
    fails("campaign.actor_required", "approve", actor=" ")
    c = C.approve(csettings, cid, "主管", "admin", NOW)
    assert (c.approved_by, c.approved_role, c.approved_at, c.status) == ("主管", "admin", NOW, "draft")
    fails("campaign.forbidden", "schedule", role="analyst")
    assert C.transition(csettings, cid, "schedule", "小王", "operator", NOW).status == "scheduled"
    fails("campaign.bad_transition", "schedule")
    fails("campaign.bad_transition", "approve", role="approver")
    fails("campaign.not_yet", "start", at=datetime(2026, 11, 9, 15, 59))
    start = datetime(2026, 11, 9, 16)
    assert C.transition(csettings, cid, "start", "小王", "operator", start).status == "running"
    fails("campaign.bad_transition", "review", role="analyst")
    assert C.transition(csettings, cid, "end", "小王", "operator", start + timedelta(days=1)).status == "ended"
    fails("campaign.review_needs_notes", "review", role="analyst")
    c = C.transition(csettings, cid, "review", "分析师", "analyst", start + timedelta(days=3), note="GMV +3%")
    assert c.status == "reviewed" and c.review_notes == "GMV +3%"
    fails("campaign.bad_transition", "end")
    assert [(x.action, x.from_status, x.to_status) for x in c.transitions] == [
        ("create", None, "draft"),
        ("approve", "draft", "draft"),
        ("schedule", "draft", "scheduled"),
        ("start", "scheduled", "running"),
        ("end", "running", "ended"),
        ("review", "ended", "reviewed"),
    ]
    assert cid in [x.id for x in C.list_campaigns(csettings, "reviewed").campaigns]
    assert cid not in [x.id for x in C.list_campaigns(csettings, "draft").campaigns]


def test_schedule_after_end_is_refused(csettings: Settings, cwh: Warehouse) -> None:
    add_users(cwh, 0, 3)
    cid = campaign(csettings, segment(csettings, cwh))
    C.approve(csettings, cid, "主管", "approver", NOW)
    with pytest.raises(YunyingError) as e:
        C.transition(csettings, cid, "schedule", "小王", "operator", datetime(2026, 12, 1))
    assert e.value.key == "campaign.already_over"


def test_invalid_campaigns(csettings: Settings, cwh: Warehouse) -> None:
    add_users(cwh, 0, 3)
    seg = segment(csettings, cwh)
    with pytest.raises(YunyingError) as e:
        C.parse_spec({**BASE, "id": "x", "segment": seg, "ends_at": "2026-11-01 00:00:00"})
    assert e.value.key == "campaign.invalid" and "ends_at must be after" in e.value.message("en")
    with pytest.raises(YunyingError) as e:
        C.parse_spec({**BASE, "id": "x", "segment": seg, "holdout_share": 0.95})
    assert e.value.params["field"] == "holdout_share"
    with pytest.raises(YunyingError) as e:
        C.parse_spec({**BASE, "id": "has space", "segment": seg})
    assert e.value.params["field"] == "id"
    with pytest.raises(YunyingError) as e:
        campaign(csettings, "no-such-segment")
    assert e.value.key == "segment.not_found"
    with pytest.raises(YunyingError) as e:
        campaign(csettings, seg, tools=["no-such-tool"])
    assert e.value.key == "campaign.unknown_tool"
    with pytest.raises(YunyingError) as e:
        C.create_campaign(csettings, C.parse_spec({**BASE, "id": "v", "segment": seg}), "v", "viewer")
    assert e.value.key == "campaign.forbidden"
    cid = campaign(csettings, seg)
    with pytest.raises(YunyingError) as e:
        C.create_campaign(csettings, C.parse_spec({**BASE, "id": cid, "segment": seg}), "a", "admin")
    assert e.value.key == "campaign.exists"
    with pytest.raises(YunyingError) as e:
        C.get_campaign(csettings, "nope")
    assert e.value.key == "campaign.not_found"


def test_tools_from_the_tools_module(csettings: Settings, cwh: Warehouse) -> None:
    from decimal import Decimal

    from yunying.engage.schemas import ToolSpec
    from yunying.engage.service import create_tool

    add_users(cwh, 0, 3)
    seg = segment(csettings, cwh)
    tool = uid("voucher")
    create_tool(csettings.appdb_url, ToolSpec(
        id=tool, kind="voucher", name="满100减20", starts_at=NOW, ends_at=NOW + timedelta(days=9),
        rules={"amount": "20", "threshold": "100"}, budget=Decimal("6000"),
    ))
    cid = campaign(csettings, seg, tools=[tool])
    c = C.get_campaign(csettings, cid)
    assert c.tools == [tool]
    assert [(u.id, u.kind, u.issued, u.budget) for u in c.tool_usage] == [(tool, "voucher", 0, Decimal("6000"))]
    assert c.spent == Decimal("0")
    C.approve(csettings, cid, "主管", "admin", NOW)
    # The tool may spend 6000 but the campaign's budget is 5000: scheduling is refused.
    with pytest.raises(YunyingError) as e:
        C.transition(csettings, cid, "schedule", "小王", "operator", NOW)
    assert e.value.key == "campaign.tools_over_budget"
    rich = campaign(csettings, seg, tools=[tool], budget="8000")
    C.approve(csettings, rich, "主管", "admin", NOW)
    assert C.transition(csettings, rich, "schedule", "小王", "operator", NOW).status == "scheduled"


def test_assignment_is_deterministic_with_the_holdout_share() -> None:
    ids = [f"u{i}" for i in range(20_000)]
    groups = [C.assignment_group("salt-a", 0.2, u) for u in ids]
    share = groups.count("holdout") / len(ids)
    assert abs(share - 0.2) < 0.012  # 4 standard deviations
    assert groups == [C.assignment_group("salt-a", 0.2, u) for u in ids]
    other = [C.assignment_group("salt-b", 0.2, u) for u in ids]
    assert other != groups and abs(other.count("holdout") / len(ids) - 0.2) < 0.012
    assert all(C.assignment_group("s", 0.0, u) == "treatment" for u in ids[:1000])


def test_assignment_events_are_idempotent(csettings: Settings, cwh: Warehouse) -> None:
    add_users(cwh, 0, 2000)
    seg = segment(csettings, cwh)
    cid = campaign(csettings, seg)
    with pytest.raises(YunyingError) as e:
        C.assign(csettings, cwh, cid, "小王", "operator", NOW)
    assert e.value.key == "campaign.cannot_assign"
    C.approve(csettings, cid, "主管", "admin", NOW)
    C.transition(csettings, cid, "schedule", "小王", "operator", NOW)
    with pytest.raises(YunyingError) as e:
        C.assign(csettings, cwh, cid, "分析师", "analyst", NOW)
    assert e.value.key == "campaign.forbidden"

    first = C.assign(csettings, cwh, cid, "小王", "operator", NOW)
    assert (first.members, first.new_events) == (2000, 2000)
    assert abs(first.holdout / 2000 - 0.25) < 0.04
    ev = cwh.table("events")
    mine = ev.filter(ev.event == "campaign_assigned", ev.event_id.startswith(f"ca-{cid}-"))
    df = cwh.execute(mine)
    assert len(df) == 2000 and df["event_id"].is_unique
    props = [json.loads(p) for p in df["properties"]]
    assert {p["campaign_id"] for p in props} == {cid}
    recorded = dict(zip(df["user_id"], (p["group"] for p in props), strict=True))
    for user in sorted(recorded)[::100]:
        assert recorded[user] == C.group_of(csettings, cid, user)
    assert sum(p["group"] == "holdout" for p in props) == first.holdout

    again = C.assign(csettings, cwh, cid, "小王", "operator", NOW + timedelta(hours=1))
    assert (again.new_events, again.treatment, again.holdout) == (0, first.treatment, first.holdout)
    assert int(cwh.execute(mine.count())) == 2000

    # New users enter the (dynamic) segment: only they are assigned on the next run.
    add_users(cwh, 2000, 100)
    third = C.assign(csettings, cwh, cid, "小王", "operator", NOW + timedelta(hours=2), refresh_segment=True)
    assert (third.members, third.new_events, third.treatment + third.holdout) == (2100, 100, 2100)
    assert int(cwh.execute(mine.count())) == 2100
    c = C.get_campaign(csettings, cid)
    assert (c.assigned_treatment, c.assigned_holdout) == (third.treatment, third.holdout)


def test_the_holdout_gets_nothing_from_the_campaigns_tools(csettings: Settings, cwh: Warehouse) -> None:
    """Issue and direct redemption refuse holdout users, or the lift could not be measured."""
    from decimal import Decimal

    from yunying.engage.schemas import IssueRequest, RedeemRequest, ToolSpec
    from yunying.engage.service import create_tool, issue, redeem

    add_users(cwh, 0, 3)
    seg = segment(csettings, cwh)
    cid = campaign(csettings, seg, holdout_share=0.5)
    url = csettings.appdb_url
    voucher, sale = uid("v"), uid("fs")
    window = {"starts_at": NOW, "ends_at": NOW + timedelta(days=9), "campaign_id": cid}
    create_tool(url, ToolSpec(id=voucher, kind="voucher", name="v", budget=Decimal("1000"),
                              rules={"amount": "20", "threshold": "100"}, **window))
    create_tool(url, ToolSpec(id=sale, kind="flash_sale", name="s", stock=100, budget=Decimal("10000"),
                              rules={"price": "9.90", "list_price": "99"}, **window))
    users = [f"hold-{i}" for i in range(40)]
    groups = {u: C.group_of(csettings, cid, u) for u in users}
    assert set(groups.values()) == {"treatment", "holdout"}
    at = NOW + timedelta(hours=1)
    for u, g in groups.items():
        if g == "treatment":
            assert issue(url, IssueRequest(tool_id=voucher, user_id=u, key=uid("k"), at=at)).grant_id
            assert redeem(url, RedeemRequest(tool_id=sale, user_id=u, key=uid("k"), at=at)).quantity == 1
            continue
        with pytest.raises(YunyingError) as e:
            issue(url, IssueRequest(tool_id=voucher, user_id=u, key=uid("k"), at=at))
        assert e.value.key == "engage.holdout"
        with pytest.raises(YunyingError) as e:
            redeem(url, RedeemRequest(tool_id=sale, user_id=u, key=uid("k"), at=at))
        assert e.value.key == "engage.holdout"
