"""engage: incentive tools, grants, codes, redemptions, ledger, outbox, points and tiers

Revision ID: engage_0001
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "engage_0001"
down_revision = None
branch_labels = ("engage",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "engage_codes",
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("tool_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("claimed_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_engage_codes")),
    )
    op.create_index(op.f("ix_engage_codes_tool_id"), "engage_codes", ["tool_id"], unique=False)
    op.create_table(
        "engage_grants",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("tool_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("issued_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engage_grants")),
    )
    op.create_index(op.f("ix_engage_grants_tool_id"), "engage_grants", ["tool_id"], unique=False)
    op.create_index(op.f("ix_engage_grants_user_id"), "engage_grants", ["user_id"], unique=False)
    op.create_table(
        "engage_ledger",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("tx_id", sa.String(length=36), nullable=False),
        sa.Column("op_key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("tool_id", sa.String(length=64), nullable=True),
        sa.Column("account", sa.String(length=200), nullable=False),
        sa.Column("asset", sa.String(length=8), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engage_ledger")),
    )
    op.create_index("ix_engage_ledger_account", "engage_ledger", ["account", "asset"], unique=False)
    op.create_index(op.f("ix_engage_ledger_tx_id"), "engage_ledger", ["tx_id"], unique=False)
    op.create_table(
        "engage_ops",
        sa.Column("key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_engage_ops")),
    )
    op.create_table(
        "engage_order_tools",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("order_id", sa.String(length=128), nullable=False),
        sa.Column("group_key", sa.String(length=64), nullable=False),
        sa.Column("tool_id", sa.String(length=64), nullable=False),
        sa.Column("redemption_id", sa.String(length=36), nullable=False),
        sa.Column("exclusive", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engage_order_tools")),
        sa.UniqueConstraint("order_id", "group_key", name=op.f("uq_engage_order_tools_order_id")),
    )
    op.create_table(
        "engage_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("ts", sa.DateTime(), nullable=False),
        sa.Column("properties", sa.JSON(), nullable=False),
        sa.Column("sent_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engage_outbox")),
    )
    op.create_index(op.f("ix_engage_outbox_sent_at"), "engage_outbox", ["sent_at"], unique=False)
    op.create_table(
        "engage_points_lots",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("remaining", sa.BigInteger(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("earned_at", sa.DateTime(), nullable=False),
        sa.Column("expires_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engage_points_lots")),
    )
    op.create_index(
        "ix_engage_points_lots_user", "engage_points_lots", ["user_id", "expires_at"], unique=False
    )
    op.create_table(
        "engage_points_rules",
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("per_amount", sa.Boolean(), nullable=False),
        sa.Column("expiry_days", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("event", name=op.f("pk_engage_points_rules")),
    )
    op.create_table(
        "engage_prizes",
        sa.Column("tool_id", sa.String(length=64), nullable=False),
        sa.Column("prize_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("stock", sa.BigInteger(), nullable=False),
        sa.Column("value_cents", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tool_id", "prize_id", name=op.f("pk_engage_prizes")),
    )
    op.create_table(
        "engage_redemptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("op_key", sa.String(length=128), nullable=False),
        sa.Column("tool_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("grant_id", sa.String(length=36), nullable=True),
        sa.Column("order_id", sa.String(length=128), nullable=True),
        sa.Column("quantity", sa.BigInteger(), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.Column("matures_at", sa.DateTime(), nullable=True),
        sa.Column("settled_at", sa.DateTime(), nullable=True),
        sa.Column("converted_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engage_redemptions")),
        sa.UniqueConstraint("op_key", name=op.f("uq_engage_redemptions_op_key")),
    )
    op.create_index(
        op.f("ix_engage_redemptions_tool_id"), "engage_redemptions", ["tool_id"], unique=False
    )
    op.create_table(
        "engage_tier_levels",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("min_points", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_engage_tier_levels")),
        sa.UniqueConstraint("min_points", name=op.f("uq_engage_tier_levels_min_points")),
    )
    op.create_table(
        "engage_tool_shards",
        sa.Column("tool_id", sa.String(length=64), nullable=False),
        sa.Column("shard", sa.Integer(), nullable=False),
        sa.Column("left", sa.BigInteger(), nullable=True),
        sa.Column("budget_left_cents", sa.BigInteger(), nullable=True),
        sa.Column("used_cents", sa.BigInteger(), nullable=False),
        sa.Column("sold", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tool_id", "shard", name=op.f("pk_engage_tool_shards")),
    )
    op.create_table(
        "engage_tools",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("campaign_id", sa.String(length=64), nullable=True),
        sa.Column("rules", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.DateTime(), nullable=False),
        sa.Column("ends_at", sa.DateTime(), nullable=False),
        sa.Column("per_user_limit", sa.Integer(), nullable=True),
        sa.Column("total_limit", sa.BigInteger(), nullable=True),
        sa.Column("issued", sa.BigInteger(), nullable=False),
        sa.Column("budget_cents", sa.BigInteger(), nullable=True),
        sa.Column("stock", sa.BigInteger(), nullable=True),
        sa.Column("shards", sa.Integer(), nullable=False),
        sa.Column("shared_code", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_engage_tools")),
    )
    op.create_table(
        "engage_user_counts",
        sa.Column("tool_id", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("taken", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("tool_id", "user_id", name=op.f("pk_engage_user_counts")),
    )
    op.create_table(
        "engage_user_tiers",
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("tier", sa.String(length=64), nullable=False),
        sa.Column("since", sa.DateTime(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_engage_user_tiers")),
    )


def downgrade() -> None:
    op.drop_table("engage_user_tiers")
    op.drop_table("engage_user_counts")
    op.drop_table("engage_tools")
    op.drop_table("engage_tool_shards")
    op.drop_table("engage_tier_levels")
    op.drop_index(op.f("ix_engage_redemptions_tool_id"), table_name="engage_redemptions")
    op.drop_table("engage_redemptions")
    op.drop_table("engage_prizes")
    op.drop_table("engage_points_rules")
    op.drop_index("ix_engage_points_lots_user", table_name="engage_points_lots")
    op.drop_table("engage_points_lots")
    op.drop_index(op.f("ix_engage_outbox_sent_at"), table_name="engage_outbox")
    op.drop_table("engage_outbox")
    op.drop_table("engage_order_tools")
    op.drop_table("engage_ops")
    op.drop_index(op.f("ix_engage_ledger_tx_id"), table_name="engage_ledger")
    op.drop_index("ix_engage_ledger_account", table_name="engage_ledger")
    op.drop_table("engage_ledger")
    op.drop_index(op.f("ix_engage_grants_user_id"), table_name="engage_grants")
    op.drop_index(op.f("ix_engage_grants_tool_id"), table_name="engage_grants")
    op.drop_table("engage_grants")
    op.drop_index(op.f("ix_engage_codes_tool_id"), table_name="engage_codes")
    op.drop_table("engage_codes")
