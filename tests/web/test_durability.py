"""Kill the server with SIGKILL in the middle of a stream of captures: nothing acknowledged is lost."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import make_project
from tests.web.server import Server
from yunying.warehouse.engine import Warehouse
from yunying.web.accounts import create_api_key
from yunying.web.capture import Journal, flush, journal_path

pytestmark = pytest.mark.xdist_group("web")


def _sender(url: str, key: str, worker: int, acked: list[str], sent: list[list[dict[str, str]]], stop: threading.Event) -> None:
    with httpx.Client(timeout=10, headers={"Authorization": f"Bearer {key}"}) as c:
        n = 0
        while not stop.is_set():
            batch = [
                {"event_id": f"w{worker}-{n + i}", "event": "view", "user_id": f"u{worker}",
                 "ts": "2026-03-01T00:00:00Z"}
                for i in range(50)
            ]
            n += 50
            sent.append(batch)
            try:
                r = c.post(url + "/api/v1/capture", json={"events": batch})
            except httpx.HTTPError:
                return  # the server is gone: this batch was never acknowledged
            if r.status_code != 200:
                return
            acked.extend(x["event_id"] for x in r.json()["results"] if x["status"] in ("accepted", "duplicate"))


def test_sigkill_mid_stream_loses_no_acknowledged_event(tmp_path: Path) -> None:
    settings = make_project(tmp_path)
    from yunying.appdb import open_appdb

    key = create_api_key(open_appdb(settings), "sdk", "capture")[1]
    server = Server(tmp_path)
    acked: list[str] = []
    sent: list[list[dict[str, str]]] = []
    stop = threading.Event()
    threads = [threading.Thread(target=_sender, args=(server.url, key, w, acked, sent, stop)) for w in range(4)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 30
    while len(acked) < 2000 and time.monotonic() < deadline:
        time.sleep(0.05)
    server.kill()  # while the senders are still sending
    stop.set()
    for t in threads:
        t.join(30)
    assert len(acked) >= 2000

    # Senders retry everything after a restart (at-least-once clients): all acked are duplicates now.
    server = Server(tmp_path)
    try:
        with httpx.Client(timeout=30, headers={"Authorization": f"Bearer {key}"}) as c:
            statuses: dict[str, str] = {}
            for batch in sent:
                r = c.post(server.url + "/api/v1/capture", json={"events": batch})
                assert r.status_code == 200
                statuses.update({x["event_id"]: x["status"] for x in r.json()["results"]})
        assert all(statuses[e] == "duplicate" for e in acked)
    finally:
        server.stop()

    j = Journal(journal_path(settings))
    try:
        flush(settings, j)
        flush(settings, j)  # a second flush changes nothing
    finally:
        j.close()
    with Warehouse(settings) as wh:
        rows = wh.duck.execute("SELECT event_id, count(*) FROM events GROUP BY event_id").fetchall()
    counts = dict(rows)
    assert all(counts.get(e) == 1 for e in acked), "an acknowledged event is missing or doubled"
    assert all(v == 1 for v in counts.values())
    # After the retry every event sent is in the warehouse, once.
    assert set(counts) == {e["event_id"] for b in sent for e in b}
