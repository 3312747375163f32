"""Flash-sale redemptions per second and p99 latency on PostgreSQL at 200 concurrent clients.

Baselines, same server, same run: a bare conditional ``UPDATE … SET stock = stock - 1
WHERE stock > 0`` loop (autocommit, raw psycopg) by the same number of clients, on one hot
row (the issue's baseline) and on as many rows as the sale has shards, each update on a
random one (the same spreading of the lock as the sale: the fair baseline). The redemption
path does the whole act: idempotency key, per-user limit, redemption row, ledger legs,
outbox event and the conditional stock+budget update, in one transaction.

Same client machinery for all loops: threads in ``--procs`` spawned processes, each thread
on one connection it keeps (the redemption pool keeps 100 per process), the clock started
after every thread has connected and warmed up, only successes counted.

Run: ``.venv/bin/python benchmarks/redeem_bench.py [--clients 200] [--seconds 10] [--procs 2]``.
Clients are threads spread over ``--procs`` processes (the GIL would otherwise be the limit).
"""

from __future__ import annotations

import argparse
import datetime as dt
import multiprocessing as mp
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def _bare_worker(dsn: str, rows: int, start: float, until: float, lat: list[float], lock: threading.Lock,
                 seed: int) -> None:
    import random

    import psycopg

    rng = random.Random(seed)
    mine: list[float] = []
    with psycopg.connect(dsn, autocommit=True) as c:
        c.execute("SELECT 1")
        while time.time() < start:
            time.sleep(0.001)
        while time.time() < until:
            t = time.perf_counter()
            cur = c.execute("UPDATE bench_stock SET stock = stock - 1 WHERE id = %s AND stock > 0",
                            (rng.randint(1, rows),))
            if cur.rowcount == 1:
                mine.append(time.perf_counter() - t)
    with lock:
        lat.extend(mine)


def _redeem_worker(url: str, tool_id: str, start: float, until: float, lat: list[float], lock: threading.Lock,
                   seed: int) -> None:
    from yunying.engage import service as S
    from yunying.engage.schemas import RedeemRequest
    from yunying.errors import YunyingError

    def once(n: int) -> bool:
        req = RedeemRequest(key=f"b:{seed}:{n}:{uuid.uuid4().hex[:8]}", tool_id=tool_id,
                            user_id=f"user-{seed}-{n % 50}")
        try:
            S.redeem(url, req)
            return True
        except YunyingError as e:
            if os.environ.get("YY_BENCH_DEBUG"):
                print(e.key, e.params, file=sys.stderr)
            return False

    once(0)  # warm up: imports, connection, tool definition
    mine: list[float] = []
    n = 0
    while time.time() < start:
        time.sleep(0.001)
    while time.time() < until:
        n += 1
        t = time.perf_counter()
        if once(n):
            mine.append(time.perf_counter() - t)
    with lock:
        lat.extend(mine)


def _proc(kind: str, target: str, tool_id: str, threads: int, start: float, seconds: float, base: int,
          q: Any, rows: int) -> None:
    if kind == "redeem":
        import yunying.engage.service  # noqa: F401  (import before the clock starts)
    until = start + seconds
    lat: list[float] = []
    lock = threading.Lock()
    ts = []
    for i in range(threads):
        if kind == "bare":
            ts.append(threading.Thread(target=_bare_worker, args=(target, rows, start, until, lat, lock, base + i)))
        else:
            ts.append(threading.Thread(target=_redeem_worker,
                                       args=(target, tool_id, start, until, lat, lock, base + i)))
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    q.put(lat)


def run(kind: str, target: str, tool_id: str, clients: int, procs: int, seconds: float,
        rows: int = 1) -> dict[str, float]:
    """Run ``clients`` clients for ``seconds``; returns successes/s and latency percentiles (ms)."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    start = time.time() + 20.0  # let every process import, connect and warm up first
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    ps = [ctx.Process(target=_proc, args=(kind, target, tool_id, n, start, seconds, 10_000 * i, q, rows))
          for i, n in enumerate(per)]
    for p in ps:
        p.start()
    lat: list[float] = []
    for _ in ps:
        lat.extend(q.get())
    for p in ps:
        p.join()
    lat.sort()
    n = len(lat)
    return {
        "ops": n,
        "per_s": n / seconds,
        "p50_ms": 1000 * statistics.median(lat) if lat else float("nan"),
        "p99_ms": 1000 * lat[min(n - 1, int(n * 0.99))] if lat else float("nan"),
    }


def setup(url: str, stock: int, shards: int = 16) -> str:
    from yunying.appdb import engine_for, migrate
    from yunying.engage import service as S
    from yunying.engage.schemas import ToolSpec

    migrate(url)
    tool_id = f"bench-{uuid.uuid4().hex[:8]}"
    S.create_tool(url, ToolSpec(
        id=tool_id, kind="flash_sale", name="bench", starts_at=dt.datetime(2020, 1, 1),
        ends_at=dt.datetime(2100, 1, 1), rules={"price": "5", "list_price": "10"}, stock=stock,
        budget=None, per_user_limit=1_000_000, shards=shards,
    ))
    import sqlalchemy as sa

    with engine_for(url).begin() as c:
        c.execute(sa.text("DROP TABLE IF EXISTS bench_stock"))
        c.execute(sa.text("CREATE TABLE bench_stock (id int primary key, stock bigint not null)"))
        c.execute(sa.text("INSERT INTO bench_stock SELECT i, :s FROM generate_series(1, :n) AS i"),
                  {"s": stock, "n": shards})
    return tool_id


def main(argv: list[str] | None = None) -> dict[str, dict[str, float]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--clients", type=int, default=200)
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--shards", type=int, default=16, help="stock slices of the sale (1 = one hot row)")
    ap.add_argument("--url", default="", help="PostgreSQL URL (default: start a throwaway server)")
    args = ap.parse_args(argv)

    server = None
    url = args.url
    if not url:
        from tests.support.pg import start_server

        server = start_server()
        url = server.url
    try:
        tool_id = setup(url, 100_000_000, args.shards)
        dsn = url.replace("postgresql+psycopg://", "postgresql://")
        bare = run("bare", dsn, tool_id, args.clients, args.procs, args.seconds)
        spread = bare if args.shards == 1 else run("bare", dsn, tool_id, args.clients, args.procs, args.seconds,
                                                    rows=args.shards)
        red = run("redeem", url, tool_id, args.clients, args.procs, args.seconds)
    finally:
        if server is not None:
            server.stop()
    ratio = red["per_s"] / bare["per_s"] if bare["per_s"] else float("nan")
    fair = red["per_s"] / spread["per_s"] if spread["per_s"] else float("nan")
    print(f"clients={args.clients} procs={args.procs} seconds={args.seconds} shards={args.shards}")
    print(f"bare conditional UPDATE : {bare['per_s']:9.0f}/s  p50 {bare['p50_ms']:7.1f} ms  p99 {bare['p99_ms']:7.1f} ms"
          "  (one hot row)")
    print(f"{f'bare, {args.shards} rows':<24}: {spread['per_s']:9.0f}/s  p50 {spread['p50_ms']:7.1f} ms  "
          f"p99 {spread['p99_ms']:7.1f} ms  (random row of {args.shards}, as the sale's shards)")
    print(f"engage redeem           : {red['per_s']:9.0f}/s  p50 {red['p50_ms']:7.1f} ms  p99 {red['p99_ms']:7.1f} ms")
    print(f"ratio redeem / bare     : {ratio:.2f}x  (target >= 0.3x and >= 1,000/s)")
    print(f"{f'ratio redeem / bare {args.shards}':<24}: {fair:.2f}x  (against the same spreading of the lock)")
    return {"bare": bare, "bare_rows": spread, "redeem": red}


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/ is sys.path[0] when run as a script

    main()
    print()
    print_machine()
