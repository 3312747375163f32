"""Event capture: validate against the events contract, journal durably, flush to the warehouse.

Each event is checked on its own (contract fields, the time window, text that UTF-8 can
hold, standard JSON, nesting depth), so a bad event is refused with a reason and never
fails its batch, and a bad batch never fails another's.

DuckDB allows one writing process, and the CLI must keep working while the server runs,
so the server never holds the warehouse open. Accepted events go to a SQLite journal
(WAL, synchronous=FULL, ``event_id`` primary key, one transaction per batch) before the
response is sent; ``flush`` later moves them into the warehouse with an anti-join on
``event_id``, so a flush interrupted at any point can simply run again.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
import threading
from dataclasses import dataclass
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
# How deep 'properties' may nest ('properties' itself is level 1).
MAX_DEPTH = 32
DEFAULT_FLOOR = dt.date(2000, 1, 1)
DEFAULT_SKEW = 3600


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


def dump_result(result: dict[str, Any]) -> bytes:
    """The answer as UTF-8 JSON; a lone surrogate echoed back (an id) becomes its escape."""
    return json.dumps(result, ensure_ascii=False).encode("utf-8", "backslashreplace")


class FlushResult(BaseModel):
    moved: int
    already_present: int
    pending: int


def journal_path(settings: Settings) -> Path:
    return settings.data_dir / "capture.db"


def parse_ts(value: str) -> dt.datetime:
    """ISO 8601; an offset is converted to UTC, a naive time is taken as UTC.

    Raises ValueError for text that is not a time (also for one whose UTC value falls
    outside what a datetime can hold, e.g. ``0001-01-01T00:00:00+08:00``).
    """
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    if parsed.tzinfo is not None:
        try:
            parsed = parsed.astimezone(dt.UTC).replace(tzinfo=None)
        except OverflowError as e:
            raise ValueError("out of range") from e
    return parsed


@dataclass(frozen=True)
class TimeWindow:
    """Event times capture accepts, after correcting the client's clock.

    ``shift`` is ``received_at - sent_at`` when the batch says when it was sent (PostHog's
    rule: an event's time is moved by how far the client's clock is off the server's).
    """

    floor: dt.datetime
    ceiling: dt.datetime
    shift: dt.timedelta = dt.timedelta()

    @classmethod
    def of(
        cls,
        floor: dt.date = DEFAULT_FLOOR,
        skew_seconds: int = DEFAULT_SKEW,
        received_at: dt.datetime | None = None,
        sent_at: dt.datetime | None = None,
    ) -> TimeWindow:
        now = received_at or clock.now()
        shift = now - sent_at if sent_at is not None else dt.timedelta()
        return cls(dt.datetime.combine(floor, dt.time()), now + dt.timedelta(seconds=skew_seconds), shift)

    @classmethod
    def for_settings(cls, settings: Settings, sent_at: dt.datetime | None = None) -> TimeWindow:
        return cls.of(settings.event_time_floor, settings.event_future_skew, sent_at=sent_at)


def _clean_text(v: str) -> bool:
    """No lone surrogates (they cannot be stored as UTF-8) and no NUL characters."""
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "\x00" not in v


def _depth(value: Any) -> int:
    """Nesting depth of a JSON value without recursion (an object or a list is one level)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, dict):
            items: Any = v.values()
        elif isinstance(v, list):
            items = v
        else:
            continue
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((x, d + 1) for x in items if isinstance(x, (dict, list)))
    return deepest


# Standard JSON only (NaN and ±Infinity raise ValueError); one encoder, made once.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode
_LONG_DIGITS = re.compile(r"\d{309}")
_MAX_DOUBLE = 1.7976931348623157e308


def _has_huge_int(value: Any) -> bool:
    """An integer beyond the double range (analyses read numbers as doubles: it would be inf)."""
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            stack.extend(v)
        elif isinstance(v, int) and not isinstance(v, bool) and abs(v) > _MAX_DOUBLE:
            return True
    return False


class _HugeInt:
    """An integer literal too long to convert (Python refuses > 4300 digits)."""

    __slots__ = ()


HUGE_INT = _HugeInt()


def _int_or_huge(text: str) -> Any:
    return int(text) if len(text) <= 4000 else HUGE_INT


_TOO_DEEP = object()  # stands in for an event cut out of the body because of its nesting
_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{},:]')


def parse_body(data: bytes) -> Any:
    """The request body as JSON, without the parser's recursion or number limits failing it.

    The fast path is ``json.loads``. Only when it gives up (nesting deeper than the
    interpreter's recursion limit, or an integer of thousands of digits) is the body
    scanned again: events nested deeper than ``MAX_DEPTH`` are cut out and come back as
    a marker that ``validate_event`` rejects with a reason, so one hostile event costs
    only itself. Raises ValueError (→ 400) for text that is not JSON.
    """
    try:
        return json.loads(data)
    except RecursionError:
        return _parse_cut(data)
    except ValueError as e:
        if "integer string conversion" not in str(e):
            raise
    try:
        return json.loads(data, parse_int=_int_or_huge)
    except RecursionError:
        return _parse_cut(data)


def _parse_cut(data: bytes) -> Any:
    spans = _deep_events(data)
    if spans is None:
        raise YunyingError("capture.too_deep_body", max=MAX_DEPTH)
    parts, pos = [], 0
    for start, end in spans:
        parts += [data[pos:start], b"null"]
        pos = end
    parts.append(data[pos:])
    try:
        body = json.loads(b"".join(parts), parse_int=_int_or_huge)
    except RecursionError as e:  # the scan and the parser disagree: refuse the body
        raise YunyingError("capture.too_deep_body", max=MAX_DEPTH) from e
    if isinstance(body, dict) and isinstance(body.get("events"), list):
        events = body["events"]
        for index in spans.values():
            if index < len(events) and events[index] is None:
                events[index] = _TOO_DEEP
    return body


def _deep_events(data: bytes) -> dict[tuple[int, int], int] | None:
    """Byte spans (→ index) of the events nested deeper than allowed; None when the deep
    nesting is anywhere else than in an element of the top-level ``events`` list."""
    limit = MAX_DEPTH + 3  # body object, events list, event object
    depth = 0
    key: bytes | None = None
    last: bytes | None = None
    in_events = False
    index = 0
    start = -1
    deep = False
    spans: dict[tuple[int, int], int] = {}
    for m in _TOKEN.finditer(data):
        tok = m.group()
        c = tok[:1]
        if c == b'"':
            last = tok
        elif c == b":":
            if depth == 1:
                key = last
        elif c == b",":
            if in_events and depth == 2:
                index += 1
        elif c in (b"{", b"["):
            depth += 1
            if depth == 2 and c == b"[" and key == b'"events"':
                in_events, index = True, 0
            elif depth == 3 and in_events:
                start, deep = m.start(), False
            if depth > limit:
                if not (in_events and depth > 3):
                    return None
                deep = True
        else:  # a closing bracket
            if depth == 3 and in_events and deep:
                spans[(start, m.end())] = index
            elif depth == 2:
                in_events = False
            depth -= 1
    return spans


Row = tuple[str, str, str, str, str | None, str | None, str | None]


def validate_event(raw: Any, t: Any, window: TimeWindow | None = None) -> tuple[Row | None, str | None]:
    """One event → (row, None) or (None, reason). ``t`` is the translator for the reason."""
    if raw is _TOO_DEEP:
        return None, t("capture.too_deep", max=MAX_DEPTH)
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
        if not _clean_text(v):
            return None, t("capture.bad_text", field=name)
        if name in _REQUIRED and not v.strip():
            return None, t("capture.blank", field=name)
    window = window or TimeWindow.of()
    try:
        ts = parse_ts(raw["ts"]) + window.shift
    except ValueError:
        return None, t("capture.bad_ts", value=str(raw["ts"])[:64])
    except OverflowError:  # the correction by sent_at leaves the calendar
        if window.shift < dt.timedelta():
            return None, t("capture.ts_too_early", value=str(raw["ts"])[:64], floor=window.floor.date().isoformat())
        return None, t("capture.ts_in_future", value=str(raw["ts"])[:64], max=window.ceiling.isoformat(sep=" ", timespec="seconds"))
    if ts < window.floor:
        return None, t("capture.ts_too_early", value=ts.isoformat(sep=" "), floor=window.floor.date().isoformat())
    if ts > window.ceiling:
        return None, t("capture.ts_in_future", value=ts.isoformat(sep=" "), max=window.ceiling.isoformat(sep=" ", timespec="seconds"))
    props = raw.get("properties")
    text = None
    if props is not None:
        if not isinstance(props, dict):
            return None, t("capture.bad_properties")
        try:
            text = _ENCODE(props)
        except ValueError:  # NaN or ±Infinity (also 1e999, which reads as infinity)
            return None, t("capture.non_finite")
        except TypeError:  # an integer of thousands of digits
            return None, t("capture.huge_number")
        except RecursionError:
            return None, t("capture.too_deep", max=MAX_DEPTH)
        if not _clean_text(text):
            return None, t("capture.bad_text", field="properties")
        # Brackets bound the depth from above (those inside strings count too), and a run
        # of 309 digits must be there for a number beyond a double: the exact walks run
        # only for the rare event that has them.
        if text.count("{") + text.count("[") > MAX_DEPTH and _depth(props) > MAX_DEPTH:
            return None, t("capture.too_deep", max=MAX_DEPTH)
        if _LONG_DIGITS.search(text) and _has_huge_int(props):
            return None, t("capture.huge_number")
    return (
        raw["event_id"],
        raw["event"],
        raw["user_id"],
        ts.isoformat(sep=" "),
        raw.get("account_id"),
        raw.get("session_id"),
        text,
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
        # The server's StoredIds: told when a flush moved this journal's events.
        self.stored_ids: StoredIds | None = None
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
        try:
            try:
                self._commit(group)
            except sqlite3.OperationalError:
                raise  # the journal itself (locked, full, unwritable): nobody's rows go in
            except Exception:
                if len(group) == 1:
                    raise
                # One caller's rows failed the shared transaction (say a row SQLite
                # refuses): commit each caller alone, so only that caller fails.
                for req in group:
                    try:
                        self._commit([req])
                    except Exception as e:
                        req.error, req.result = e, []
        except BaseException as e:  # every caller left in the group learns it failed
            for req in group:
                if req.error is None and not req.result:
                    req.error, req.result = e, []
        finally:
            for req in group:
                req.done.set()

    def _commit(self, group: list[_WriteRequest]) -> None:
        """One transaction for the group's rows; sets each request's result on COMMIT."""
        now = clock.now().isoformat(sep=" ")
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
                results: list[list[bool]] = []
                for req in group:
                    out = []
                    for r in req.rows:
                        new = r[0] not in present
                        if new:
                            present.add(r[0])
                            fresh.append((*r, now))
                        out.append(new)
                    results.append(out)
                cur.executemany(_INSERT, fresh)
                cur.execute("COMMIT")
            except BaseException:
                cur.execute("ROLLBACK")
                raise
        for req, out in zip(group, results, strict=True):
            req.result = out

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


_HASHER: Any = None
_HASHER_LOCK = threading.Lock()


def _id_hashes(ids: list[str]) -> Any:
    """DuckDB's ``hash`` of each id, from a private in-memory DuckDB (the same function the
    warehouse computes; ~0.3 ms per batch of 100)."""
    global _HASHER
    import duckdb

    with _HASHER_LOCK:
        if _HASHER is None:
            _HASHER = duckdb.connect()
        return _HASHER.execute("SELECT hash(x) AS h FROM unnest(?::VARCHAR[]) t(x)", [ids]).fetchnumpy()["h"]


class StoredIds:
    """Which event ids the warehouse holds already, to answer ``duplicate`` for them.

    Events also reach the warehouse by ``yunying import`` and ``yunying demo``; an id sent
    to capture that one of them stored would be skipped by the flush's anti-join after
    being answered ``accepted``. The server keeps DuckDB's 64-bit hashes of the
    warehouse's ids (8 bytes per event, DuckDB only, up to ``MAX_IDS``; reading 5 million
    takes about 0.1 s here), read again whenever the warehouse changed by another hand. Such an event is still journaled, so the flush's anti-join
    stays the exact judge and a hash collision (odds ~n/2^64) can only mislabel it.
    """

    MAX_IDS = 20_000_000
    RETRY_SECONDS = 5.0

    def __init__(self, gate: Any) -> None:
        import numpy as np

        self.gate = gate  # the server's WarehouseGate: its data version and its way in
        self._hashes = np.empty(0, np.uint64)
        self.version: str | None = None
        self._failed_at = -1e9
        self._refreshing = threading.Lock()

    def load(self, wh: Warehouse) -> None:
        """Read the warehouse's ids (the caller holds it open)."""
        import numpy as np

        n = int(wh.duck.execute("SELECT count(*) FROM events").fetchone()[0])
        if n > self.MAX_IDS:
            hashes = np.empty(0, np.uint64)
        else:
            col = wh.duck.execute("SELECT hash(event_id) AS h FROM events ORDER BY h").fetchnumpy()["h"]
            hashes = np.asarray(col, dtype=np.uint64)
        self._hashes = hashes

    def refresh(self) -> None:
        """Re-read when the warehouse's version moved; one request reads, the others go on
        with the hashes they have."""
        import time

        settings = self.gate.settings
        if settings.warehouse.engine != "duckdb":
            return  # the other engines are not read here (the flush still skips stored ids)
        version = self.gate.version()
        if version == self.version:
            return
        if not settings.warehouse_path.exists():  # nothing stored yet: do not create it here
            self._hashes, self.version = self._hashes[:0], version
            return
        if time.monotonic() - self._failed_at < self.RETRY_SECONDS:
            return
        if not self._refreshing.acquire(blocking=False):
            return
        try:
            self.gate.run(None, self.load)  # the gate's way in: one reader at a time, or shared
            self.version = version
        except Exception:  # busy (a command writes) or unreadable: try again later
            self._failed_at = time.monotonic()
        finally:
            self._refreshing.release()

    def version_now(self) -> str | None:
        return self.gate.version()  # type: ignore[no-any-return]

    def advance(self, before: str | None, after: str | None) -> None:
        """Our own flush changed the warehouse: its ids are in the journal, no re-read."""
        if before is not None and self.version == before:
            self.version = after

    def contains(self, ids: list[str]) -> list[bool]:
        import numpy as np

        hashes = self._hashes
        if not ids or not len(hashes):
            return [False] * len(ids)
        q = np.asarray(_id_hashes(ids), dtype=np.uint64)
        pos = np.minimum(np.searchsorted(hashes, q), len(hashes) - 1)
        return (hashes[pos] == q).tolist()  # type: ignore[no-any-return]


def capture_batch(
    journal: Journal,
    events: list[Any],
    t: Any,
    window: TimeWindow | None = None,
    stored: StoredIds | None = None,
) -> dict[str, Any]:
    """Validate every event, journal the valid ones durably, answer per event.

    An event whose id is in the journal (pending or moved) or in the warehouse is a
    ``duplicate``. Returns the ``CaptureResult`` document as plain data: this is the hot
    path, and building then re-validating 1,000 models per request would halve the
    throughput.
    """
    window = window or TimeWindow.of()
    outcomes: list[dict[str, Any]] = []
    rows: list[tuple[Any, ...]] = []
    row_index: list[int] = []
    seen: set[str] = set()
    for i, raw in enumerate(events):
        row, reason = validate_event(raw, t, window)
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
    new_flags = journal.write(rows)
    in_warehouse = stored.contains([r[0] for r in rows]) if stored is not None else [False] * len(rows)
    for i, new, there in zip(row_index, new_flags, in_warehouse, strict=True):
        if not new or there:
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
        stored = journal.stored_ids
        try:
            wh = open_for_flush(settings)
            try:
                # Read with the file open: no other process writes it meanwhile.
                before = stored.version_now() if stored is not None else None
                events = wh.table("events")
                fresh_expr = ibis.memtable(data).anti_join(events, "event_id")
                fresh = wh.to_pyarrow(fresh_expr)
                if fresh.num_rows:
                    wh.append_arrow("events", fresh)
            finally:
                wh.close()
            if stored is not None:
                stored.advance(before, stored.version_now())
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
