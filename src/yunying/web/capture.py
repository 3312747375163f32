"""Event capture: validate against the events contract, journal durably, flush to the warehouse.

DuckDB allows one writing process, and the CLI must keep working while the server runs,
so the server never holds the warehouse open. Accepted events go to a SQLite journal
(WAL, synchronous=FULL, ``event_id`` primary key, one transaction per batch) before the
response is sent; ``flush`` later moves them into the warehouse with an anti-join on
``event_id``, so a flush interrupted at any point can simply run again.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any, Literal

import ibis
import pyarrow as pa
from pydantic import BaseModel

from yunying import clock
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.warehouse.contracts import EVENTS
from yunying.warehouse.engine import Warehouse, arrow_schema

MAX_EVENTS = 1000
MAX_BYTES = 1024 * 1024
FIELDS = frozenset(EVENTS.names)
_MAX_LEN = {c.name: c.max_length for c in EVENTS.columns}
_REQUIRED = [c.name for c in EVENTS.columns if c.required]
_OPTIONAL_STR = ("account_id", "session_id")


class EventOutcome(BaseModel):
    index: int
    event_id: str | None
    status: Literal["accepted", "duplicate", "rejected"]
    reason: str | None = None


class CaptureResult(BaseModel):
    accepted: int
    duplicates: int
    rejected: int
    results: list[EventOutcome]


class FlushResult(BaseModel):
    moved: int
    already_present: int
    pending: int


def journal_path(settings: Settings) -> Path:
    return settings.data_dir / "capture.db"


def parse_ts(value: str) -> dt.datetime:
    """ISO 8601; an offset is converted to UTC, a naive time is taken as UTC."""
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
    if not (1970 <= parsed.year <= 2200):
        raise ValueError("year out of range")
    return parsed


def validate_event(raw: Any, t: Any) -> tuple[tuple[str, str, str, str, str | None, str | None, str | None] | None, str | None]:
    """One event → (row, None) or (None, reason). ``t`` is the translator for the reason."""
    if not isinstance(raw, dict):
        return None, t("capture.not_object")
    extra = [k for k in raw if k not in FIELDS]
    if extra:
        return None, t("capture.unknown_field", field=str(extra[0])[:64])
    for name in _REQUIRED:
        v = raw.get(name)
        if v is None or v == "":
            return None, t("capture.missing", field=name)
    for name in ("event_id", "event", "user_id", "ts", *_OPTIONAL_STR):
        v = raw.get(name)
        if v is None:
            continue
        if not isinstance(v, str):
            return None, t("capture.not_string", field=name)
        limit = _MAX_LEN.get(name)
        if limit is not None and len(v) > limit:
            return None, t("capture.too_long", field=name, max=limit)
    try:
        ts = parse_ts(raw["ts"])
    except ValueError:
        return None, t("capture.bad_ts", value=str(raw["ts"])[:64])
    props = raw.get("properties")
    if props is not None and not isinstance(props, dict):
        return None, t("capture.bad_properties")
    return (
        raw["event_id"],
        raw["event"],
        raw["user_id"],
        ts.isoformat(sep=" "),
        raw.get("account_id"),
        raw.get("session_id"),
        json.dumps(props, ensure_ascii=False, separators=(",", ":")) if props is not None else None,
    ), None


_INSERT = (
    "INSERT INTO capture_journal (event_id, event, user_id, ts, account_id, session_id,"
    " properties, received_at) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT(event_id) DO NOTHING"
)


class _WriteRequest:
    __slots__ = ("rows", "result", "error", "done")

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.result: list[bool] = []
        self.error: BaseException | None = None
        self.done = threading.Event()


class Journal:
    """The durable capture journal (one SQLite file per project, shared by all workers)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.Lock()
        self._queue_lock = threading.Lock()
        self._queue: list[_WriteRequest] = []
        self._writing = False
        self._con = sqlite3.connect(str(path), timeout=30, check_same_thread=False, isolation_level=None)
        self._con.execute("PRAGMA journal_mode=WAL")
        self._con.execute("PRAGMA synchronous=FULL")
        self._con.execute("PRAGMA busy_timeout=30000")
        self._con.execute(
            "CREATE TABLE IF NOT EXISTS capture_journal ("
            " event_id TEXT PRIMARY KEY, event TEXT NOT NULL, user_id TEXT NOT NULL,"
            " ts TEXT NOT NULL, account_id TEXT, session_id TEXT, properties TEXT,"
            " received_at TEXT NOT NULL, flushed INTEGER NOT NULL DEFAULT 0)"
        )
        self._con.execute(
            "CREATE INDEX IF NOT EXISTS capture_pending ON capture_journal(flushed) WHERE flushed = 0"
        )

    def close(self) -> None:
        with self._lock:
            self._con.close()

    def write(self, rows: list[tuple[Any, ...]]) -> list[bool]:
        """Insert durably; True per row that was new (False: its event_id was there already).

        Group commit: concurrent callers' batches share one transaction, so one fsync
        covers many batches. Each caller returns only after the COMMIT that holds its rows;
        if that transaction fails, every caller in it gets the error (nothing acknowledged).
        """
        if not rows:
            return []
        req = _WriteRequest(rows)
        with self._queue_lock:
            self._queue.append(req)
            lead = not self._writing
            if lead:
                self._writing = True
        if not lead:
            req.done.wait()
        else:
            while True:
                with self._queue_lock:
                    group, self._queue = self._queue, []
                    if not group:
                        self._writing = False
                        break
                self._commit_group(group)
        if req.error is not None:
            raise req.error
        return req.result

    def _commit_group(self, group: list[_WriteRequest]) -> None:
        now = clock.now().isoformat(sep=" ")
        try:
            with self._lock:
                cur = self._con.cursor()
                cur.execute("BEGIN IMMEDIATE")
                try:
                    # Which ids exist already (inside the write transaction, so no other
                    # process can add one meanwhile), then one executemany for the rest.
                    ids = [r[0] for req in group for r in req.rows]
                    present: set[str] = set()
                    for i in range(0, len(ids), 900):
                        chunk = ids[i : i + 900]
                        marks = ",".join("?" * len(chunk))
                        present.update(
                            x[0] for x in cur.execute(
                                f"SELECT event_id FROM capture_journal WHERE event_id IN ({marks})", chunk
                            )
                        )
                    fresh: list[tuple[Any, ...]] = []
                    for req in group:
                        out = []
                        for r in req.rows:
                            new = r[0] not in present
                            if new:
                                present.add(r[0])
                                fresh.append((*r, now))
                            out.append(new)
                        req.result = out
                    cur.executemany(_INSERT, fresh)
                    cur.execute("COMMIT")
                except BaseException:
                    cur.execute("ROLLBACK")
                    raise
        except BaseException as e:  # every caller in the group learns it failed
            for req in group:
                req.error = e
                req.result = []
        finally:
            for req in group:
                req.done.set()

    def pending(self, limit: int) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._con.execute(
                "SELECT event_id, event, user_id, ts, account_id, session_id, properties"
                " FROM capture_journal WHERE flushed = 0 LIMIT ?",
                (limit,),
            ).fetchall()

    def pending_count(self) -> int:
        with self._lock:
            return int(self._con.execute("SELECT count(*) FROM capture_journal WHERE flushed = 0").fetchone()[0])

    def counts(self) -> dict[str, int]:
        with self._lock:
            total, pending = self._con.execute(
                "SELECT count(*), coalesce(sum(flushed = 0), 0) FROM capture_journal"
            ).fetchone()
        return {"journaled": int(total), "pending": int(pending)}

    def mark_flushed(self, ids: list[str]) -> None:
        with self._lock:
            cur = self._con.cursor()
            cur.execute("BEGIN IMMEDIATE")
            try:
                cur.executemany(
                    "UPDATE capture_journal SET flushed = 1 WHERE event_id = ?", [(i,) for i in ids]
                )
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise


def capture_batch(journal: Journal, events: list[Any], t: Any) -> dict[str, Any]:
    """Validate every event, journal the valid ones durably, answer per event.

    Returns the ``CaptureResult`` document as plain data: this is the hot path, and
    building then re-validating 1,000 models per request would halve the throughput.
    """
    outcomes: list[dict[str, Any]] = []
    rows: list[tuple[Any, ...]] = []
    row_index: list[int] = []
    seen: set[str] = set()
    for i, raw in enumerate(events):
        row, reason = validate_event(raw, t)
        eid = raw.get("event_id") if isinstance(raw, dict) else None
        eid = eid if isinstance(eid, str) else None
        if row is None:
            outcomes.append({"index": i, "event_id": eid, "status": "rejected", "reason": reason})
            continue
        if row[0] in seen:  # repeated inside one batch
            outcomes.append({"index": i, "event_id": eid, "status": "duplicate", "reason": None})
            continue
        seen.add(row[0])
        outcomes.append({"index": i, "event_id": eid, "status": "accepted", "reason": None})
        rows.append(row)
        row_index.append(i)
    for i, new in zip(row_index, journal.write(rows), strict=True):
        if not new:
            outcomes[i]["status"] = "duplicate"
    acc = sum(o["status"] == "accepted" for o in outcomes)
    dup = sum(o["status"] == "duplicate" for o in outcomes)
    return {"accepted": acc, "duplicates": dup, "rejected": len(outcomes) - acc - dup, "results": outcomes}


# -- how the flush opens the warehouse (issue 13, item 11) -------------------------------
# Seconds a flush waits for the DuckDB file while another process (a CLI command) has it
# open: short, because the server holds its analyses back while it waits; the events stay
# in the journal and the next round tries again.
FLUSH_LOCK_WAIT = 1.0


def open_for_flush(settings: Settings) -> Warehouse:
    """A read-write warehouse for one flush batch; the caller closes it right after."""
    wh = Warehouse(settings, lock_wait=FLUSH_LOCK_WAIT)
    try:
        _ = wh.con  # connect now, so that a held file is reported as busy
    except YunyingError as e:
        if e.key == "warehouse.busy":
            raise YunyingError("capture.warehouse_busy", reason=e.message("en")[:200]) from e
        raise
    return wh


def flush(settings: Settings, journal: Journal, batch: int = 200_000) -> FlushResult:
    """Move journaled events into the warehouse; idempotent (anti-join on ``event_id``)."""
    moved = present = 0
    while True:
        rows = journal.pending(batch)
        if not rows:
            break
        cols = list(zip(*rows, strict=True))
        data = pa.table(
            {
                "event_id": pa.array(cols[0], pa.string()),
                "event": pa.array(cols[1], pa.string()),
                "user_id": pa.array(cols[2], pa.string()),
                "ts": pa.array([dt.datetime.fromisoformat(v) for v in cols[3]], pa.timestamp("us")),
                "account_id": pa.array(cols[4], pa.string()),
                "session_id": pa.array(cols[5], pa.string()),
                "properties": pa.array(cols[6], pa.string()),
            },
            schema=arrow_schema(EVENTS),
        )
        try:
            wh = open_for_flush(settings)
            try:
                events = wh.table("events")
                fresh_expr = ibis.memtable(data).anti_join(events, "event_id")
                fresh = wh.to_pyarrow(fresh_expr)
                if fresh.num_rows:
                    wh.append_arrow("events", fresh)
            finally:
                wh.close()
        except YunyingError:
            raise
        except Exception as e:  # the warehouse is busy (the CLI holds it) or unreachable
            raise YunyingError("capture.warehouse_busy", reason=str(e).splitlines()[0][:200]) from e
        journal.mark_flushed([r[0] for r in rows])
        moved += fresh.num_rows
        present += data.num_rows - fresh.num_rows
        if len(rows) < batch:
            break
    return FlushResult(moved=moved, already_present=present, pending=journal.pending_count())
