"""Segment state in the app database: definitions, current members, history, tags.

Membership is materialised at each refresh so ``is_member`` is a primary-key lookup for
the tools and the web app, and so joins/leaves can be recorded with their times.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from yunying.appdb import Base


class SegmentRow(Base):
    __tablename__ = "seg_segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    kind: Mapped[str] = mapped_column(String(16))  # dynamic | static
    rule: Mapped[str] = mapped_column(Text)  # JSON of the rule tree
    refresh_minutes: Mapped[int | None] = mapped_column(Integer, nullable=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    last_refreshed_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime)
    created_by: Mapped[str] = mapped_column(String(254), default="")


class SegmentMember(Base):
    __tablename__ = "seg_members"

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("seg_segments.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    joined_at: Mapped[datetime] = mapped_column(DateTime)


class MembershipChange(Base):
    __tablename__ = "seg_membership_log"
    __table_args__ = (Index("ix_seg_membership_log_seg_user", "segment_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    segment_id: Mapped[int] = mapped_column(ForeignKey("seg_segments.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(256))
    change: Mapped[str] = mapped_column(String(8))  # joined | left
    at: Mapped[datetime] = mapped_column(DateTime)


class UserTag(Base):
    __tablename__ = "seg_user_tags"

    tag: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(256), primary_key=True)
    added_at: Mapped[datetime] = mapped_column(DateTime)
    added_by: Mapped[str] = mapped_column(String(254), default="")
