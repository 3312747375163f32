"""Capture: per-event answers, limits, dedupe across retries, idempotent flush."""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from yunying.config import Settings
from yunying.warehouse.engine import Warehouse
from yunying.web.capture import Journal, flush, journal_path, parse_ts


def ev(i: int | str, **over: Any) -> dict[str, Any]:
    e: dict[str, Any] = {"event_id": f"c-{i}", "event": "view", "user_id": "cu1", "ts": "2026-03-02T10:00:00+08:00"}
    e.update(over)
    return e


def post(c: TestClient, key: str, events: Any) -> Any:
    return c.post("/api/v1/capture", json={"events": events}, headers={"Authorization": f"Bearer {key}"})


def test_per_event_answers_and_dedupe(app: FastAPI, capture_key: str) -> None:
    c = TestClient(app, headers={"accept-language": "en"})
    batch = [
        ev(1),
        ev(2, properties={"plan": "pro"}, session_id="s1"),
        ev(1),  # repeated inside the batch
        ev(3, ts="yesterday"),
        ev(4, colour="red"),
        ev(5, user_id=42),
        {"event_id": "c-6", "event": "view", "ts": "2026-03-02T00:00:00Z"},
        "not an object",
        ev(7, properties=[1, 2]),
        ev(8, event="x" * 300),
        ev(9, ts="2020-01-01T00:00:00Z"),  # late events are welcome
    ]
    r = post(c, capture_key, batch)
    assert r.status_code == 200, r.text
    body = r.json()
    status = [x["status"] for x in body["results"]]
    assert status == ["accepted", "accepted", "duplicate", "rejected", "rejected", "rejected", "rejected",
                      "rejected", "rejected", "rejected", "accepted"]
    reasons = {x["index"]: x["reason"] for x in body["results"] if x["reason"]}
    assert "'ts'" in reasons[3]
    assert "'colour'" in reasons[4]
    assert "'user_id'" in reasons[5]
    assert "'user_id'" in reasons[6]
    assert "object" in reasons[7]
    assert "'properties'" in reasons[8]
    assert "'event'" in reasons[9] and "256" in reasons[9]
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (3, 1, 7)
    # A retry of the same batch: nothing new.
    again = post(c, capture_key, batch[:2]).json()
    assert [x["status"] for x in again["results"]] == ["duplicate", "duplicate"]


def test_batch_limits_and_malformed_bodies(app: FastAPI, capture_key: str) -> None:
    c = TestClient(app, headers={"accept-language": "en"})
    h = {"Authorization": f"Bearer {capture_key}", "content-type": "application/json"}
    r = post(c, capture_key, [ev(f"big{i}") for i in range(1001)])
    assert r.status_code == 400 and "1000" in r.json()["message"] and "'events'" in r.json()["message"]
    big = json.dumps({"events": [ev("x", properties={"pad": "y" * (1024 * 1024)})]})
    r = c.post("/api/v1/capture", content=big, headers=h)
    assert r.status_code == 413 and r.json()["error"] == "capture.too_large"
    r = c.post("/api/v1/capture", content=b'{"events": [', headers=h)
    assert r.status_code == 400 and r.json()["error"] == "web.bad_json"
    r = c.post("/api/v1/capture", content=b'{"event": []}', headers=h)
    assert r.status_code == 400 and "'events'" in r.json()["message"]
    r = c.post("/api/v1/capture", content=b'{"events": [], "extra": 1}', headers=h)
    assert r.status_code == 400 and "'extra'" in r.json()["message"]
    r = c.post("/api/v1/capture", content=b'[1,2]', headers=h)
    assert r.status_code == 400
    r = c.post("/api/v1/capture", content=b"\xff\xfe", headers=h)
    assert r.status_code == 400
    for body in (r.text for r in [r]):
        assert "Traceback" not in body


def test_flush_is_idempotent_and_exactly_once(project: Settings, app: FastAPI, capture_key: str) -> None:
    c = TestClient(app, headers={"accept-language": "en"})
    events = [ev(f"f{i}", ts=f"2026-03-03T0{i % 10}:00:00Z") for i in range(20)]
    assert post(c, capture_key, events).json()["accepted"] == 20
    journal: Journal = app.state.journal
    first = flush(project, journal)
    assert first.moved >= 20 and first.pending == 0
    # Simulate a crash after the warehouse write but before marking: run it all again.
    with journal._lock:
        journal._con.execute("UPDATE capture_journal SET flushed = 0 WHERE event_id LIKE 'c-f%'")
    second = flush(project, journal)
    assert second.moved == 0 and second.already_present == 20
    with Warehouse(project) as wh:
        n = wh.duck.execute("SELECT count(*), count(DISTINCT event_id) FROM events WHERE event_id LIKE 'c-f%'").fetchall()[0]
        ts = wh.duck.execute("SELECT ts FROM events WHERE event_id = 'c-f3'").fetchall()[0][0]
    assert n == (20, 20)
    assert str(ts) == "2026-03-03 03:00:00"


def test_flush_waits_while_the_cli_holds_the_warehouse(project: Settings, app: FastAPI, capture_key: str) -> None:
    import multiprocessing as mp

    c = TestClient(app, headers={"accept-language": "en"})
    assert post(c, capture_key, [ev("busy1")]).json()["accepted"] == 1
    ctx = mp.get_context("spawn")
    ready, done = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_warehouse, args=(str(project.project_dir), ready, done))
    holder.start()
    try:
        assert ready.wait(60)
        r = TestClient(app).post("/api/v1/capture/flush", headers={"Authorization": f"Bearer {_full_key(project)}"})
        assert r.status_code == 503 and r.json()["error"] == "capture.warehouse_busy"
        assert app.state.journal.pending_count() >= 1
    finally:
        done.set()
        holder.join(30)
    assert flush(project, app.state.journal).pending == 0


def _full_key(project: Settings) -> str:
    from yunying.web.accounts import create_api_key

    return create_api_key(project.appdb_url, "ops", "full")[1]


def _hold_warehouse(project_dir: str, ready: Any, done: Any) -> None:
    from yunying.config import load_settings

    wh = Warehouse(load_settings(project_dir))
    wh.con  # noqa: B018 - opens (and locks) the DuckDB file
    ready.set()
    done.wait(60)
    wh.close()


def test_parse_ts_converts_offsets_to_utc() -> None:
    assert str(parse_ts("2026-03-02T10:00:00+08:00")) == "2026-03-02 02:00:00"
    assert str(parse_ts("2026-03-02T10:00:00Z")) == "2026-03-02 10:00:00"
    assert str(parse_ts("2026-03-02 10:00:00")) == "2026-03-02 10:00:00"


def test_journal_survives_reopen(tmp_path: Any) -> None:
    j = Journal(tmp_path / "j.db")
    assert j.write([("a", "view", "u", "2026-01-01 00:00:00", None, None, None)]) == [True]
    j.close()
    j2 = Journal(tmp_path / "j.db")
    assert j2.write([("a", "view", "u", "2026-01-01 00:00:00", None, None, None)]) == [False]
    assert j2.counts() == {"journaled": 1, "pending": 1}
    j2.close()
    assert journal_path.__name__ == "journal_path"


def test_group_commit_accepts_each_id_once_under_concurrency(tmp_path: Any) -> None:
    """Eight threads send overlapping ids at once: every id is 'new' for exactly one of them."""
    import threading

    j = Journal(tmp_path / "g.db")
    results: list[tuple[str, bool]] = []
    lock = threading.Lock()

    def send(worker: int) -> None:
        for b in range(10):
            rows = [(f"id{(worker + b + i) % 150}", "view", "u", "2026-01-01 00:00:00", None, None, None) for i in range(20)]
            out = j.write(rows)
            with lock:
                results.extend((r[0], new) for r, new in zip(rows, out, strict=True))

    threads = [threading.Thread(target=send, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    new_ids = [i for i, new in results if new]
    assert len(new_ids) == len(set(new_ids)) == len({i for i, _ in results})
    assert j.counts()["journaled"] == len(set(new_ids))
    j.close()


@pytest.mark.spark
@pytest.mark.xdist_group("spark")
def test_flush_into_the_spark_lake_is_idempotent(tmp_path: Any) -> None:
    """The same anti-join flush on the Spark engine (Parquet lake)."""
    from yunying.config import load_settings

    settings = load_settings(tmp_path, warehouse={"engine": "spark"})
    j = Journal(journal_path(settings))
    rows = [(f"s{i}", "view", "u1", "2026-03-01 00:00:00", None, None, None) for i in range(5)]
    assert all(j.write(rows))
    assert flush(settings, j).moved == 5
    with j._lock:
        j._con.execute("UPDATE capture_journal SET flushed = 0")
    again = flush(settings, j)
    assert (again.moved, again.already_present) == (0, 5)
    j.close()
    with Warehouse(settings) as wh:
        assert wh.row_count("events") == 5
