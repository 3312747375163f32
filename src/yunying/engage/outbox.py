"""Ship the outbox to the warehouse ``events`` table, idempotently.

The event id is ``engage-<outbox id>``; before appending, ids already in the warehouse are
skipped, so a flush that crashed between appending and marking rows sent can simply run
again without duplicating events.
"""

from __future__ import annotations

import json

import pyarrow as pa
from sqlalchemy import select, update

from yunying.appdb import open_appdb, session_scope
from yunying.config import Settings
from yunying.engage.models import Outbox
from yunying.engage.schemas import FlushResult
from yunying.engage.service import now
from yunying.warehouse.engine import Warehouse, open_warehouse


def event_id(outbox_id: int) -> str:
    return f"engage-{outbox_id}"


def flush_into(url: str, wh: Warehouse, batch: int = 50_000) -> FlushResult:
    """Append pending outbox rows to ``wh`` in batches and mark them sent."""
    sent = appended = 0
    while True:
        with session_scope(url) as s:
            rows = s.execute(
                select(Outbox.id, Outbox.event, Outbox.user_id, Outbox.ts, Outbox.properties)
                .where(Outbox.sent_at.is_(None))
                .order_by(Outbox.id)
                .limit(batch)
            ).all()
        if not rows:
            return FlushResult(sent=sent, appended=appended)
        ids = [event_id(r[0]) for r in rows]
        ev = wh.table("events")
        present = set(wh.execute(ev.filter(ev.event_id.isin(ids)).select("event_id"))["event_id"])
        fresh = [r for r in rows if event_id(r[0]) not in present]
        if fresh:
            data = pa.table(
                {
                    "event_id": [event_id(r[0]) for r in fresh],
                    "event": [r[1] for r in fresh],
                    "user_id": [r[2] for r in fresh],
                    "ts": pa.array([r[3] for r in fresh], type=pa.timestamp("us")),
                    "account_id": pa.nulls(len(fresh), pa.string()),
                    "session_id": pa.nulls(len(fresh), pa.string()),
                    "properties": [json.dumps(r[4], ensure_ascii=False, sort_keys=True) for r in fresh],
                }
            )
            appended += wh.append_arrow("events", data)
            wh.refresh()
        with session_scope(url) as s:
            s.execute(update(Outbox).where(Outbox.id.in_([r[0] for r in rows])).values(sent_at=now()))
        sent += len(rows)


def flush_outbox(settings: Settings, batch: int = 50_000) -> FlushResult:
    """Append every pending engage event to the project's warehouse."""
    url = open_appdb(settings)
    with open_warehouse(settings) as wh:
        return flush_into(url, wh, batch)
