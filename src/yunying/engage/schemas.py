"""Pydantic inputs and outputs of the engage service: the CLI's JSON and the HTTP API bodies."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field

from yunying.engage.rules import Kind, Order


class ToolSpec(BaseModel):
    """An incentive tool to create. ``rules`` follow the kind (see ``yunying.engage.rules``)."""

    id: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    kind: Kind
    name: str = Field(min_length=1, max_length=200)
    campaign_id: str | None = None
    starts_at: dt.datetime
    ends_at: dt.datetime
    rules: dict[str, Any] = Field(default_factory=dict)
    per_user_limit: int | None = Field(default=None, gt=0)
    total_limit: int | None = Field(default=None, gt=0)
    budget: Decimal | None = Field(default=None, ge=0)
    stock: int | None = Field(default=None, ge=0)
    shared_code: str | None = Field(default=None, min_length=4, max_length=64)
    requires_code: bool = False
    segment: str | None = None
    new_user_days: int | None = Field(default=None, gt=0)
    exclusive: bool = False
    stack_group: str | None = Field(default=None, max_length=64)
    shards: int = Field(default=1, ge=1, le=64, description="Stock/budget slices for hot sales.")


class ToolOut(BaseModel):
    id: str
    kind: str
    name: str
    campaign_id: str | None
    starts_at: dt.datetime
    ends_at: dt.datetime
    per_user_limit: int | None
    total_limit: int | None
    issued: int
    budget: Decimal | None
    budget_used: Decimal
    stock: int | None
    sold: int
    shards: int
    rules: dict[str, Any]


class ToolList(BaseModel):
    tools: list[ToolOut]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = ["id", "kind", "name", "starts_at", "ends_at", "issued", "sold", "stock", "budget", "budget_used"]
        rows = [
            [t.id, t.kind, t.name, t.starts_at, t.ends_at, t.issued, t.sold, t.stock, t.budget, t.budget_used]
            for t in self.tools
        ]
        return headers, rows


class IssueRequest(BaseModel):
    key: str = Field(min_length=1, max_length=128, description="Idempotency key chosen by the client.")
    tool_id: str
    user_id: str = Field(min_length=1, max_length=128)
    code: str | None = None
    at: dt.datetime | None = None


class IssueResult(BaseModel):
    grant_id: str
    tool_id: str
    user_id: str
    code: str | None
    issued_at: dt.datetime
    replayed: bool = False


class RedeemRequest(BaseModel):
    key: str = Field(min_length=1, max_length=128, description="Idempotency key chosen by the client.")
    tool_id: str
    user_id: str = Field(min_length=1, max_length=128)
    grant_id: str | None = None
    order: Order | None = None
    quantity: int = Field(default=1, gt=0, le=10_000)
    principal: Decimal | None = Field(default=None, gt=0, description="Investment for 加息券.")
    at: dt.datetime | None = None


class RedeemResult(BaseModel):
    redemption_id: str
    tool_id: str
    kind: str
    user_id: str
    order_id: str | None
    quantity: int
    amount: Decimal = Field(description="Discount, cashback, subsidy, prize value or yield.")
    prize_id: str | None = None
    seed: int | None = None
    matures_at: dt.datetime | None = None
    at: dt.datetime
    replayed: bool = False


class Quote(BaseModel):
    """What a redemption would give now, without changing anything."""

    ok: bool
    reason: str | None
    amount: Decimal | None


class RollbackRequest(BaseModel):
    key: str = Field(min_length=1, max_length=128)
    redemption_id: str
    reason: str = "refund"
    at: dt.datetime | None = None


class RollbackResult(BaseModel):
    redemption_id: str
    tool_id: str
    user_id: str
    amount: Decimal
    quantity: int
    at: dt.datetime
    replayed: bool = False


class SettleResult(BaseModel):
    settled: int
    paid: Decimal


class ConvertRequest(BaseModel):
    key: str = Field(min_length=1, max_length=128)
    redemption_id: str
    order_id: str
    at: dt.datetime | None = None


class ConvertResult(BaseModel):
    redemption_id: str
    order_id: str
    at: dt.datetime
    replayed: bool = False


class CodesResult(BaseModel):
    tool_id: str
    created: int
    codes: list[str] = Field(default_factory=list)

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        if self.codes:
            return ["code"], [[c] for c in self.codes]
        return ["tool_id", "created"], [[self.tool_id, self.created]]


class CodeRow(BaseModel):
    code: str
    user_id: str | None
    claimed_at: dt.datetime | None


class CodeList(BaseModel):
    """A page of a tool's one-time codes (by code), with how many there are and are unused."""

    tool_id: str
    total: int
    unused: int
    offset: int
    codes: list[CodeRow]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return ["code", "user_id", "claimed_at"], [[c.code, c.user_id, c.claimed_at] for c in self.codes]


class LedgerCheck(BaseModel):
    """Ledger health: unbalanced transactions and per-account balances."""

    transactions: int
    unbalanced: list[str]
    balances: dict[str, int] = Field(description="account|asset → balance in minor units (cents, units, points)")

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        """Money shown in currency units (stored in cents), stock in units, points as points."""
        rows: list[list[Any]] = []
        for k, v in sorted(self.balances.items()):
            account, _, asset = k.partition("|")
            rows.append([account, asset, Decimal(v) / 100 if asset == "money" else v])
        return ["account", "asset", "balance"], rows


class FlushResult(BaseModel):
    sent: int
    appended: int
