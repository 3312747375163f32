"""The campaign review on a campaign run by the real engage module: segment, campaign,
holdout assignment, voucher issued and redeemed (one rolled back), outbox flushed."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from yunying.appdb import migrate
from yunying.config import Settings
from yunying.engage import campaigns as C
from yunying.engage import service as S
from yunying.engage.outbox import flush_into
from yunying.engage.rules import Order, OrderLine
from yunying.engage.schemas import IssueRequest, RedeemRequest, RollbackRequest, ToolSpec
from yunying.experiments.campaign import run_campaign_eval
from yunying.reports.campaign import campaign_report
from yunying.segments import SegmentSpec, create_segment
from yunying.warehouse.engine import Warehouse

NOW = dt.datetime(2026, 11, 5, 2, 0)
START = dt.datetime(2026, 11, 9, 17, 0)  # inside the window (Shanghai 11-10 01:00)


def test_review_of_an_engage_campaign(settings: Settings, wh: Warehouse) -> None:
    n = 600  # the holdout is drawn with a fresh salt each run: enough users that the planted lift always shows
    users = [f"user{i:04d}" for i in range(n)]
    wh.append_arrow("users", pa.table({
        "user_id": users, "first_seen": [dt.datetime(2026, 1, 1)] * n,
        "channel": ["app" if i % 4 else "web" for i in range(n)], "properties": [None] * n,
    }))
    create_segment(settings, wh, SegmentSpec(name="everyone", rule={"property": {"field": "user_id", "op": "is_set"}}))
    url = settings.appdb_url
    migrate(url)
    S.create_tool(url, ToolSpec.model_validate({
        "id": "v20", "kind": "voucher", "name": "满100减20", "starts_at": dt.datetime(2026, 11, 1),
        "ends_at": dt.datetime(2026, 12, 1), "rules": {"amount": "20", "threshold": "100"}, "campaign_id": "nov",
    }))
    C.create_campaign(settings, C.parse_spec({
        "id": "nov", "name": "双11 回流", "goal_metric": "paid_conversion", "goal_target": "0.05",
        "segment": "everyone", "starts_at": "2026-11-10 00:00:00", "ends_at": "2026-11-20 00:00:00",
        "budget": "1000.00", "channel": "push", "tools": ["v20"], "holdout_share": 0.3, "owner": "小王",
    }), "小王", "operator", NOW)
    C.approve(settings, "nov", "老李", "admin", NOW)
    C.transition(settings, "nov", "schedule", "小王", "operator", NOW)
    C.transition(settings, "nov", "start", "小王", "operator", START)
    C.assign(settings, wh, "nov", "小王", "operator", now=START)
    groups = {u: C.group_of(settings, "nov", u) for u in users}
    at = START + dt.timedelta(days=1)
    o_ids, o_users = [], []
    redemptions = []
    for i, u in enumerate(users):
        treated = groups[u] == "treatment"
        if (treated and i % 3 == 0) or (not treated and i % 10 == 0):
            o_ids.append(f"o{i}")
            o_users.append(u)
            if treated:
                g = S.issue(url, IssueRequest(key=f"i{i}", tool_id="v20", user_id=u, at=at)).grant_id
                order = Order(order_id=f"o{i}", lines=[OrderLine(product_id="p", category="c", amount=Decimal("150"))])
                redemptions.append(S.redeem(url, RedeemRequest(key=f"r{i}", tool_id="v20", user_id=u, grant_id=g, order=order, at=at)))
    S.rollback(url, RollbackRequest(key="rb", redemption_id=redemptions[0].redemption_id, at=at))
    flush_into(url, wh)
    wh.append_arrow("orders", pa.table({
        "order_id": o_ids, "user_id": o_users, "ts": [at] * len(o_ids),
        "amount": pa.array([Decimal("130.00")] * len(o_ids), type=pa.decimal128(18, 2)),
        "currency": ["CNY"] * len(o_ids), "status": ["paid"] * len(o_ids), "properties": [None] * len(o_ids),
    }))
    ev = run_campaign_eval(settings, wh, "nov")
    assert ev.meta.name == "双11 回流" and ev.meta.budget == pytest.approx(1000.0)
    assert ev.cost == pytest.approx(20.0 * (len(redemptions) - 1))
    assert [(x.tool_id, x.kind) for x in ev.tools] == [("v20", "voucher")]
    g = {x.group: x for x in ev.groups}
    assert g["treatment"].users == sum(1 for v in groups.values() if v == "treatment")
    assert ev.conversion is not None and ev.conversion.abs_effect > 0.15 and ev.conversion.significant
    assert ev.budget_used == pytest.approx(ev.cost / 1000.0)
    doc = campaign_report(settings, wh, "nov", lang="zh_CN")
    assert doc.title == "活动复盘：双11 回流"
    assert any("每新增一位付费用户的成本" in h for h in doc.headline)
    assert any("预算使用" in h for h in doc.headline)
