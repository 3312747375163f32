"""200 concurrent clients race for a flash sale on a real PostgreSQL; then the same, killed mid-run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.engage.conftest import T0
from tests.engage.racers import race
from yunying.appdb import engine_for, migrate
from yunying.engage import service as S
from yunying.engage.schemas import RedeemRequest, ToolSpec

pytestmark = pytest.mark.postgres

STOCK, BUDGET, LIMIT, USERS = 1000, Decimal("5000"), 4, 400


def flash_sale(url: str, shards: int = 1) -> str:
    tid = f"flash-{uuid.uuid4().hex[:8]}"
    S.create_tool(url, ToolSpec(
        id=tid, kind="flash_sale", name="秒杀", starts_at=T0, ends_at=T0.replace(year=2030),
        rules={"price": "5", "list_price": "10"}, stock=STOCK, budget=BUDGET, per_user_limit=LIMIT, shards=shards,
    ))
    return tid


def consistent(url: str, tid: str) -> int:
    """Check the books of one sale; returns the units sold."""
    tool = S.get_tool(url, tid)
    # One snapshot for every count, so the books are compared at a single point in time.
    with engine_for(url).connect().execution_options(isolation_level="REPEATABLE READ") as c:
        def q(sql: str) -> list[sa.Row[tuple[object, ...]]]:
            return list(c.execute(sa.text(sql), {"t": tid}))

        red = q("SELECT id, op_key, user_id, quantity, amount_cents FROM engage_redemptions "
                "WHERE tool_id = :t AND status = 'redeemed'")
        legs = Counter(r[0] for r in q("SELECT op_key FROM engage_ledger WHERE tool_id = :t AND kind = 'redeem'"))
        ops = q("SELECT count(*) FROM engage_ops WHERE key LIKE :t || ':%'")[0][0]
        outbox = q("SELECT count(*) FROM engage_outbox WHERE properties::jsonb->>'tool_id' = :t")[0][0]
        per_user = q("SELECT user_id, taken FROM engage_user_counts WHERE tool_id = :t")
        unbalanced = q("SELECT tx_id FROM engage_ledger WHERE tool_id = :t GROUP BY tx_id, asset "
                       "HAVING sum(amount) <> 0")
        bal = {str(r[0]): int(r[1]) for r in q(
            "SELECT account || '|' || asset, sum(amount) FROM engage_ledger WHERE tool_id = :t "
            "AND account NOT LIKE 'user:%' GROUP BY account, asset")}
    sold = sum(int(r[3]) for r in red)
    assert tool.sold == sold and tool.stock == STOCK - sold
    assert tool.budget_used == Decimal(sold * 5) and tool.budget_used <= BUDGET
    assert not unbalanced
    assert all(legs[r[1]] == 4 for r in red) and len(legs) == len(red)  # each redemption once in the ledger
    assert bal.get(f"stock:{tid}|unit", 0) == -sold and bal.get(f"budget:{tid}|money", 0) == -sold * 500
    assert ops == len(red) and outbox == len(red)
    counts = Counter(str(r[2]) for r in red)
    assert max(counts.values(), default=0) <= LIMIT
    assert dict(counts) == {str(u): int(n) for u, n in per_user if int(n)}
    return sold


def _wait_quiet(url: str, limit: float = 30.0) -> None:
    """After a SIGKILL the server still finishes (or rolls back) the statements the dead
    clients had sent; the books are read once nothing else is running."""
    deadline = time.time() + limit
    with engine_for(url).connect() as c:
        while time.time() < deadline:
            busy = c.execute(sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND state <> 'idle'"
            )).scalar()
            c.rollback()
            if not busy:
                return
            time.sleep(0.1)


def test_200_clients_never_oversell(pg_url: str) -> None:
    migrate(pg_url)
    tid = flash_sale(pg_url, shards=8)  # sharded stock and budget: merged for the last units
    out = race(pg_url, tid, threads=200, n_users=USERS, pairs=20)
    assert set(out.errors) <= {"engage.sold_out", "engage.budget_exhausted", "engage.user_limit"}, out.errors
    assert consistent(pg_url, tid) == STOCK
    assert len(out.results) == STOCK + 20  # 20 pairs raced with one key: 20 replays
    by_key: dict[str, set[str]] = {}
    for req, res in out.results:
        by_key.setdefault(req.key, set()).add(res.redemption_id)
    assert len(by_key) == STOCK and all(len(v) == 1 for v in by_key.values())
    assert sum(1 for _, r in out.results if r.replayed) == 20
    # Replays after the sale answer the original result.
    for req, res in out.results[:50]:
        again = S.redeem(pg_url, req)
        assert again.replayed and again.redemption_id == res.redemption_id and again.at == res.at


def test_killed_mid_run_leaves_a_consistent_ledger(pg_url: str) -> None:
    migrate(pg_url)
    tid = flash_sale(pg_url)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": f"{root}{os.pathsep}{root / 'src'}"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.engage.racers", pg_url, tid, "200", str(USERS)],
                            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while S.get_tool(pg_url, tid).sold < 250:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    _wait_quiet(pg_url)
    sold = consistent(pg_url, tid)
    assert 250 <= sold < STOCK
    # Restart: new clients finish the sale; the books still hold, exactly 1,000 sold.
    race(pg_url, tid, threads=20, n_users=USERS)
    assert consistent(pg_url, tid) == STOCK
    req = RedeemRequest(key=f"{tid}:late", tool_id=tid, user_id="late")
    with pytest.raises(Exception, match="sold out"):
        S.redeem(pg_url, req)
