"""Small hand-computed datasets for the metric tests (times are UTC; the project is UTC+8)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from typing import Any

import pyarrow as pa

from yunying.warehouse.contracts import CONTRACTS
from yunying.warehouse.engine import Warehouse, arrow_schema


def ts(day: int, hour: int = 2, month: int = 10) -> dt.datetime:
    """A UTC time in 2026; 02:00 UTC is 10:00 in Asia/Shanghai, the same local day."""
    return dt.datetime(2026, month, day, hour)


def load(wh: Warehouse, table: str, rows: list[dict[str, Any]]) -> None:
    c = CONTRACTS[table]
    cols: dict[str, list[Any]] = {n: [] for n in c.names}
    for i, r in enumerate(rows):
        for n in c.names:
            v = r.get(n)
            if n == c.key and v is None:
                v = f"{table}-{i}"
            if n == "properties" and isinstance(v, dict):
                v = json.dumps(v)
            if c.column(n).type == "decimal" and v is not None:
                v = Decimal(str(v)).quantize(Decimal("0.01"))
            cols[n].append(v)
    wh.append_arrow(table, pa.table(cols, schema=arrow_schema(c)))
    wh.refresh()


def shop(wh: Warehouse) -> None:
    """E-commerce, app and user-state fixture (expected values are in test_library.py)."""
    load(wh, "users", [
        {"user_id": "u1", "first_seen": ts(1), "channel": "organic"},
        {"user_id": "u2", "first_seen": ts(1, 3), "channel": "sem"},
        {"user_id": "u3", "first_seen": ts(2), "channel": "organic"},
        {"user_id": "u4", "first_seen": ts(1, month=9), "channel": "sem"},
        {"user_id": "u5", "first_seen": ts(1, month=8), "channel": "organic"},
        {"user_id": "u6", "first_seen": ts(1, month=7), "channel": "sem"},
    ])
    ev = [
        ("u1", ts(1), "s1", "ios"), ("u1", ts(1, 4), "s1", "ios"), ("u2", ts(1), "s2", "android"),
        ("u4", ts(1), "s3", "ios"), ("u1", ts(2), "s4", "ios"), ("u3", ts(2), "s5", "android"),
        ("u3", ts(2, 5), "s5", "android"), ("u2", ts(8), "s6", "android"),
        ("u5", ts(20, month=9), "s7", "ios"), ("u6", ts(2, month=7), "s8", "ios"),
    ]
    load(wh, "events", [
        {"event": "view", "user_id": u, "ts": t, "session_id": s, "properties": {"platform": p}}
        for u, t, s, p in ev
    ])
    load(wh, "orders", [
        {"order_id": "o1", "user_id": "u1", "ts": ts(1), "amount": "100.00", "currency": "CNY", "status": "paid"},
        {"order_id": "o2", "user_id": "u1", "ts": ts(5), "amount": "50.00", "currency": "CNY", "status": "paid"},
        {"order_id": "o3", "user_id": "u2", "ts": ts(1), "amount": "200.00", "currency": "CNY", "status": "refunded"},
        {"order_id": "o4", "user_id": "u4", "ts": ts(2), "amount": "30.00", "currency": "CNY", "status": "cancelled"},
        {"order_id": "o5", "user_id": "u3", "ts": ts(2), "amount": "70.00", "currency": "CNY", "status": "paid"},
    ])


def saas(wh: Warehouse) -> None:
    load(wh, "accounts", [
        {"account_id": a, "name": a.upper(), "tier": tier, "created_at": ts(1, month=1)}
        for a, tier in (("a1", "KA"), ("a2", "SMB"), ("a3", "SMB"), ("a4", "mid"), ("a5", "SMB"))
    ])
    d = dt.date
    subs = [
        ("a1", 100, d(2026, 1, 1), None), ("a1", 50, d(2026, 10, 10), None),
        ("a2", 200, d(2026, 5, 1), d(2026, 10, 15)),
        ("a3", 80, d(2026, 10, 5), None),
        ("a4", 300, d(2026, 2, 1), d(2026, 10, 20)), ("a4", 120, d(2026, 10, 20), None),
        ("a5", 60, d(2026, 3, 1), d(2026, 6, 1)), ("a5", 90, d(2026, 10, 12), None),
    ]
    load(wh, "subscriptions", [
        {"account_id": a, "plan": "pro", "mrr": m, "start_date": s, "end_date": e} for a, m, s, e in subs
    ])


def credit(wh: Warehouse) -> None:
    rows = [
        ("c1", "loan_apply", ts(1), {}), ("c2", "loan_apply", ts(1), {}), ("c1", "loan_apply", ts(2), {}),
        ("c1", "loan_approve", ts(1), {"loan_id": "L1"}), ("c2", "loan_approve", ts(2), {"loan_id": "L2"}),
        ("c1", "loan_disburse", ts(2), {"loan_id": "L1", "amount": 1000}),
        ("c2", "loan_disburse", ts(3), {"loan_id": "L2", "amount": 500.5}),
        ("c1", "repayment_due", ts(5), {"loan_id": "L1", "installment": 1, "amount": 100}),
        ("c2", "repayment_due", ts(6), {"loan_id": "L2", "installment": 1, "amount": 50}),
        ("c1", "repayment_due", ts(7), {"loan_id": "L1", "installment": 2, "amount": 100}),
        ("c1", "repayment", ts(5, 9), {"loan_id": "L1", "installment": 1, "amount": 100}),
        ("c2", "repayment", ts(20), {"loan_id": "L2", "installment": 1, "amount": 50}),
        ("c1", "repayment", ts(4), {"loan_id": "L1", "installment": 2, "amount": 100}),
    ]
    load(wh, "events", [{"event": e, "user_id": u, "ts": t, "properties": p} for u, e, t, p in rows])
