"""The CLI keeps working while ``yunying serve`` runs under load (issue 13, item 11).

A real server subprocess gets capture batches (flushed every second) and analyses, among
them slow ones, while 20 CLI commands run one after another as separate processes. Every
command must succeed; none may fail on DuckDB's file lock.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.web.bulk import bulk_project
from tests.web.server import Server
from yunying.appdb import open_appdb
from yunying.web.accounts import create_api_key

YUNYING = str(Path(sys.executable).parent / "yunying")
R = ["--from", "2026-02-01", "--to", "2026-03-05"]
COMMANDS = [
    ["status"],
    ["overview"],
    ["funnel", "view", "add_to_cart", "pay", *R],
    ["trends", "view", *R],
    ["tables"],
    ["status", "--format", "json"],
    ["trends", "--measure", "users", "--by", "src", "--limit", "50", *R],
    ["retention", "--start", "view", "--periods", "7", *R],
    ["overview", "--format", "json"],
    ["lifecycle", *R],
    ["stickiness", *R],
    ["funnel", "view", "pay", "--by", "src", *R, "--format", "csv"],
    ["describe", "events"],
    ["trends", "pay", "--measure", "sum", "--property", "price", "--grain", "week", *R],
    ["status"],
    ["metrics", "compute", "dau", "--from", "2026-02-20", "--to", "2026-03-05", "--format", "json"],
    ["quarantine", "list"],
    ["funnel", "view", "pay", "--interval", "day", *R, "--format", "json"],
    ["overview"],
    ["status", "--format", "csv"],
]
NO_PROJECT = {"tables", "describe"}


def run_cli(project: Path, args: list[str]) -> tuple[subprocess.CompletedProcess[str], float]:
    env = {k: v for k, v in os.environ.items() if k != "YUNYING_DEBUG"}
    env["YUNYING_LANGUAGE"] = "en"
    extra = [] if args[0] in NO_PROJECT else ["--project", str(project)]
    t0 = time.perf_counter()
    res = subprocess.run([YUNYING, *args, *extra], capture_output=True, text=True, env=env, timeout=180)
    return res, time.perf_counter() - t0


def test_twenty_cli_commands_beside_a_loaded_server(tmp_path_factory: pytest.TempPathFactory) -> None:
    project = tmp_path_factory.mktemp("beside")
    s = bulk_project(project, 600_000)
    url = open_appdb(s)
    capture_key = create_api_key(url, "sdk", "capture")[1]
    read_key = create_api_key(url, "bi", "read")[1]
    server = Server(project, flush_interval=1.0)
    stop = threading.Event()
    statuses: list[int] = []
    sent = {"batches": 0, "analyses": 0}

    def capture() -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {capture_key}"}) as c:
            n = 0
            while not stop.is_set():
                events = [{"event_id": f"live-{n}-{i}", "event": "view", "user_id": f"live{i}",
                           "ts": "2026-03-05T10:00:00+08:00", "properties": {"src": "live"}} for i in range(50)]
                r = c.post("/api/v1/capture", json={"events": events})
                statuses.append(r.status_code)
                sent["batches"] += 1
                n += 1
                time.sleep(0.1)  # not stop.wait(): libfaketime (make test-ahead) stalls timed waits

    def analyses() -> None:
        with httpx.Client(base_url=server.url, timeout=120, headers={"Authorization": f"Bearer {read_key}"}) as c:
            n = 0
            while not stop.is_set():
                n += 1
                if n % 4 == 0:  # a slow one: a whole year by day, 100 groups
                    body = {"measure": "users", "grain": "day", "dates": {"from": "2025-03-06", "to": "2026-03-05"},
                            "breakdown": {"property": "src", "limit": 100}, "event": None if n % 8 else "view"}
                    r = c.post("/api/v1/analytics/trends", json=body)
                else:
                    body = {"steps": [{"event": "view"}, {"event": "pay"}], "window_days": n % 30,
                            "dates": {"from": "2026-02-01", "to": "2026-03-05"}}
                    r = c.post("/api/v1/analytics/funnel", json=body)
                statuses.append(r.status_code)
                sent["analyses"] += 1

    threads = [threading.Thread(target=capture), threading.Thread(target=analyses), threading.Thread(target=analyses)]
    for th in threads:
        th.start()
    results = []
    try:
        time.sleep(1.5)
        for args in COMMANDS:
            res, took = run_cli(project, args)
            results.append((args, res.returncode, took, res.stderr[-400:]))
    finally:
        stop.set()
        for th in threads:
            th.join(120)
        # Everything captured is flushed; then the server stops.
        flushed = httpx.post(server.url + "/api/v1/capture/flush", timeout=120,
                             headers={"Authorization": f"Bearer {create_api_key(url, 'admin', 'full')[1]}"})
        server.stop()
    failed = [r for r in results if r[1] != 0]
    assert not failed, json.dumps(failed, indent=1)
    assert len(results) == 20
    assert sent["batches"] >= 10 and sent["analyses"] >= 5, sent
    assert statuses and all(code == 200 for code in statuses), sorted(set(statuses))
    assert flushed.status_code == 200, flushed.text
    # The CLI saw the flushed events: live events are in the warehouse.
    res, _ = run_cli(project, ["status", "--format", "json"])
    assert res.returncode == 0, res.stderr
    print("\nCLI beside a loaded server:", [(" ".join(a[:2]), f"{t:.1f}s") for a, _, t, _ in results], sent)
