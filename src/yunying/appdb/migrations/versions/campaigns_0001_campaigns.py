"""campaigns: campaigns with approval and assignment counters, status transitions

Revision ID: campaigns_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "campaigns_0001"
down_revision = None
branch_labels = ("campaigns",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "camp_campaigns",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("goal_metric", sa.String(128), nullable=False),
        sa.Column("goal_target", sa.Numeric(18, 2), nullable=True),
        sa.Column("segment", sa.String(64), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("budget", sa.Numeric(18, 2), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("channel", sa.String(64), nullable=False),
        sa.Column("tools", sa.JSON(), nullable=False),
        sa.Column("holdout_share", sa.Float(), nullable=False),
        sa.Column("owner", sa.String(254), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("salt", sa.String(32), nullable=False),
        sa.Column("approved_by", sa.String(254), nullable=True),
        sa.Column("approved_role", sa.String(16), nullable=True),
        sa.Column("approved_at", sa.DateTime(), nullable=True),
        sa.Column("review_notes", sa.Text(), nullable=True),
        sa.Column("assigned_treatment", sa.Integer(), nullable=False),
        sa.Column("assigned_holdout", sa.Integer(), nullable=False),
        sa.Column("last_assigned_at", sa.DateTime(), nullable=True),
        sa.Column("created_by", sa.String(254), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "camp_transitions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "campaign_id",
            sa.String(64),
            sa.ForeignKey("camp_campaigns.id", ondelete="CASCADE"),
            nullable=False,
        ),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("from_status", sa.String(16), nullable=True),
        sa.Column("to_status", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(254), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
    )
    op.create_index("ix_camp_transitions_campaign_id", "camp_transitions", ["campaign_id"])


def downgrade() -> None:
    op.drop_index("ix_camp_transitions_campaign_id", "camp_transitions")
    op.drop_table("camp_transitions")
    op.drop_table("camp_campaigns")
