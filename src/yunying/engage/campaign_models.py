"""Campaign state (活动) in the app database: the campaign and every status change."""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import JSON, DateTime, Float, ForeignKey, Integer, Numeric, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yunying.appdb import Base


def assignment_group(
    salt: str, holdout_share: float, user_id: str
) -> Literal["treatment", "holdout"]:
    """Deterministic: the same user, salt and share always give the same group."""
    h = hashlib.sha256(f"{salt}:{user_id}".encode()).digest()
    u = int.from_bytes(h[:8], "big") / 2**64
    return "holdout" if u < holdout_share else "treatment"


class CampaignRow(Base):
    __tablename__ = "camp_campaigns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    goal_metric: Mapped[str] = mapped_column(String(128))
    goal_target: Mapped[Decimal | None] = mapped_column(Numeric(18, 2), nullable=True)
    segment: Mapped[str] = mapped_column(String(64))
    starts_at: Mapped[datetime] = mapped_column(DateTime)  # naive UTC
    ends_at: Mapped[datetime] = mapped_column(DateTime)
    timezone: Mapped[str] = mapped_column(String(64))
    budget: Mapped[Decimal] = mapped_column(Numeric(18, 2))
    currency: Mapped[str] = mapped_column(String(3))
    channel: Mapped[str] = mapped_column(String(64))
    tools: Mapped[list[Any]] = mapped_column(JSON)
    holdout_share: Mapped[float] = mapped_column(Float)
    owner: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16))
    salt: Mapped[str] = mapped_column(String(32))
    approved_by: Mapped[str | None] = mapped_column(String(254), nullable=True)
    approved_role: Mapped[str | None] = mapped_column(String(16), nullable=True)
    approved_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    review_notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    assigned_treatment: Mapped[int] = mapped_column(Integer, default=0)
    assigned_holdout: Mapped[int] = mapped_column(Integer, default=0)
    last_assigned_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_by: Mapped[str] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


class CampaignTransition(Base):
    __tablename__ = "camp_transitions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    campaign_id: Mapped[str] = mapped_column(
        ForeignKey("camp_campaigns.id", ondelete="CASCADE"), index=True
    )
    action: Mapped[str] = mapped_column(String(16))
    from_status: Mapped[str | None] = mapped_column(String(16), nullable=True)
    to_status: Mapped[str] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(254))
    role: Mapped[str] = mapped_column(String(16))
    at: Mapped[datetime] = mapped_column(DateTime)
    note: Mapped[str] = mapped_column(Text, default="")
