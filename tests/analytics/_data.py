"""Hand-made events (UTC) whose analyses are computed by hand in the tests.

The project zone is Asia/Shanghai (UTC+8), so local day = UTC + 8 h.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pyarrow as pa

from yunying.warehouse.engine import Warehouse

D = datetime

ROWS: list[tuple[str, str, datetime, dict[str, Any] | None]] = [
    # user, event, ts (UTC), properties
    ("u1", "view", D(2024, 3, 4, 1), {"channel": "ads"}),
    ("u1", "cart", D(2024, 3, 4, 2), None),
    ("u1", "pay", D(2024, 3, 5, 1), {"revenue": 100.5}),
    ("u2", "view", D(2024, 3, 4, 10), {"channel": "ads"}),
    ("u2", "cart", D(2024, 3, 6, 10), None),
    ("u2", "pay", D(2024, 3, 20, 10), {"revenue": 30}),  # 16 days after view: too late
    ("u3", "view", D(2024, 3, 5, 0), {"channel": "organic"}),
    ("u3", "view", D(2024, 3, 10, 0), {"channel": "ads"}),  # a new attempt
    ("u3", "cart", D(2024, 3, 20, 0), None),
    ("u3", "pay", D(2024, 3, 24, 0), {"revenue": 20}),  # exactly 14 days after 2nd view
    ("u4", "cart", D(2024, 3, 4, 3), None),  # never viewed
    ("u5", "view", D(2024, 3, 6, 16, 30), None),  # local 2024-03-07 00:30
    ("u5", "pay", D(2024, 3, 6, 17), {"revenue": 7}),
    ("u6", "view", D(2024, 3, 4, 12), None),
    ("u6", "cart", D(2024, 3, 4, 12), None),  # same timestamp as the view
    ("u7", "view", D(2024, 3, 4, 5), None),
    ("u7", "search", D(2024, 3, 4, 6), None),  # something in between (strict mode)
    ("u7", "cart", D(2024, 3, 4, 7), None),
]


def table(rows: list[tuple[str, str, datetime, dict[str, Any] | None]]) -> pa.Table:
    return pa.table(
        {
            "event_id": [f"e{i:05d}" for i in range(len(rows))],
            "event": [r[1] for r in rows],
            "user_id": [r[0] for r in rows],
            "ts": pa.array([r[2] for r in rows], pa.timestamp("us")),
            "account_id": pa.nulls(len(rows), pa.string()),
            "session_id": pa.nulls(len(rows), pa.string()),
            "properties": [json.dumps(r[3]) if r[3] is not None else None for r in rows],
        }
    )


def load(wh: Warehouse, rows: list[tuple[str, str, datetime, dict[str, Any] | None]] | None = None) -> Warehouse:
    wh.append_arrow("events", table(ROWS if rows is None else rows))
    wh.refresh()
    return wh
