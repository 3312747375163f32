"""Capture refuses, per event and with a reason, what it cannot store truthfully (issue 13).

Through the real app (FastAPI's TestClient on ``create_app``): the time window and the
client-clock correction, NaN and Infinity, blank names, lone surrogates, deep nesting,
huge numbers, and ids the warehouse already holds.
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
from fastapi import FastAPI
from fastapi.testclient import TestClient

from yunying import clock
from yunying.appdb import open_appdb
from yunying.config import Settings, load_settings
from yunying.warehouse.engine import Warehouse
from yunying.web.accounts import create_api_key
from yunying.web.app import create_app
from yunying.web.capture import Journal

NOW = dt.datetime(2026, 6, 1, 12, 0, 0)


def iso(t: dt.datetime) -> str:
    return t.isoformat() + "Z"


def ev(i: str, **over: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"event_id": f"v-{i}", "event": "view", "user_id": "vu1", "ts": iso(NOW - dt.timedelta(hours=1))}
    e.update(over)
    return e


def post_raw(c: TestClient, key: str, body: bytes) -> Any:
    return c.post(
        "/api/v1/capture", content=body,
        headers={"Authorization": f"Bearer {key}", "content-type": "application/json"},
    )


def statuses(r: Any) -> list[tuple[str, str | None]]:
    assert r.status_code == 200, r.text
    return [(x["status"], x["reason"]) for x in r.json()["results"]]


def journal_row(app: FastAPI, event_id: str) -> tuple[Any, ...] | None:
    j: Journal = app.state.journal
    with j._lock:
        return j._con.execute(  # type: ignore[no-any-return]
            "SELECT ts, properties FROM capture_journal WHERE event_id = ?", (event_id,)
        ).fetchone()


def test_time_window_refuses_future_and_ancient_times(app: FastAPI, capture_key: str) -> None:
    c = TestClient(app, headers={"accept-language": "en"})
    batch = [
        ev("w1", ts=iso(NOW + dt.timedelta(minutes=30))),  # within the 1 h skew allowance
        ev("w2", ts=iso(NOW + dt.timedelta(hours=2))),
        ev("w3", ts="2099-01-01T00:00:00Z"),
        ev("w4", ts="9999-12-31T23:00:00Z"),
        ev("w5", ts="1999-12-31T23:59:59Z"),
        ev("w6", ts="0001-01-01T00:00:00+08:00"),  # its UTC value is before year 1
        ev("w7", ts="2000-01-01T00:00:00Z"),  # the floor itself is accepted
    ]
    with clock.frozen(NOW):
        got = statuses(c.post("/api/v1/capture", json={"events": batch}, headers={"Authorization": f"Bearer {capture_key}"}))
    assert [s for s, _ in got] == ["accepted", "rejected", "rejected", "rejected", "rejected", "rejected", "accepted"]
    assert "future" in str(got[1][1]) and "2026-06-01 13:00:00" in str(got[1][1])
    assert "future" in str(got[2][1]) and "future" in str(got[3][1])
    assert "2000-01-01" in str(got[4][1]) and "event_time_floor" in str(got[4][1])
    assert "'ts'" in str(got[5][1])


def test_sent_at_corrects_the_client_clock(app: FastAPI, capture_key: str) -> None:
    """PostHog's rule: ts + (received_at - sent_at). A phone one day fast is still right."""
    c = TestClient(app, headers={"accept-language": "en"})
    fast = dt.timedelta(days=1)
    body = {
        "sent_at": iso(NOW + fast),
        "events": [ev("s1", ts=iso(NOW + fast - dt.timedelta(minutes=5))), ev("s2", ts=iso(NOW + fast + dt.timedelta(days=3)))],
    }
    with clock.frozen(NOW):
        got = statuses(c.post("/api/v1/capture", json=body, headers={"Authorization": f"Bearer {capture_key}"}))
    assert [s for s, _ in got] == ["accepted", "rejected"]
    row = journal_row(app, "v-s1")
    assert row is not None and row[0] == "2026-06-01 11:55:00"
    bad = c.post("/api/v1/capture", json={"sent_at": "soon", "events": [ev("s3")]}, headers={"Authorization": f"Bearer {capture_key}"})
    assert bad.status_code == 400 and bad.json()["error"] == "capture.bad_sent_at"
    # A sent_at far in the past would move every event beyond the calendar: refused, no 500.
    with clock.frozen(NOW):
        got = statuses(c.post("/api/v1/capture", json={"sent_at": "0001-01-01T00:00:00Z", "events": [ev("s4")]},
                              headers={"Authorization": f"Bearer {capture_key}"}))
    assert got[0][0] == "rejected" and "future" in str(got[0][1])
    with clock.frozen(NOW):
        got = statuses(c.post("/api/v1/capture", json={"sent_at": "9999-12-31T23:59:59Z", "events": [ev("s5")]},
                              headers={"Authorization": f"Bearer {capture_key}"}))
    assert got[0][0] == "rejected" and "earliest" in str(got[0][1])


def test_window_is_configurable(tmp_path: Path) -> None:
    settings = load_settings(tmp_path, event_time_floor=dt.date(2026, 1, 1), event_future_skew=60)
    key = create_api_key(open_appdb(settings), "sdk", "capture")[1]
    a = create_app(settings, flush_interval=None)
    try:
        c = TestClient(a, headers={"accept-language": "en"})
        batch = [ev("c1", ts=iso(NOW + dt.timedelta(seconds=120))), ev("c2", ts="2025-12-31T23:00:00Z"),
                 ev("c3", ts=iso(NOW + dt.timedelta(seconds=30)))]
        with clock.frozen(NOW):
            got = statuses(c.post("/api/v1/capture", json={"events": batch}, headers={"Authorization": f"Bearer {key}"}))
        assert [s for s, _ in got] == ["rejected", "rejected", "accepted"]
        assert "2026-01-01" in str(got[1][1])
    finally:
        a.state.journal.close()


def test_nan_blank_surrogate_deep_and_huge_are_refused_per_event(app: FastAPI, capture_key: str) -> None:
    c = TestClient(app, headers={"accept-language": "en"}, raise_server_exceptions=False)
    ts = json.dumps(iso(NOW - dt.timedelta(hours=1)))

    def e(i: str, extra: str = "", name: str = '"view"') -> str:
        return f'{{"event_id":"v-n{i}","event":{name},"user_id":"u","ts":{ts}{extra}}}'

    deep = "[" * 5000 + "]" * 5000
    events = [
        e("0"),
        e("1", ',"properties":{"x":NaN}'),
        e("2", ',"properties":{"x":[1,Infinity]}'),
        e("3", ',"properties":{"x":-Infinity}'),
        e("4", ',"properties":{"x":1e999}'),
        e("5", name='" "'),
        e("6", name='"\\ud800"'),
        e("7", ',"properties":{"k\\udc00":"v"}'),
        e("8", ',"properties":{"k":"a\\ud800b"}'),
        e("9", f',"properties":{{"x":{deep}}}'),
        e("10", ',"properties":{"x":1' + "0" * 5000 + "}"),
        e("11", ',"properties":{"ok":1.5,"big":123456789012345678901234567890}'),
        '{"event_id":"\\ud800","event":"view","user_id":"u","ts":' + ts + "}",
        e("12", name='"a\\u0000b"'),
        e("13", ',"properties":' + "{\"a\":" * 40 + "1" + "}" * 40),
        e("14", ',"properties":{"x":[-1' + "0" * 309 + "]}"),
        e("15", ',"properties":{"x":1' + "0" * 307 + ',"id":"' + "9" * 400 + '"}'),
    ]
    body = ('{"events":[' + ",".join(events) + "]}").encode()
    with clock.frozen(NOW):
        r = post_raw(c, capture_key, body)
    got = statuses(r)
    assert "Traceback" not in r.text
    assert [s for s, _ in got] == ["accepted", *["rejected"] * 10, "accepted", "rejected", "rejected", "rejected", "rejected", "accepted"]
    reasons = [str(x) for _, x in got]
    for i in (1, 2, 3, 4):
        assert "NaN or Infinity" in reasons[i], reasons[i]
    assert "'event'" in reasons[5] and "blank" in reasons[5]
    assert "surrogate" in reasons[6] and "'properties'" in reasons[7] and "'properties'" in reasons[8]
    assert "32 levels" in reasons[9] and "32 levels" in reasons[14]
    assert "digits" in reasons[10] and "308 digits" in reasons[15]
    assert "'event_id'" in reasons[12] and "'event'" in reasons[13]
    # What was stored is standard JSON (no NaN), the big integer as it was sent.
    row = journal_row(app, "v-n11")
    assert row is not None
    json.loads(row[1], parse_constant=lambda c: (_ for _ in ()).throw(AssertionError(c)))
    assert json.loads(row[1]) == {"ok": 1.5, "big": 123456789012345678901234567890}


def test_deep_nesting_outside_the_events_is_a_400(app: FastAPI, capture_key: str) -> None:
    c = TestClient(app, headers={"accept-language": "en"}, raise_server_exceptions=False)
    r = post_raw(c, capture_key, b'{"events":[],"x":' + b"[" * 5000 + b"]" * 5000 + b"}")
    assert r.status_code == 400, r.text
    r = post_raw(c, capture_key, b"[" * 100_000)
    assert r.status_code == 400, r.text


def test_an_id_the_warehouse_holds_is_a_duplicate(project: Settings, app: FastAPI, capture_key: str) -> None:
    """Seeded (imported) ids, and ids written to the warehouse after the server started."""
    c = TestClient(app, headers={"accept-language": "en"})
    h = {"Authorization": f"Bearer {capture_key}"}
    with clock.frozen(NOW):
        got = statuses(c.post("/api/v1/capture", json={"events": [ev("d1"), {**ev("x"), "event_id": "e1"}]}, headers=h))
    assert [s for s, _ in got] == ["accepted", "duplicate"]
    # Pending in the journal (not flushed yet): a duplicate too.
    with clock.frozen(NOW):
        got = statuses(c.post("/api/v1/capture", json={"events": [ev("d1")]}, headers=h))
    assert got == [("duplicate", None)]
    # An import while the server runs.
    with Warehouse(project) as wh:
        wh.append_arrow("events", pa.table({
            "event_id": ["imp-1"], "event": ["view"], "user_id": ["u9"], "ts": [NOW - dt.timedelta(days=1)],
            "account_id": pa.array([None], pa.string()), "session_id": pa.array([None], pa.string()),
            "properties": pa.array([None], pa.string()),
        }))
    time.sleep(0.05)
    with clock.frozen(NOW):
        got = statuses(c.post("/api/v1/capture", json={"events": [{**ev("y"), "event_id": "imp-1"}, ev("d2")]}, headers=h))
    assert [s for s, _ in got] == ["duplicate", "accepted"]
    # The server's own flush moves them; it needs no re-read of the warehouse's ids after
    # it, and an import after that is seen again.
    full = create_api_key(project.appdb_url, "ops", "full")[1]
    r = c.post("/api/v1/capture/flush", headers={"Authorization": f"Bearer {full}"})
    assert r.status_code == 200 and r.json()["pending"] == 0, r.text
    assert app.state.stored_ids.version == app.state.gate.version()
    with Warehouse(project) as wh:
        wh.append_arrow("events", pa.table({
            "event_id": ["imp-2"], "event": ["view"], "user_id": ["u9"], "ts": [NOW - dt.timedelta(days=1)],
            "account_id": pa.array([None], pa.string()), "session_id": pa.array([None], pa.string()),
            "properties": pa.array([None], pa.string()),
        }))
    with clock.frozen(NOW):
        got = statuses(c.post("/api/v1/capture", json={"events": [{**ev("z"), "event_id": "imp-2"}, ev("d1"), ev("d3")]}, headers=h))
    assert [s for s, _ in got] == ["duplicate", "duplicate", "accepted"]


def test_a_failing_caller_does_not_fail_the_others_in_its_group(tmp_path: Path) -> None:
    """Group commit: one request's rows that SQLite refuses fail that request alone."""
    j = Journal(tmp_path / "j.db")
    good1 = [(f"g1-{i}", "view", "u", "2026-01-01 00:00:00", None, None, None) for i in range(5)]
    bad = [("b-1", "view", "u", "2026-01-01 00:00:00", None, None, "\ud800")]  # not UTF-8
    good2 = [(f"g2-{i}", "view", "u", "2026-01-01 00:00:00", None, None, None) for i in range(5)]
    out: dict[str, Any] = {}

    def send(name: str, rows: list[tuple[Any, ...]]) -> None:
        try:
            out[name] = j.write(rows)
        except Exception as e:
            out[name] = e

    # Hold the journal so the three callers queue up and commit as one group.
    j._lock.acquire()
    threads = [threading.Thread(target=send, args=("first", good1[:1]))]
    threads[0].start()
    deadline = time.monotonic() + 10
    while not j._writing and time.monotonic() < deadline:
        time.sleep(0.01)
    for name, rows in (("good1", good1), ("bad", bad), ("good2", good2)):
        th = threading.Thread(target=send, args=(name, rows))
        th.start()
        threads.append(th)
    while len(j._queue) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(j._queue) == 3
    j._lock.release()
    for th in threads:
        th.join(30)
    assert out["good1"] == [False] + [True] * 4  # g1-0 came with "first"
    assert out["good2"] == [True] * 5
    assert isinstance(out["bad"], UnicodeEncodeError)
    assert j.counts()["journaled"] == 10
    j.close()
