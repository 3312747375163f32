"""Tables of the incentive tools, ledger, outbox, points and tiers (Alembic branch ``engage``).

Money, stock and points are stored as integers in minor units (cents, units, points):
SQLite has no exact decimal type, and integer arithmetic in conditional ``UPDATE``s is
exact on both SQLite and PostgreSQL. The API converts cents to ``Decimal``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from yunying.appdb import Base


class Tool(Base):
    """One incentive tool (a voucher batch, a flash sale, a lottery…) and its live counters."""

    __tablename__ = "engage_tools"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    campaign_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    rules: Mapped[dict[str, Any]] = mapped_column(JSON)
    starts_at: Mapped[dt.datetime] = mapped_column(DateTime)
    ends_at: Mapped[dt.datetime] = mapped_column(DateTime)
    per_user_limit: Mapped[int | None] = mapped_column(Integer, nullable=True)
    total_limit: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    issued: Mapped[int] = mapped_column(BigInteger, default=0)
    budget_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # Initial stock (units or redemptions); what is left lives in the shards.
    stock: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    shards: Mapped[int] = mapped_column(Integer, default=1)
    shared_code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime)


class ToolShard(Base):
    """A slice of a tool's stock and budget: redemptions take from one slice with a
    conditional ``UPDATE``, so N slices let N buyers commit at once instead of queueing on
    one hot row. Slices are merged when none alone can serve a request (never a false
    sold-out). ``left``/``budget_left_cents`` are NULL when unlimited."""

    __tablename__ = "engage_tool_shards"

    tool_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    shard: Mapped[int] = mapped_column(Integer, primary_key=True)
    left: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    budget_left_cents: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    used_cents: Mapped[int] = mapped_column(BigInteger)
    sold: Mapped[int] = mapped_column(BigInteger)


class Prize(Base):
    """A lottery prize with its weight and remaining stock."""

    __tablename__ = "engage_prizes"

    tool_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    prize_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    weight: Mapped[int] = mapped_column(Integer)
    stock: Mapped[int] = mapped_column(BigInteger)
    value_cents: Mapped[int] = mapped_column(BigInteger)


class Code(Base):
    """A unique one-time code of a tool; claimed by one user at issue time."""

    __tablename__ = "engage_codes"

    code: Mapped[str] = mapped_column(String(32), primary_key=True)
    tool_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class Grant(Base):
    """A coupon in a user's hands (issued), later redeemed, or returned by a rollback."""

    __tablename__ = "engage_grants"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tool_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(128), index=True)
    code: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[dt.datetime] = mapped_column(DateTime)


class UserCount(Base):
    """How much of a tool one user has taken: the per-user limit is a conditional upsert here."""

    __tablename__ = "engage_user_counts"

    tool_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    taken: Mapped[int] = mapped_column(BigInteger)


class Redemption(Base):
    """One redemption (a discount, a purchase, a draw, an activation) and its outcome."""

    __tablename__ = "engage_redemptions"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    op_key: Mapped[str] = mapped_column(String(128), unique=True)
    tool_id: Mapped[str] = mapped_column(String(64), index=True)
    user_id: Mapped[str] = mapped_column(String(128))
    grant_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    order_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    quantity: Mapped[int] = mapped_column(BigInteger)
    amount_cents: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[dt.datetime] = mapped_column(DateTime)
    matures_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    settled_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)
    converted_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True)


class OrderTool(Base):
    """Tools applied to one order: the unique group enforces stacking rules in the database."""

    __tablename__ = "engage_order_tools"
    __table_args__ = (UniqueConstraint("order_id", "group_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(String(128))
    group_key: Mapped[str] = mapped_column(String(64))
    tool_id: Mapped[str] = mapped_column(String(64))
    redemption_id: Mapped[str] = mapped_column(String(36))
    exclusive: Mapped[bool] = mapped_column(Boolean)


class Op(Base):
    """An idempotent operation: the client's key and the original result to answer replays."""

    __tablename__ = "engage_ops"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    result: Mapped[dict[str, Any]] = mapped_column(JSON)
    at: Mapped[dt.datetime] = mapped_column(DateTime)


class LedgerEntry(Base):
    """One leg of a double-entry transaction; the legs of a ``tx_id`` sum to zero per asset."""

    __tablename__ = "engage_ledger"
    __table_args__ = (Index("ix_engage_ledger_account", "account", "asset"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    tx_id: Mapped[str] = mapped_column(String(36), index=True)
    op_key: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    tool_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    account: Mapped[str] = mapped_column(String(200))
    asset: Mapped[str] = mapped_column(String(8))
    amount: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[dt.datetime] = mapped_column(DateTime)


class Outbox(Base):
    """Events written in the same transaction as the act; ``flush_outbox`` ships them."""

    __tablename__ = "engage_outbox"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    event: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(128))
    ts: Mapped[dt.datetime] = mapped_column(DateTime)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime, nullable=True, index=True)


class PointsRule(Base):
    """Points earned per event (fixed) or per whole currency unit of an order."""

    __tablename__ = "engage_points_rules"

    event: Mapped[str] = mapped_column(String(64), primary_key=True)
    points: Mapped[int] = mapped_column(BigInteger)
    per_amount: Mapped[bool] = mapped_column(Boolean)
    expiry_days: Mapped[int] = mapped_column(Integer)


class PointsLot(Base):
    """Points earned together, with their expiry; spending takes the oldest-expiring lot first."""

    __tablename__ = "engage_points_lots"
    __table_args__ = (Index("ix_engage_points_lots_user", "user_id", "expires_at"),)

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(128))
    points: Mapped[int] = mapped_column(BigInteger)
    remaining: Mapped[int] = mapped_column(BigInteger)
    source: Mapped[str] = mapped_column(String(64))
    earned_at: Mapped[dt.datetime] = mapped_column(DateTime)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime)


class TierLevel(Base):
    """A membership tier reached with ``min_points`` qualifying points."""

    __tablename__ = "engage_tier_levels"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    min_points: Mapped[int] = mapped_column(BigInteger, unique=True)


class UserTier(Base):
    """A user's current tier and since when (downgrades wait for the holding period)."""

    __tablename__ = "engage_user_tiers"

    user_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    tier: Mapped[str] = mapped_column(String(64))
    since: Mapped[dt.datetime] = mapped_column(DateTime)
    evaluated_at: Mapped[dt.datetime] = mapped_column(DateTime)
