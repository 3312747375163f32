"""Capture and overview benchmark (issue 5).

1. Sustained capture: ``yunying serve`` on 127.0.0.1, 50 concurrent keep-alive clients each
   sending batches of 100 events, bounded by a batch count and a time limit. Prints events/s
   accepted and p50/p99 request latency. Baseline (same run): the same batches written by
   ``capture_batch`` in-process with no HTTP, i.e. the journal's own ceiling.
2. Overview page on the demo company: p50/p95 of ``GET /`` warm, against the first (cold)
   request.

    .venv/bin/python benchmarks/capture_bench.py [--batches 3000] [--seconds 30]
        [--clients 50] [--workers 1] [--demo-project /tmp/yy-demo]

Targets on the 2-core machine: >= 20,000 events/s accepted, overview p95 < 300 ms warm.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.web.server import Server  # noqa: E402

from yunying.appdb import open_appdb  # noqa: E402
from yunying.config import load_settings  # noqa: E402
from yunying.web.accounts import create_api_key, ensure_user  # noqa: E402
from yunying.web.capture import Journal, capture_batch  # noqa: E402

BATCH = 100
ACCEPTED = re.compile(rb'"accepted":\s*(\d+)')


def make_batch(client: int, n: int) -> bytes:
    events = [
        {
            "event_id": f"b{client}-{n}-{i}",
            "event": ("view", "add_to_cart", "pay")[i % 3],
            "user_id": f"user-{client}-{i % 17}",
            "ts": "2026-10-30T12:00:00+08:00",
            "session_id": f"s{client}-{n}",
            "properties": {"page": "/item/42", "price": 19.9},
        }
        for i in range(BATCH)
    ]
    return json.dumps({"events": events}).encode()


async def client_loop(
    port: int, key: str, queue: asyncio.Queue[bytes], deadline: float, lat: list[float], acc: list[int]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = (
        "POST /api/v1/capture HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Authorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: "
    )
    try:
        while time.monotonic() < deadline:
            try:
                body = queue.get_nowait()
            except asyncio.QueueEmpty:
                return
            t0 = time.perf_counter()
            writer.write(f"{head}{len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            raw = await reader.readuntil(b"\r\n\r\n")
            m = re.search(rb"content-length: (\d+)", raw, re.I)
            assert m is not None and raw.startswith(b"HTTP/1.1 200"), raw[:200]
            payload = await reader.readexactly(int(m.group(1)))
            lat.append(time.perf_counter() - t0)
            found = ACCEPTED.search(payload)
            assert found is not None, payload[:200]
            acc.append(int(found.group(1)))
    finally:
        writer.close()


async def run_clients(
    port: int, key: str, clients: int, batches: int, seconds: float, offset: int = 0
) -> tuple[float, list[float], int]:
    # Bodies are built before the clock starts: the clients only send and read.
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for i in range(batches):
        queue.put_nowait(make_batch(offset + i % clients, i))
    lat: list[float] = []
    acc: list[int] = []
    t0 = time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(client_loop(port, key, queue, deadline, lat, acc) for _ in range(clients)))
    return time.perf_counter() - t0, lat, sum(acc)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def baseline(project: Path, batches: int) -> float:
    """Same batches through capture_batch in-process (no HTTP, no auth)."""
    j = Journal(project / "baseline.db")
    docs = [json.loads(make_batch(999, n))["events"] for n in range(batches)]
    t0 = time.perf_counter()
    total = 0
    for d in docs:
        total += capture_batch(j, d, lambda key, **kw: key)["accepted"]
    dt = time.perf_counter() - t0
    j.close()
    return total / dt


def capture_bench(args: argparse.Namespace) -> dict[str, float]:
    project = Path(tempfile.mkdtemp(prefix="yy-capture-bench-"))
    (project / "yunying.toml").write_text("# capture benchmark\n", encoding="utf-8")  # serve needs a project
    settings = load_settings(project)
    key = create_api_key(open_appdb(settings), "bench", "capture")[1]
    base = baseline(project, min(400, args.batches))
    server = Server(project, "--workers", str(args.workers), flush_interval=0)
    try:
        # Warm-up: connections, imports, caches.
        asyncio.run(run_clients(server.port, key, 4, 20, 10, offset=1000))
        elapsed, lat, accepted = asyncio.run(run_clients(server.port, key, args.clients, args.batches, args.seconds))
    finally:
        server.stop()
    eps = accepted / elapsed
    out = {
        "events_per_s": eps, "p50_ms": pct(lat, 0.5) * 1000, "p99_ms": pct(lat, 0.99) * 1000,
        "requests": len(lat), "accepted": accepted, "seconds": elapsed, "baseline_eps": base,
    }
    import os

    print(f"capture: {args.clients} clients x batches of {BATCH}, workers={args.workers}, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  {accepted:,} events accepted in {elapsed:.1f} s -> {eps:,.0f} events/s "
          f"(target 20,000: {eps / 20000:.2f}x)")
    print(f"  latency per batch: p50 {out['p50_ms']:.1f} ms, p99 {out['p99_ms']:.1f} ms ({len(lat):,} requests)")
    print(f"  baseline in-process capture_batch (no HTTP): {base:,.0f} events/s; HTTP/baseline = {eps / base:.2f}")
    return out


def overview_bench(demo: Path, n: int) -> dict[str, float]:
    import httpx

    settings = load_settings(demo)
    ensure_user(open_appdb(settings), "bench@yunying.local", "bench-password", "viewer")
    server = Server(demo, flush_interval=0)
    try:
        with httpx.Client(base_url=server.url, timeout=120) as c:
            page = c.get("/login")
            token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
            assert token is not None
            r = c.post("/login", data={"email": "bench@yunying.local", "password": "bench-password",
                                       "csrf_token": token.group(1)})
            assert r.status_code in (200, 303), r.text[:300]
            assert c.cookies.get("yy_session"), "sign-in failed"
            t0 = time.perf_counter()
            assert c.get("/").status_code == 200
            cold = time.perf_counter() - t0
            times = []
            for _ in range(n):
                t0 = time.perf_counter()
                assert c.get("/").status_code == 200
                times.append(time.perf_counter() - t0)
    finally:
        server.stop()
    p95 = pct(times, 0.95)
    print(f"overview page on {demo}: first request after sign-in {cold * 1000:.0f} ms; warm "
          f"p50 {statistics.median(times) * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms over {n} requests "
          f"(target < 300 ms: {'met' if p95 < 0.3 else 'MISSED'}; cold/warm = {cold / p95:.1f}x)")
    return {"cold_ms": cold * 1000, "p95_ms": p95 * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--batches", type=int, default=3000)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--demo-project", type=Path, default=None)
    ap.add_argument("--overview-requests", type=int, default=60)
    args = ap.parse_args()
    capture_bench(args)
    if args.demo_project is not None:
        overview_bench(args.demo_project, args.overview_requests)


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/ is sys.path[0] when run as a script

    main()
    print()
    print_machine()
