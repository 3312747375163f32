"""One viewer cannot stall the app, and the CLI works beside the server (issue 13, 11-12).

Against a real ``yunying serve`` on 127.0.0.1 and a synthetic warehouse of ``--events``
events (120 values of the breakdown property ``src``):

1. the issue's query, an hourly trend over ten years with 100 breakdown groups: answered
   with 400 ``web.query_too_big`` and how long that took;
2. an expensive query that passes the limits (a year of daily unique users, 100 groups),
   alone;
3. a small funnel alone (uncached), then the same small funnels sent one after another
   while the expensive query runs: their latencies (target: every one within 1 s);
4. ``yunying status`` run ``--cli-runs`` times as a separate process during light capture
   traffic (flush every second) and during the expensive query: how many succeed, and
   their wall time.

    .venv/bin/python benchmarks/web_concurrency_bench.py [--events 6000000] [--cli-runs 8]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from importlib.metadata import version
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from tests.web.bulk import bulk_project  # noqa: E402
from tests.web.server import YUNYING, Server  # noqa: E402

from yunying.appdb import open_appdb  # noqa: E402
from yunying.web.accounts import create_api_key  # noqa: E402

ISSUE_QUERY = {"measure": "count", "grain": "hour", "dates": {"from": "2016-03-06", "to": "2026-03-05"},
               "breakdown": {"property": "src", "limit": 100}}
EXPENSIVE = {"measure": "users", "grain": "day", "dates": {"from": "2025-03-06", "to": "2026-03-05"},
             "breakdown": {"property": "src", "limit": 100}}


def small_funnel(n: int) -> dict[str, object]:
    # A different window each time: never answered from the cache.
    return {"steps": [{"event": "view"}, {"event": "pay"}], "window_days": 1 + n % 300,
            "dates": {"from": "2026-03-04", "to": "2026-03-05"}}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    libs = ", ".join(f"{p} {version(p)}" for p in ("duckdb", "ibis-framework", "fastapi", "uvicorn", "pydantic"))
    return (f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}, {libs}; load average {os.getloadavg()[0]:.1f}")


def cli_status(project: Path) -> tuple[bool, float, bool]:
    t0 = time.perf_counter()
    r = subprocess.run([YUNYING, "status", "--project", str(project)], capture_output=True, text=True,
                       env={**os.environ, "YUNYING_LANGUAGE": "en"}, timeout=300)
    return r.returncode == 0, time.perf_counter() - t0, "waiting" in r.stderr


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--events", type=int, default=6_000_000)
    ap.add_argument("--cli-runs", type=int, default=8)
    args = ap.parse_args()
    print("machine:", machine())
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "bench"
        t0 = time.perf_counter()
        s = bulk_project(project, args.events)
        print(f"warehouse: {args.events:,} events written in {time.perf_counter() - t0:.1f} s")
        url = open_appdb(s)
        read = create_api_key(url, "bench", "read")[1]
        cap = create_api_key(url, "sdk", "capture")[1]
        server = Server(project, flush_interval=1.0)
        try:
            run(server, project, read, cap, args.cli_runs)
        finally:
            server.stop()


def run(server: Server, project: Path, read: str, cap: str, cli_runs: int) -> None:
    api = httpx.Client(base_url=server.url, timeout=300, headers={"Authorization": f"Bearer {read}"})
    api.post("/api/v1/analytics/funnel", json=small_funnel(0))  # warm the kernels

    t0 = time.perf_counter()
    r = api.post("/api/v1/analytics/trends", json=ISSUE_QUERY)
    print(f"1. hourly trend, 10 years x 100 groups: HTTP {r.status_code} {r.json().get('error')} "
          f"in {1000 * (time.perf_counter() - t0):.0f} ms, {len(r.content):,} bytes")

    t0 = time.perf_counter()
    r = api.post("/api/v1/analytics/trends", json=EXPENSIVE)
    alone = time.perf_counter() - t0
    print(f"2. expensive query alone (a year by day, unique users, 100 groups): HTTP {r.status_code}, "
          f"{alone:.2f} s, {len(r.content):,} bytes")

    solo = []
    for i in range(5):
        t0 = time.perf_counter()
        assert api.post("/api/v1/analytics/funnel", json=small_funnel(100 + i)).status_code == 200
        solo.append(time.perf_counter() - t0)

    done: dict[str, float] = {}

    def expensive(measure: str) -> None:
        with httpx.Client(base_url=server.url, timeout=300, headers={"Authorization": f"Bearer {read}"}) as c:
            t = time.perf_counter()
            res = c.post("/api/v1/analytics/trends", json={**EXPENSIVE, "measure": measure})
            done["took"] = time.perf_counter() - t
            done["status"] = res.status_code

    th = threading.Thread(target=expensive, args=("count",))
    th.start()
    time.sleep(0.2)
    beside = []
    n = 200
    while th.is_alive():
        t0 = time.perf_counter()
        assert api.post("/api/v1/analytics/funnel", json=small_funnel(n)).status_code == 200
        beside.append(time.perf_counter() - t0)
        n += 1
    th.join()
    print(f"3. small funnel alone: median {1000 * statistics.median(solo):.0f} ms, max {1000 * max(solo):.0f} ms; "
          f"while the expensive query ran ({done['took']:.2f} s, HTTP {done['status']}): {len(beside)} funnels, "
          f"median {1000 * statistics.median(beside):.0f} ms, max {1000 * max(beside):.0f} ms "
          f"(target: each < 1000 ms)")

    stop = threading.Event()

    def traffic() -> None:
        with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {cap}"}) as c:
            k = 0
            while not stop.is_set():
                ev = [{"event_id": f"bench-{k}-{i}", "event": "view", "user_id": f"x{i}",
                       "ts": "2026-03-05T10:00:00+08:00"} for i in range(20)]
                c.post("/api/v1/capture", json={"events": ev})
                k += 1
                stop.wait(0.2)

    tt = threading.Thread(target=traffic)
    tt.start()
    light = [cli_status(project) for _ in range(cli_runs)]
    stop.set()
    tt.join()
    th = threading.Thread(target=expensive, args=("users",))
    th.start()
    during = []
    while th.is_alive() and len(during) < cli_runs:
        during.append(cli_status(project))
    th.join()
    for label, runs in (("light capture traffic, flush every 1 s", light), ("the expensive query running", during)):
        ok = sum(1 for r in runs if r[0])
        waited = sum(1 for r in runs if r[2])
        times = [r[1] for r in runs]
        print(f"4. yunying status during {label}: {ok} of {len(runs)} succeeded ({waited} waited for a flush), "
              f"median {statistics.median(times):.2f} s, max {max(times):.2f} s")
    api.close()


if __name__ == "__main__":
    main()
