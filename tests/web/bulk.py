"""A project with many events, written by DuckDB itself (seconds for millions of rows).

Used where a query must take real time: the timeout and concurrency tests and
``benchmarks/web_concurrency_bench.py``. Deterministic: row ``i`` is always the same event.
"""

from __future__ import annotations

from pathlib import Path

from tests.conftest import make_project
from yunying.config import Settings
from yunying.warehouse.engine import Warehouse

EVENTS = ("view", "add_to_cart", "pay")


def bulk_project(folder: Path, events: int, users: int = 50_000, days: int = 365, groups: int = 120) -> Settings:
    """``events`` events of ``users`` users over ``days`` days up to 2026-03-05, each with a
    ``src`` property of ``groups`` values (for breakdowns) and a ``price``."""
    s = make_project(folder)
    with Warehouse(s, "duckdb") as wh:
        wh.duck.execute(
            f"""
            INSERT INTO events
            SELECT 'b' || i, ['view', 'add_to_cart', 'pay'][1 + (i % 3)::INT], 'u' || (i % {users}),
                   TIMESTAMP '2026-03-05 16:00:00' - to_seconds(((i * 7919) % ({days} * 86400))::BIGINT),
                   NULL, 's' || (i // 5),
                   '{{"src":"g' || (i % {groups}) || '","price":' || (i % 97) || '}}'
            FROM range({events}) t(i)
            """
        )
        wh.duck.execute(
            f"INSERT INTO users SELECT 'u' || i, TIMESTAMP '2025-01-01', 'ads', NULL FROM range({users}) t(i)"
        )
        wh.bump_version()
    return s
