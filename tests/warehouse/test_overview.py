"""Headline figures on a hand-computed fixture, on every engine."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa

from yunying.warehouse.engine import Warehouse
from yunying.warehouse.overview import headline, local_day_bounds


def _load(w: Warehouse) -> None:
    # Times are UTC; the project zone is Asia/Shanghai (UTC+8).
    ev = [
        ("e1", "view", "u1", dt.datetime(2024, 3, 9, 17, 0)),   # 03-10 01:00 local
        ("e2", "view", "u2", dt.datetime(2024, 3, 9, 15, 0)),   # 03-09 23:00 local
        ("e3", "pay", "u1", dt.datetime(2024, 3, 1, 2, 0)),     # 03-01 local
        ("e4", "view", "u3", dt.datetime(2024, 1, 1, 2, 0)),    # outside 30 days
    ]
    w.append_arrow(
        "events",
        pa.table(
            {
                "event_id": [r[0] for r in ev],
                "event": [r[1] for r in ev],
                "user_id": [r[2] for r in ev],
                "ts": [r[3] for r in ev],
                "account_id": [None] * 4,
                "session_id": [None] * 4,
                "properties": ["{}"] * 4,
            }
        ),
    )
    w.append_arrow(
        "users",
        pa.table(
            {
                "user_id": ["u1", "u2", "u3"],
                "first_seen": [dt.datetime(2024, 3, 1), dt.datetime(2024, 2, 1), dt.datetime(2024, 1, 1)],
                "channel": ["sem", "organic", None],
                "properties": ["{}"] * 3,
            }
        ),
    )
    w.append_arrow(
        "orders",
        pa.table(
            {
                "order_id": ["o1", "o2", "o3", "o4"],
                "user_id": ["u1", "u1", "u2", "u3"],
                "ts": [dt.datetime(2024, 3, 1)] * 4,
                "amount": [Decimal("100.00"), Decimal("50.50"), Decimal("20.00"), Decimal("999.00")],
                "currency": ["CNY"] * 4,
                "status": ["paid", "refunded", "paid", "cancelled"],
                "properties": ["{}"] * 4,
            }
        ),
    )
    w.append_arrow(
        "subscriptions",
        pa.table(
            {
                "subscription_id": ["s1", "s2", "s3"],
                "account_id": ["a1", "a1", "a2"],
                "plan": ["basic", "pro", "pro"],
                "mrr": [Decimal("100.00"), Decimal("300.00"), Decimal("250.00")],
                "start_date": [dt.date(2024, 1, 1), dt.date(2024, 3, 1), dt.date(2024, 3, 10)],
                "end_date": [dt.date(2024, 2, 29), None, dt.date(2024, 3, 10)],
                "properties": ["{}"] * 3,
            }
        ),
    )


def test_headline_hand_computed(any_wh: Warehouse) -> None:
    _load(any_wh)
    any_wh.refresh()
    h = headline(any_wh, "Asia/Shanghai")
    assert h.as_of == dt.date(2024, 3, 10)
    assert h.dau == 1  # only u1 on 03-10 local
    assert h.mau == 2  # u1, u2 within 02-10..03-10 local
    assert h.users == 3 and h.new_users_30d == 1  # u1 (03-01 00:00 UTC = 08:00 local)
    assert h.orders == 3 and h.paying_users == 2
    assert h.gmv == Decimal("170.50") and h.net_revenue == Decimal("120.00")
    assert h.aov == Decimal("56.83")
    assert abs((h.refund_rate or 0) - 1 / 3) < 1e-12
    assert h.active_subscriptions == 2 and h.mrr == Decimal("550.00")
    assert h.arr == Decimal("6600.00")


def test_empty_warehouse(wh: Warehouse) -> None:
    h = headline(wh, "Asia/Shanghai")
    assert h.as_of is None and h.orders == 0 and h.aov is None and h.mrr == Decimal("0.00")


def test_local_day_bounds() -> None:
    lo, hi = local_day_bounds(dt.date(2024, 3, 10), "Asia/Shanghai", 2)
    assert lo == dt.datetime(2024, 3, 8, 16) and hi == dt.datetime(2024, 3, 10, 16)


def test_table_rows_are_readable(wh: Warehouse) -> None:
    from yunying.warehouse.overview import Overview, warehouse_status

    _load(wh)
    o = Overview(status=warehouse_status(wh), headline=headline(wh, "Asia/Shanghai"))
    _, rows = o.to_rows()
    shown = {r[0]: r[1] for r in rows}
    assert shown["GMV"] == "170.50" and shown["ARR"] == "6,600.00"
    assert shown["Refund rate"] == "33.33%"
    assert shown["Users"] == "3"
