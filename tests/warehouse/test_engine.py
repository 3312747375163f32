"""The same warehouse tests on every engine (DuckDB and Spark local mode)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse


def _orders() -> pa.Table:
    return pa.table(
        {
            "order_id": ["o1", "o2", "o3"],
            "user_id": ["u1", "u1", "u2"],
            "ts": [dt.datetime(2024, 1, 1, 10), dt.datetime(2024, 1, 2), dt.datetime(2024, 1, 3)],
            "amount": [Decimal("10.50"), Decimal("20.25"), Decimal("0.10")],
            "currency": ["CNY"] * 3,
            "status": ["paid", "paid", "refunded"],
            "properties": ["{}"] * 3,
        }
    )


def test_append_and_aggregate_same_on_every_engine(any_wh: Warehouse) -> None:
    any_wh.append_arrow("orders", _orders())
    any_wh.refresh()
    o = any_wh.table("orders")
    paid = o.filter(o.status == "paid")
    expr = (
        paid.group_by("user_id").aggregate(n=paid.count(), gmv=paid.amount.sum()).order_by("user_id")
    )
    df = any_wh.execute(expr)
    assert df["user_id"].tolist() == ["u1"]
    assert int(df["n"][0]) == 2
    assert Decimal(str(df["gmv"][0])) == Decimal("30.75")


def test_data_version_changes_on_write(any_wh: Warehouse) -> None:
    before = any_wh.data_version()
    any_wh.append_arrow("orders", _orders())
    assert any_wh.data_version() != before


def test_unknown_table(any_wh: Warehouse) -> None:
    with pytest.raises(YunyingError):
        any_wh.table("nope")


def test_duck_only_on_duckdb(settings) -> None:  # type: ignore[no-untyped-def]
    w = Warehouse(settings, "spark")
    with pytest.raises(YunyingError):
        _ = w.duck


def test_unknown_engine(settings) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(YunyingError):
        Warehouse(settings, "oracle")
