"""Data contracts: the five tables every yunying feature reads, with types and keys.

The contract is the single source for the data dictionary (``yunying describe``), for
the DDL on every engine and for import validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from yunying.errors import YunyingError

ColumnType = Literal["string", "timestamp", "date", "decimal", "json"]

# Money: 18 digits, 2 after the point; never float.
DECIMAL_SQL = "DECIMAL(18,2)"

SQL_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",  # naive, always UTC
    "date": "DATE",
    "decimal": DECIMAL_SQL,
    "json": "VARCHAR",  # JSON text; engines parse it on read
}


@dataclass(frozen=True)
class Column:
    name: str
    type: ColumnType
    required: bool = True
    description_key: str = ""
    max_length: int | None = None
    # Refuse negative values (money that a status, not a sign, qualifies).
    nonnegative: bool = False


@dataclass(frozen=True)
class Contract:
    table: str
    key: str
    columns: tuple[Column, ...]
    description_key: str = ""
    # Time column used for date ranges in status and analyses.
    time_column: str | None = None
    # Uppercased values accepted for an enum-like column.
    enums: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)

    def ddl(self, table_name: str | None = None) -> str:
        cols = ",\n  ".join(f'"{c.name}" {SQL_TYPES[c.type]}' for c in self.columns)
        return f'CREATE TABLE IF NOT EXISTS "{table_name or self.table}" (\n  {cols}\n)'


def _c(name: str, type_: ColumnType, required: bool = True, max_length: int | None = 256) -> Column:
    return Column(
        name,
        type_,
        required,
        f"contract.col.{name}",
        max_length if type_ == "string" else None,
    )


EVENTS = Contract(
    "events",
    "event_id",
    (
        _c("event_id", "string"),
        _c("event", "string"),
        _c("user_id", "string"),
        _c("ts", "timestamp"),
        _c("account_id", "string", required=False),
        _c("session_id", "string", required=False),
        _c("properties", "json", required=False),
    ),
    "contract.events",
    time_column="ts",
)

USERS = Contract(
    "users",
    "user_id",
    (
        _c("user_id", "string"),
        _c("first_seen", "timestamp"),
        _c("channel", "string", required=False),
        _c("properties", "json", required=False),
    ),
    "contract.users",
    time_column="first_seen",
)

ORDERS = Contract(
    "orders",
    "order_id",
    (
        _c("order_id", "string"),
        _c("user_id", "string"),
        _c("ts", "timestamp"),
        # Never negative: a refund is an order with status "refunded" and its amount.
        Column("amount", "decimal", True, "contract.col.amount", nonnegative=True),
        _c("currency", "string", max_length=3),
        _c("status", "string"),
        _c("properties", "json", required=False),
    ),
    "contract.orders",
    time_column="ts",
    enums={"status": ("paid", "refunded", "cancelled", "pending")},
)

ACCOUNTS = Contract(
    "accounts",
    "account_id",
    (
        _c("account_id", "string"),
        _c("name", "string"),
        _c("industry", "string", required=False),
        _c("tier", "string", required=False),
        _c("owner", "string", required=False),
        _c("created_at", "timestamp"),
        _c("properties", "json", required=False),
    ),
    "contract.accounts",
    time_column="created_at",
)

SUBSCRIPTIONS = Contract(
    "subscriptions",
    "subscription_id",
    (
        _c("subscription_id", "string"),
        _c("account_id", "string"),
        _c("plan", "string"),
        _c("mrr", "decimal"),
        _c("start_date", "date"),
        _c("end_date", "date", required=False),
        _c("properties", "json", required=False),
    ),
    "contract.subscriptions",
    time_column="start_date",
)

CONTRACTS: dict[str, Contract] = {
    c.table: c for c in (EVENTS, USERS, ORDERS, ACCOUNTS, SUBSCRIPTIONS)
}


def contract(table: str) -> Contract:
    try:
        return CONTRACTS[table]
    except KeyError:
        raise YunyingError(
            "warehouse.unknown_table", table=table, tables=", ".join(CONTRACTS)
        ) from None
