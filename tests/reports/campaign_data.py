"""A campaign in the event log, shaped exactly as engage writes it (names imported from engage)."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa

from yunying.engage.campaigns import ASSIGN_EVENT, assignment_event_id, assignment_group
from yunying.engage.service import REDEEM_EVENTS
from yunying.warehouse.engine import Warehouse

START = datetime(2026, 5, 1, 2, 0, 0)


def _events(rows: list[tuple[str, str, str, datetime, dict[str, object]]]) -> pa.Table:
    return pa.table({
        "event_id": [r[0] for r in rows],
        "event": [r[1] for r in rows],
        "user_id": [r[2] for r in rows],
        "ts": pa.array([r[3] for r in rows], type=pa.timestamp("us")),
        "account_id": pa.nulls(len(rows), pa.string()),
        "session_id": pa.nulls(len(rows), pa.string()),
        "properties": [json.dumps(r[4], sort_keys=True) for r in rows],
    })


def build_campaign(
    wh: Warehouse, campaign_id: str = "may_voucher", n: int = 6000, base: float = 0.10,
    lift: float = 0.04, seed: int = 9,
) -> dict[str, float]:
    """Treatment/holdout by engage's own hash, orders with a planted lift, voucher and
    cashback costs (one rolled back). Returns the truth to compare against."""
    rng = np.random.default_rng(seed)
    salt = f"salt-{campaign_id}"
    users = [f"c{i:05d}" for i in range(n)]
    channels = ["app", "web"]
    wh.append_arrow("users", pa.table({
        "user_id": users,
        "first_seen": pa.array([START - timedelta(days=90)] * n, type=pa.timestamp("us")),
        "channel": [channels[i % 2] for i in range(n)],
        "properties": [None] * n,
    }))
    rows: list[tuple[str, str, str, datetime, dict[str, object]]] = []
    o_id, o_user, o_ts, o_amt = [], [], [], []
    cost = 0.0
    for i, u in enumerate(users):
        grp = assignment_group(salt, 0.2, u)
        rows.append((assignment_event_id(campaign_id, u), ASSIGN_EVENT, u, START,
                     {"campaign_id": campaign_id, "group": grp}))
        p = base + (lift if grp == "treatment" else 0.0)
        if rng.random() < p:
            ts = START + timedelta(days=float(rng.uniform(0.1, 9)))
            o_id.append(f"o-{u}")
            o_user.append(u)
            o_ts.append(ts)
            o_amt.append(Decimal("120.00"))
            if grp == "treatment":
                rows.append((f"r-{u}", REDEEM_EVENTS["voucher"], u, ts,
                             {"campaign_id": campaign_id, "tool_id": "v20", "kind": "voucher", "amount": "20.00"}))
                cost += 20.0
                if i % 5 == 0:
                    rows.append((f"cb-{u}", REDEEM_EVENTS["cashback"], u, ts + timedelta(hours=1),
                                 {"campaign_id": campaign_id, "tool_id": "cb5", "kind": "cashback", "amount": "5.00"}))
                    cost += 5.0
    # A rollback returns money; the duplicate cashback_reversed is not counted twice.
    rb_user = o_user[0]
    rows.append(("rb-1", "coupon_rolled_back", rb_user, START + timedelta(days=9.5),
                 {"campaign_id": campaign_id, "tool_id": "v20", "kind": "voucher", "amount": "20.00"}))
    cost -= 20.0
    # Another campaign's costs must not count.
    rows.append(("x-1", REDEEM_EVENTS["voucher"], users[1], START,
                 {"campaign_id": "other", "tool_id": "v99", "kind": "voucher", "amount": "999.00"}))
    wh.append_arrow("events", _events(rows))
    wh.append_arrow("orders", pa.table({
        "order_id": o_id, "user_id": o_user, "ts": pa.array(o_ts, type=pa.timestamp("us")),
        "amount": pa.array(o_amt, type=pa.decimal128(18, 2)), "currency": ["CNY"] * len(o_id),
        "status": ["paid"] * len(o_id), "properties": [None] * len(o_id),
    }))
    return {"cost": round(cost, 2)}
