"""A small hand-built company whose segment answers were worked out by hand.

Evaluation instant AS_OF = 2026-10-31 00:00 UTC; project zone Asia/Shanghai (UTC+8).
Lifecycle periods of 30 days: current [10-01, 10-31), previous [09-01, 10-01),
before that [08-02, 09-01).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pyarrow as pa

from yunying.warehouse.engine import Warehouse

AS_OF = datetime(2026, 10, 31)


def d(month: int, day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute)


USERS = [
    ("u1", d(1, 1), "wechat", '{"city": "sh", "age": 30}'),
    ("u2", d(3, 1), "douyin", '{"city": "bj", "age": 17}'),
    ("u3", d(10, 20), None, None),
    ("u4", datetime(2026, 5, 1), "wechat", '{"city": "gz"}'),
    ("u5", d(2, 1), "baidu", "{}"),
    ("u6", d(6, 1), "douyin", '{"age": 45}'),
]

EVENTS = [
    ("u1", "view", d(9, 10)),
    ("u1", "view", d(10, 5)),
    ("u1", "view", d(10, 6)),
    ("u1", "pay", d(10, 6, 13)),
    ("u1", "share", d(8, 31, 16, 30)),  # 09-01 00:30 in Shanghai
    ("u2", "view", d(8, 15)),
    ("u2", "share", d(8, 31, 15, 30)),  # 08-31 23:30 in Shanghai
    ("u2", "view", d(10, 10)),
    ("u2", "cart", d(10, 11)),
    ("u3", "view", d(10, 21, 9)),
    ("u3", "cart", d(10, 21, 10)),
    ("u3", "pay", d(10, 22)),
    ("u4", "view", d(9, 15)),
    ("u5", "view", d(3, 1)),
    ("u5", "view", d(10, 2)),
    ("u5", "view", d(10, 30)),
    ("u6", "view", d(7, 1)),
    ("u6", "view", d(11, 5)),  # after AS_OF: never counts
]

ORDERS = [
    ("o1", "u1", d(10, 6), "100.00", "paid"),
    ("o2", "u1", d(9, 10), "50.00", "paid"),
    ("o3", "u1", d(10, 7), "30.00", "refunded"),
    ("o4", "u2", d(10, 11), "20.00", "paid"),
    ("o5", "u3", d(10, 22), "300.00", "paid"),
    ("o6", "u4", d(9, 15), "10.00", "cancelled"),
    ("o7", "u6", d(1, 10), "500.00", "paid"),
]


def load(wh: Warehouse) -> None:
    wh.append_arrow(
        "users",
        pa.table(
            {
                "user_id": [u[0] for u in USERS],
                "first_seen": [u[1] for u in USERS],
                "channel": [u[2] for u in USERS],
                "properties": [u[3] for u in USERS],
            }
        ),
    )
    append_events(wh, EVENTS)
    wh.append_arrow(
        "orders",
        pa.table(
            {
                "order_id": [o[0] for o in ORDERS],
                "user_id": [o[1] for o in ORDERS],
                "ts": [o[2] for o in ORDERS],
                "amount": pa.array([Decimal(o[3]) for o in ORDERS], pa.decimal128(18, 2)),
                "currency": ["CNY"] * len(ORDERS),
                "status": [o[4] for o in ORDERS],
                "properties": [None] * len(ORDERS),
            }
        ),
    )
    wh.refresh()


def append_events(wh: Warehouse, rows: list[tuple[str, str, datetime]], prefix: str = "e") -> None:
    wh.append_arrow(
        "events",
        pa.table(
            {
                "event_id": [f"{prefix}{i}" for i in range(len(rows))],
                "event": [r[1] for r in rows],
                "user_id": [r[0] for r in rows],
                "ts": [r[2] for r in rows],
                "account_id": [None] * len(rows),
                "session_id": [None] * len(rows),
                "properties": [None] * len(rows),
            }
        ),
    )
    wh.refresh()
