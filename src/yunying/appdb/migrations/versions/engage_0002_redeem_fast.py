"""engage: one-round-trip redemption function on PostgreSQL (``engage_redeem_fast``)

The function does in one statement what the generic path does in one transaction for a
tool taken directly (no grant, no order, no lottery): claim the idempotency key, bump the
per-user count, write the redemption, the ledger legs and the outbox event, then take
stock and budget from one shard by conditional ``UPDATE`` (a free one if any, else it
waits for a busy one that can serve). It returns ``false`` when the key already exists
(nothing written) and raises SQLSTATE ``YY001`` when the limit or no single shard can serve, which aborts the whole statement: the caller then runs the
generic path, which gives the exact answer (replay, limit, waiting on a busy shard,
merging shards, sold out). SQLite has no such function and always uses the generic path.

Revision ID: engage_0002
Revises: engage_0001
Create Date: 2026-11-23
"""

from __future__ import annotations

from alembic import op

revision = "engage_0002"
down_revision = "engage_0001"
branch_labels = None
depends_on = None

FUNCTION = """
CREATE OR REPLACE FUNCTION engage_redeem_fast(
    p_key text, p_result json, p_at timestamp, p_tool text, p_user text, p_limit bigint,
    p_quantity bigint, p_cents bigint, p_has_stock boolean, p_shards integer,
    p_rid text, p_detail json, p_matures timestamp,
    p_tx text, p_accounts text[], p_assets text[], p_amounts bigint[],
    p_event text, p_props json
) RETURNS boolean
LANGUAGE plpgsql AS $fn$
DECLARE
    v_shard integer;
BEGIN
    INSERT INTO engage_ops (key, kind, result, at) VALUES (p_key, 'redeem', p_result, p_at)
    ON CONFLICT (key) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF p_limit IS NOT NULL THEN
        INSERT INTO engage_user_counts AS u (tool_id, user_id, taken) VALUES (p_tool, p_user, p_quantity)
        ON CONFLICT (tool_id, user_id) DO UPDATE SET taken = u.taken + p_quantity
        WHERE u.taken + p_quantity <= p_limit;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'engage_redeem_fast: per-user limit' USING ERRCODE = 'YY001';
        END IF;
    END IF;
    INSERT INTO engage_redemptions (id, op_key, tool_id, user_id, grant_id, order_id, quantity, amount_cents,
                                    status, detail, at, matures_at)
    VALUES (p_rid, p_key, p_tool, p_user, NULL, NULL, p_quantity, p_cents, 'redeemed', p_detail, p_at, p_matures);
    IF cardinality(p_accounts) > 0 THEN
        INSERT INTO engage_ledger (tx_id, op_key, kind, tool_id, account, asset, amount, at)
        SELECT p_tx, p_key, 'redeem', p_tool, l.account, l.asset, l.amount, p_at
        FROM unnest(p_accounts, p_assets, p_amounts) WITH ORDINALITY AS l(account, asset, amount, n)
        ORDER BY l.n;
    END IF;
    INSERT INTO engage_outbox (event, user_id, ts, properties, sent_at) VALUES (p_event, p_user, p_at, p_props, NULL);
    -- Last: stock and budget from one shard that can serve and that nobody holds.
    IF p_shards = 1 THEN
        v_shard := 0;
    ELSE
        SELECT s.shard INTO v_shard FROM engage_tool_shards s
        WHERE s.tool_id = p_tool
          AND (NOT p_has_stock OR s."left" >= p_quantity)
          AND (p_cents = 0 OR s.budget_left_cents IS NULL OR s.budget_left_cents >= p_cents)
        ORDER BY random() LIMIT 1 FOR UPDATE SKIP LOCKED;
        IF NOT FOUND THEN
            -- Every serving shard is busy: wait for one of them (the UPDATE below waits for
            -- its lock and re-checks the conditions on the newest row).
            SELECT s.shard INTO v_shard FROM engage_tool_shards s
            WHERE s.tool_id = p_tool
              AND (NOT p_has_stock OR s."left" >= p_quantity)
              AND (p_cents = 0 OR s.budget_left_cents IS NULL OR s.budget_left_cents >= p_cents)
            ORDER BY random() LIMIT 1;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'engage_redeem_fast: no shard can serve' USING ERRCODE = 'YY001';
            END IF;
        END IF;
    END IF;
    UPDATE engage_tool_shards s
    SET "left" = s."left" - p_quantity, budget_left_cents = s.budget_left_cents - p_cents,
        used_cents = s.used_cents + p_cents, sold = s.sold + p_quantity
    WHERE s.tool_id = p_tool AND s.shard = v_shard
      AND (NOT p_has_stock OR s."left" >= p_quantity)
      AND (p_cents = 0 OR s.budget_left_cents IS NULL OR s.budget_left_cents >= p_cents);
    IF NOT FOUND THEN
        RAISE EXCEPTION 'engage_redeem_fast: shard cannot serve' USING ERRCODE = 'YY001';
    END IF;
    RETURN true;
END
$fn$
"""

DROP = (
    "DROP FUNCTION IF EXISTS engage_redeem_fast(text, json, timestamp, text, text, bigint, bigint, bigint, boolean,"
    " integer, text, json, timestamp, text, text[], text[], bigint[], text, json)"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(FUNCTION)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(DROP)
