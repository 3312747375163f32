"""Analytics benchmark: yunying (DuckDB warehouse) vs ClickHouse (chdb) on the same events.

Generates N events (default 10M) for skewed users in sessions that walk the shop funnel
view → search → add_to_cart → checkout → pay with realistic step probabilities, loads them
into the yunying DuckDB warehouse and into a chdb MergeTree table ordered by (user_id, ts),
then times, each side in a fresh child process that connects (untimed) and then runs the
query ``--repeat`` times, ``--rounds`` processes per side taking turns; best and median
query times and the best CPU time are compared (peak RSS of the process is reported):

- funnel, 5 steps, 7-day window: ``run_funnel`` vs ``windowFunnel`` (counts asserted equal);
- retention, 12 weekly cohorts: ``run_retention`` vs ClickHouse ``retention`` (asserted equal);
- the RFM/CLV section of ``benchmarks/_value_section.py`` when that file exists.

    .venv/bin/python benchmarks/analytics_bench.py [--events 10000000] [--customers 1000000]
        [--repeat 3] [--rounds 2] [--skip-value] [--keep]
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when imported by path
from _proc import spawned  # noqa: E402
from machine import print_machine  # noqa: E402

STEPS = ["view", "search", "add_to_cart", "checkout", "pay"]
NEXT_P = [0.55, 0.45, 0.6, 0.7]  # chance to go on to the next step
NOISE = ["login", "share", "favorite", "review"]
START = datetime(2024, 1, 1)  # UTC
DAYS = 91
WINDOW_DAYS = 7


def generate(
    n_events: int, seed: int = 7, weights: np.ndarray | None = None, first_id: int = 0,
    ids: str = "short",
) -> pa.Table:
    """Events for ~n_events/12 users (Pareto-skewed activity), naive UTC timestamps.

    ``weights`` (each user's share of activity) lets ``parts`` draw several chunks from one
    user base; ``first_id`` numbers their events on. ``ids``: ``short`` (``u123``) or
    ``uuid`` (36 characters, as many products name users). Strings are built by Arrow from
    integers and dictionaries, so 10M events take about 1 GB, not the 15 GB NumPy's
    fixed-width strings would.
    """
    rng = np.random.default_rng(seed)
    # sessions: each emits 1..5 funnel steps, then noise fills up to n_events
    sess_steps = np.ones(max(n_events // 4, 1), dtype=np.int64)
    alive = np.ones_like(sess_steps, dtype=bool)
    for p in NEXT_P:
        alive &= rng.random(sess_steps.size) < p
        sess_steps += alive
    n_step = int(sess_steps.sum())
    n_sess = sess_steps.size
    if weights is None:  # skewed users: a few are very active
        weights = rng.pareto(1.2, max(n_events // 12, 10)) + 1.0
        weights /= weights.sum()
    n_users = weights.size
    sess_user = rng.choice(n_users, n_sess, p=weights)
    sess_start = rng.integers(0, DAYS * 86400, n_sess)
    idx = np.repeat(np.arange(n_sess), sess_steps)
    pos = np.arange(n_step) - np.repeat(np.cumsum(sess_steps) - sess_steps, sess_steps)
    gap = rng.exponential(3 * 3600, n_step).astype(np.int64)  # mean 3 h between steps
    gap[pos == 0] = 0
    # cumulative gap within a session
    cum = np.cumsum(gap)
    base = np.repeat(cum[np.cumsum(sess_steps) - sess_steps], sess_steps)
    offs = cum - base
    step_ts = sess_start[idx] + offs
    step_user = sess_user[idx]
    n_noise = max(n_events - n_step, 0)
    noise_user = rng.choice(n_users, n_noise, p=weights)
    noise_ts = rng.integers(0, DAYS * 86400, n_noise)
    noise_ev = rng.integers(0, len(NOISE), n_noise) + len(STEPS)
    users = np.concatenate([step_user, noise_user])[:n_events]
    secs = np.concatenate([step_ts, noise_ts])[:n_events]
    evs = np.concatenate([pos, noise_ev])[:n_events].astype(np.int8)
    n = users.size
    ts = (np.datetime64(START, "us") + (secs * 1_000_000).astype("timedelta64[us]"))
    if ids == "uuid":
        uid = _uuids(n_users).take(pa.array(users))
    else:
        uid = pc.binary_join_element_wise(pa.scalar("u"), pc.cast(pa.array(users), pa.string()), "")
    channels = ["organic", "ads", "social", "referral"]
    props = pa.array(['{"channel": "' + c + '"}' for c in channels])
    return pa.table(
        {
            "event_id": pc.cast(pa.array(np.arange(first_id, first_id + n)), pa.string()),
            "event": _strings(evs, STEPS + NOISE),
            "user_id": uid,
            "ts": pa.array(ts),
            "account_id": pa.nulls(n, pa.string()),
            "session_id": pa.nulls(n, pa.string()),
            "properties": _strings((users % 4).astype(np.int8), props.to_pylist()),
        }
    )


def _uuids(n: int) -> pa.Array:
    """One UUID-shaped id per user number, the same in every chunk."""
    r = np.random.default_rng(12345).integers(0, 2**63, (n, 2), dtype=np.int64).tolist()
    return pa.array([str(uuid.UUID(int=(a << 64) | b)) for a, b in r])


def _strings(codes: np.ndarray, values: list[str]) -> pa.Array:
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(values)).cast(pa.string())


PART = 10_000_000


def parts(n_events: int, seed: int = 7, ids: str = "short") -> Iterator[pa.Table]:
    """``generate`` in chunks of at most 10M events drawn from one user base (for 100M);
    up to 10M, one chunk equal to ``generate(n_events, seed)``."""
    if n_events <= PART:
        yield generate(n_events, seed, ids=ids)
        return
    weights = np.random.default_rng(seed).pareto(1.2, n_events // 12) + 1.0
    weights /= weights.sum()
    for i, off in enumerate(range(0, n_events, PART)):
        yield generate(min(PART, n_events - off), seed + 1 + i, weights, off, ids)


# ---------------------------------------------------------------------------------------
# queries
# ---------------------------------------------------------------------------------------

FUNNEL_FROM = date(2024, 1, 1)
FUNNEL_TO = date(2024, 3, 24)


def funnel_query() -> Any:
    from yunying.analytics.common import DateRange
    from yunying.analytics.funnels import FunnelQuery, FunnelStep

    return FunnelQuery(
        steps=[FunnelStep(event=e) for e in STEPS],
        dates=DateRange(**{"from": FUNNEL_FROM, "to": FUNNEL_TO}),
        window_days=WINDOW_DAYS,
        time_to_convert=False,
    )


def ch_funnel_sql(table: str) -> str:
    """Same semantics as the yunying query (UTC project zone): step 1 in range, later
    steps up to the window after it; window in microseconds so ties are exact."""
    start = datetime.combine(FUNNEL_FROM, datetime.min.time())
    end = datetime.combine(FUNNEL_TO + timedelta(days=1), datetime.min.time())
    w_us = WINDOW_DAYS * 86400 * 1_000_000
    conds = [f"event = 'view' AND ts < '{end}'"] + [f"event = '{e}'" for e in STEPS[1:]]
    return (
        f"SELECT level, count() AS users FROM (SELECT user_id, windowFunnel({w_us})("
        f"toUInt64(toUnixTimestamp64Micro(ts)), {', '.join(conds)}) AS level FROM {table} "
        f"WHERE ts >= '{start}' AND ts <= '{end + timedelta(days=WINDOW_DAYS)}' "
        f"AND event IN ({', '.join(repr(e) for e in STEPS)}) GROUP BY user_id) "
        f"GROUP BY level ORDER BY level"
    )


def levels_to_steps(rows: list[tuple[int, int]], n: int) -> list[int]:
    return [sum(c for lv, c in rows if lv >= k) for k in range(1, n + 1)]


RET_FROM = date(2024, 1, 1)  # a Monday
RET_WEEKS = 12


def retention_query() -> Any:
    from yunying.analytics.common import DateRange
    from yunying.analytics.retention import RetentionQuery

    return RetentionQuery(
        start_event="view",
        return_event="view",
        cohort="first_in_range",
        period="week",
        periods=RET_WEEKS,
        dates=DateRange(**{"from": RET_FROM, "to": RET_FROM + timedelta(weeks=RET_WEEKS) - timedelta(days=1)}),
    )


def ch_retention_sql(table: str) -> str:
    """Weekly cohorts by first view in range; ``retention(wk = 0, …, wk = 12)`` per user."""
    start = datetime.combine(RET_FROM, datetime.min.time())
    end = start + timedelta(weeks=RET_WEEKS)
    last = start + timedelta(weeks=2 * RET_WEEKS + 1)
    conds = ", ".join(f"wk = {i}" for i in range(RET_WEEKS + 1))
    return (
        "SELECT cohort, sumForEach(r) FROM ("
        f" SELECT user_id, any(c) AS cohort, retention({conds}) AS r FROM ("
        "  SELECT user_id, c, intDiv(dateDiff('day', c, toDate(ts)), 7) AS wk FROM ("
        "   SELECT user_id, ts, toMonday(min(ts) OVER (PARTITION BY user_id)) AS c"
        f"   FROM {table} WHERE event = 'view' AND ts >= '{start}' AND ts < '{last}')"
        f"  WHERE c < toDate('{end.date()}'))"
        " GROUP BY user_id) GROUP BY cohort ORDER BY cohort"
    )


# ---------------------------------------------------------------------------------------
# child-process runners (time + peak RSS of a fresh process)
# ---------------------------------------------------------------------------------------


def measured(
    fn: Callable[..., Any], *args: Any
) -> tuple[Any, list[tuple[float, float]], float, float]:
    """Run ``fn`` in a fresh process: (result, query times, whole child time, peak RSS).

    ``fn`` sets up (imports, connection or session) untimed, then runs the query REPEAT
    times and returns each query's wall time: both sides are compared on query time only.
    """
    (res, times), dt, peak = spawned(fn, *args)
    return res, times, dt, peak


REPEAT = 3


def _timed(run: Callable[[], Any], repeat: int) -> tuple[Any, list[tuple[float, float]]]:
    """``run`` ``repeat`` times: its answer and each run's (wall, CPU) seconds. CPU is the
    whole process's (all threads; chdb runs in-process), which moves less than wall time
    when other jobs share the machine."""
    times = []
    res: Any = None
    for _ in range(repeat):
        c0, t0 = time.process_time(), time.perf_counter()
        res = run()
        times.append((time.perf_counter() - t0, time.process_time() - c0))
    return res, times


def _open(project: str) -> Any:
    from yunying.config import load_settings
    from yunying.warehouse.engine import Warehouse

    wh = Warehouse(load_settings(project, timezone="UTC"), "duckdb")
    wh.con  # noqa: B018 - connect now, outside the timed query
    return wh


def yy_funnel(project: str, repeat: int = REPEAT) -> tuple[list[int], list[tuple[float, float]]]:
    from yunying.analytics import kernels
    from yunying.analytics.funnels import run_funnel

    wh = _open(project)
    # Untimed, like connecting: load the compiled level pass as `yunying serve` does at
    # start-up (a one-off CLI query skips it and uses the NumPy pass; see kernels).
    kernels.warm()
    r, times = _timed(lambda: run_funnel(wh, funnel_query()), repeat)
    return [s.users for s in r.steps], times


def yy_retention(project: str, repeat: int = REPEAT) -> tuple[list[list[int]], list[tuple[float, float]]]:
    from yunying.analytics import kernels
    from yunying.analytics.retention import run_retention

    wh = _open(project)
    kernels.warm()  # untimed, as in yy_funnel
    r, times = _timed(lambda: run_retention(wh, retention_query()), repeat)
    # ClickHouse's retention(): r[0] = in the cohort, r[N] = also active in week N
    return [[c.size] + c.retained[1:] for c in r.cohorts], times


def _ch_rows(res: str) -> list[tuple[Any, ...]]:
    rows = []
    for line in res.strip().splitlines():
        rows.append(tuple(line.split(",", 1)))
    return rows


def ch_query(path: str, sql: str, repeat: int = REPEAT) -> tuple[list[tuple[Any, ...]], list[tuple[float, float]]]:
    from chdb import session

    s = session.Session(path)
    res, times = _timed(lambda: s.query(sql, "CSV").bytes().decode(), repeat)
    s.close()
    return _ch_rows(res), times


def ch_funnel(path: str, repeat: int = REPEAT) -> tuple[list[int], list[tuple[float, float]]]:
    rows, times = ch_query(path, ch_funnel_sql("bench.events"), repeat)
    return levels_to_steps([(int(a), int(b)) for a, b in rows], len(STEPS)), times


def ch_retention(path: str, repeat: int = REPEAT) -> tuple[list[list[int]], list[tuple[float, float]]]:
    rows, times = ch_query(path, ch_retention_sql("bench.events"), repeat)
    out = []
    for _, arr in rows:
        vals = [int(x) for x in arr.strip('"[]').split(",")]
        out.append(vals[:1] + vals[1:])
    return out, times


def _fmt(times: list[tuple[float, float]]) -> str:
    wall = [w for w, _ in times]
    return (
        f"best {min(wall):6.2f} s  median {statistics.median(wall):6.2f} s"
        f"  CPU best {min(c for _, c in times):5.2f} s"
    )


def _timed_parts(n_events: int, ids: str) -> Iterator[tuple[pa.Table, float]]:
    it = parts(n_events, ids=ids)
    while True:
        t0 = time.perf_counter()
        tab = next(it, None)
        if tab is None:
            return
        yield tab, time.perf_counter() - t0


def load(n_events: int, work: Path, ids: str = "short") -> tuple[str, str]:
    from chdb import session

    from yunying.config import load_settings
    from yunying.warehouse.engine import Warehouse

    project = work / "project"
    project.mkdir()
    wh = Warehouse(load_settings(project, timezone="UTC"), "duckdb")
    pqf = work / "events.parquet"
    gen = load_s = 0.0
    rows = 0
    writer: pq.ParquetWriter | None = None
    for data in _timed_parts(n_events, ids):
        gen += data[1]
        tab = data[0]
        rows += tab.num_rows
        t0 = time.perf_counter()
        for off in range(0, tab.num_rows, 2_000_000):
            wh.append_arrow("events", tab.slice(off, 2_000_000))
        load_s += time.perf_counter() - t0
        ch_part = tab.select(["user_id", "ts", "event"])
        if writer is None:
            writer = pq.ParquetWriter(pqf, ch_part.schema)
        writer.write_table(ch_part)
        del tab, ch_part, data
    if writer is not None:
        writer.close()
    t0 = time.perf_counter()
    wh.duck.execute("CHECKPOINT")
    wh.close()
    load_s += time.perf_counter() - t0
    (work / "events.txt").write_text(str(rows))
    print(f"generated {rows:,} events in {gen:.1f} s", flush=True)
    print(f"loaded DuckDB warehouse in {load_s:.1f} s", flush=True)
    chpath = str(work / "chdb")
    t0 = time.perf_counter()
    s = session.Session(chpath)
    s.query("CREATE DATABASE IF NOT EXISTS bench")
    s.query(
        "CREATE TABLE bench.events (user_id String, ts DateTime64(6), event LowCardinality(String)) "
        "ENGINE = MergeTree ORDER BY (user_id, ts)"
    )
    s.query(f"INSERT INTO bench.events SELECT user_id, ts, event FROM file('{pqf}', Parquet)")
    s.query("OPTIMIZE TABLE bench.events FINAL")
    s.close()
    print(f"loaded chdb MergeTree in {time.perf_counter() - t0:.1f} s", flush=True)
    return str(project), chpath


def compare(
    yy_fn: Callable[..., Any], ch_fn: Callable[..., Any], project: str, chpath: str,
    repeat: int, show: bool, rounds: int = 1,
) -> tuple[Any, str]:
    """Both sides in their own processes, ``rounds`` times alternating, printed; asserts
    equal answers.

    Returns (the answer, "<best>x best, <median>x median, <CPU>x CPU" of yunying /
    ClickHouse, over every timed run); ``show`` prints each side's answer on its line too.
    """
    yt: list[tuple[float, float]] = []
    ct: list[tuple[float, float]] = []
    walls, peaks = [0.0, 0.0], [0.0, 0.0]
    yy = ch = None
    for _ in range(rounds):  # alternate the sides: a burst of load hits both alike
        yy, t, w, m = measured(yy_fn, project, repeat)
        yt, walls[0], peaks[0] = yt + t, max(walls[0], w), max(peaks[0], m)
        ch, t, w, m = measured(ch_fn, chpath, repeat)
        ct, walls[1], peaks[1] = ct + t, max(walls[1], w), max(peaks[1], m)
    for name, times, wall, peak, res in (
        ("yunying/DuckDB", yt, walls[0], peaks[0], yy), ("ClickHouse    ", ct, walls[1], peaks[1], ch)
    ):
        tail = f"  steps {res}" if show else ""
        print(f"  {name} : {_fmt(times)}  (process {wall:5.2f} s)  peak RSS {peak:7.0f} MiB{tail}")
    assert yy == ch, f"answers differ:\nyunying    {yy}\nClickHouse {ch}"

    def ratio_of(pick: Callable[[list[float]], float], i: int) -> float:
        return pick([x[i] for x in yt]) / pick([x[i] for x in ct])

    ratio = (
        f"{ratio_of(min, 0):.2f}x best, {ratio_of(statistics.median, 0):.2f}x median, "
        f"{ratio_of(min, 1):.2f}x CPU"
    )
    return yy, ratio


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--keep", action="store_true", help="keep the generated data folder")
    ap.add_argument(
        "--reuse", type=Path, default=None,
        help="time again on a folder an earlier --keep run left (skips generating and loading)",
    )
    ap.add_argument("--repeat", type=int, default=REPEAT, help="timed runs of each query per process")
    ap.add_argument("--rounds", type=int, default=2, help="processes per side, alternating")
    ap.add_argument("--skip-value", action="store_true", help="skip the RFM/CLV section")
    ap.add_argument(
        "--ids", choices=["short", "uuid"], default="short",
        help="user ids: u123 (packed exactly) or UUIDs (hashed, then checked)",
    )
    a = ap.parse_args(argv)
    if a.reuse is not None:
        work, a.keep = a.reuse, True
        project, chpath = str(work / "project"), str(work / "chdb")
        if not (Path(project).is_dir() and Path(chpath).is_dir() and (work / "events.txt").is_file()):
            ap.error(f"{work} holds no kept benchmark data (project/, chdb/, events.txt)")
        a.events = int((work / "events.txt").read_text())
    else:
        work = Path(tempfile.mkdtemp(prefix="yy-analytics-bench-"))
    try:
        if a.reuse is None:
            project, chpath = load(a.events, work, a.ids)
        r = a.repeat
        ids = "" if a.ids == "short" else f", {a.ids} user ids"
        print(f"\n== funnel: {len(STEPS)} steps, {WINDOW_DAYS}-day window, {a.events:,} events{ids} ==")
        print(
            f"  (query time only: {a.rounds} processes per side, alternating, each {r} runs after"
            " an untimed connect; same data)"
        )
        _, ratio = compare(yy_funnel, ch_funnel, project, chpath, r, show=True, rounds=a.rounds)
        print(f"  counts equal; ratio yunying/ClickHouse = {ratio}")
        print(f"\n== retention: {RET_WEEKS} weekly cohorts (first view), return = view ==")
        yr, ratio = compare(yy_retention, ch_retention, project, chpath, r, show=False, rounds=a.rounds)
        print(f"  cohort matrices equal ({len(yr)} cohorts); ratio = {ratio}")
        print("  first cohort:", yr[0] if yr else [])
        if a.skip_value:
            print()
            print_machine()
            return
        value = Path(__file__).with_name("_value_section.py")
        if value.exists():
            print(f"\n== RFM / CLV ({a.customers:,} customers) ==")
            spec = importlib.util.spec_from_file_location("_value_section", value)
            assert spec and spec.loader
            mod = importlib.util.module_from_spec(spec)
            sys.modules["_value_section"] = mod
            spec.loader.exec_module(mod)
            for row in mod.run(a.customers):
                print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
        else:
            print("\n(benchmarks/_value_section.py not present: RFM/CLV section skipped)")
        print()
        print_machine()
    finally:
        if a.keep:
            print(f"data kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
