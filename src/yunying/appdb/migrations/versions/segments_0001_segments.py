"""segments: definitions, materialised members, membership history, user tags

Revision ID: segments_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "segments_0001"
down_revision = None
branch_labels = ("segments",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "seg_segments",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("rule", sa.Text(), nullable=False),
        sa.Column("refresh_minutes", sa.Integer(), nullable=True),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("last_refreshed_at", sa.DateTime(), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(254), nullable=False),
    )
    op.create_table(
        "seg_members",
        sa.Column(
            "segment_id",
            sa.Integer(),
            sa.ForeignKey("seg_segments.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("joined_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "seg_membership_log",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "segment_id",
            sa.Integer(),
            sa.ForeignKey("seg_segments.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("user_id", sa.String(256), nullable=False),
        sa.Column("change", sa.String(8), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
    )
    op.create_index(
        "ix_seg_membership_log_seg_user", "seg_membership_log", ["segment_id", "user_id"]
    )
    op.create_table(
        "seg_user_tags",
        sa.Column("tag", sa.String(64), primary_key=True),
        sa.Column("user_id", sa.String(256), primary_key=True),
        sa.Column("added_at", sa.DateTime(), nullable=False),
        sa.Column("added_by", sa.String(254), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("seg_user_tags")
    op.drop_index("ix_seg_membership_log_seg_user", "seg_membership_log")
    op.drop_table("seg_membership_log")
    op.drop_table("seg_members")
    op.drop_table("seg_segments")
