"""Metric computation: 50 library metrics × 90 days by channel on 10M events.

Compares ``yunying.metrics.compute`` (specs → Ibis → DuckDB, plus pandas for ratios,
derived formulas and running totals) with the same metrics written by hand as DuckDB
SQL, in the same run on the same data, and times a cache hit.

    .venv/bin/python benchmarks/metrics_bench.py [--events 10000000] [--days 90]
"""

from __future__ import annotations

import argparse
import datetime as dt
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from yunying.config import load_settings
from yunying.metrics import compute, load_registry
from yunying.metrics.spec import LIBRARIES, Registry, allowed_dims
from yunying.warehouse.engine import Warehouse

END = dt.date(2026, 10, 31)
CHANNELS = ("organic", "sem", "social", "referral", "kol")
# event → share of all events
MIX = [
    ("view", 0.45), ("search", 0.12), ("add_to_cart", 0.10), ("checkout", 0.05), ("pay", 0.03),
    ("sign_up", 0.02), ("loan_apply", 0.06), ("loan_approve", 0.04), ("loan_disburse", 0.03),
    ("repayment_due", 0.05), ("repayment", 0.05),
]


def generate(wh: Warehouse, events: int, days: int, seed: int = 7) -> None:
    """Synthetic company in DuckDB SQL: users, events (with JSON properties) and orders."""
    d = wh.duck
    d.execute(f"SELECT setseed({seed / 100})")
    users = max(1000, events // 25)
    start = END - dt.timedelta(days=days - 1)
    span_s = (days + 60) * 86400
    origin = dt.datetime.combine(start - dt.timedelta(days=60), dt.time())
    d.execute(
        f"""INSERT INTO users SELECT 'u' || i, TIMESTAMP '{origin}' + to_seconds(CAST(random() * {span_s - 86400} AS BIGINT)),
        ['organic','sem','social','referral','kol'][1 + i % 5], NULL FROM range({users}) t(i)"""
    )
    cases = []
    acc = 0.0
    for name, share in MIX:
        acc += share
        cases.append(f"WHEN r < {acc:.4f} THEN '{name}'")
    ev_sql = "CASE " + " ".join(cases) + " ELSE 'view' END"
    d.execute(
        f"""INSERT INTO events
        WITH base AS (
          SELECT i, random() AS r, CAST(floor(pow(random(), 1.5) * {users}) AS BIGINT) AS u,
                 TIMESTAMP '{origin}' + to_seconds(CAST(random() * {span_s} AS BIGINT)) AS ts
          FROM range({events}) t(i))
        SELECT 'e' || i, {ev_sql}, 'u' || u, ts, NULL,
               'u' || u || '-' || CAST(CAST(ts AS DATE) AS VARCHAR),
               CASE WHEN r >= 0.37 AND r < 0.57 THEN
                      json_object('loan_id', 'L' || (u % 50000), 'installment', 1 + i % 6,
                                  'amount', round(100 + (i % 900), 2), 'platform', ['ios','android','web'][1 + i % 3])
                    ELSE json_object('platform', ['ios','android','web'][1 + i % 3]) END
        FROM base"""
    )
    orders = events // 30
    d.execute(
        f"""INSERT INTO orders SELECT 'o' || i, 'u' || CAST(floor(pow(random(), 1.5) * {users}) AS BIGINT),
        TIMESTAMP '{origin}' + to_seconds(CAST(random() * {span_s} AS BIGINT)),
        CAST(round(20 + random() * 500, 2) AS DECIMAL(18,2)), 'CNY',
        CASE WHEN random() < 0.85 THEN 'paid' WHEN random() < 0.7 THEN 'refunded' ELSE 'cancelled' END, NULL
        FROM range({orders}) t(i)"""
    )
    d.execute("CHECKPOINT")
    wh.bump_version()


def bench_metrics(reg: Registry, n: int = 50) -> list[str]:
    names = [m for m in reg.metrics if "channel" in allowed_dims(reg, m)]
    return names[:n]


# -- the hand-written baseline -------------------------------------------------------------

LOCAL = "(ts + INTERVAL 8 HOUR)"


def _sql_baseline(con: Any, start: dt.date, end: dt.date) -> dict[str, pd.DataFrame]:
    """The same metrics as an analyst would write them: one query per table or concept."""
    lo = f"TIMESTAMP '{start}' - INTERVAL 8 HOUR"
    hi = f"TIMESTAMP '{end + dt.timedelta(days=1)}' - INTERVAL 8 HOUR"
    q = lambda sql: con.execute(sql).df()  # noqa: E731
    out: dict[str, pd.DataFrame] = {}
    out["events"] = q(f"""
        SELECT CAST({LOCAL} AS DATE) AS day, u.channel,
          count(DISTINCT e.user_id) AS uv, count(*) FILTER (event = 'view') AS pv,
          count(*) FILTER (event = 'add_to_cart') AS cart_adds,
          count(DISTINCT session_id) AS sessions,
          count(*) FILTER (event = 'loan_apply') AS loan_applications,
          count(*) FILTER (event = 'loan_approve') AS loan_approvals,
          count(*) FILTER (event = 'loan_disburse') AS loans_disbursed,
          sum(TRY_CAST(json_extract_string(e.properties, '$.amount') AS DOUBLE)) FILTER (event = 'loan_disburse') AS loan_amount,
          sum(TRY_CAST(json_extract_string(e.properties, '$.amount') AS DOUBLE)) FILTER (event = 'repayment_due') AS amount_due,
          sum(TRY_CAST(json_extract_string(e.properties, '$.amount') AS DOUBLE)) FILTER (event = 'repayment') AS amount_repaid
        FROM events e LEFT JOIN users u USING (user_id)
        WHERE ts >= {lo} AND ts < {hi} GROUP BY ALL""")
    out["orders"] = q(f"""
        SELECT CAST({LOCAL} AS DATE) AS day, u.channel,
          count(DISTINCT o.user_id) FILTER (status IN ('paid','refunded')) AS buyers,
          count(*) FILTER (status IN ('paid','refunded')) AS orders,
          sum(amount) FILTER (status IN ('paid','refunded')) AS gmv,
          count(*) FILTER (status = 'refunded') AS refunded_orders,
          sum(amount) FILTER (status = 'refunded') AS refund_amount
        FROM orders o LEFT JOIN users u USING (user_id)
        WHERE ts >= {lo} AND ts < {hi} GROUP BY ALL""")
    out["new_users"] = q(f"""
        SELECT CAST(first_seen + INTERVAL 8 HOUR AS DATE) AS day, channel, count(*) AS new_users
        FROM users WHERE first_seen >= {lo} AND first_seen < {hi} GROUP BY ALL""")
    out["users_before"] = q(f"SELECT channel, count(*) AS n FROM users WHERE first_seen < {lo} GROUP BY ALL")
    out["avg_dau"] = out["events"][["day", "channel", "uv"]]
    out["wau"] = q(f"""SELECT date_trunc('week', {LOCAL}) AS wk, u.channel, count(DISTINCT user_id) AS wau
        FROM events e LEFT JOIN users u USING (user_id) WHERE ts >= {lo} AND ts < {hi} GROUP BY ALL""")
    out["mau"] = q(f"""SELECT date_trunc('month', {LOCAL}) AS mo, u.channel, count(DISTINCT user_id) AS mau
        FROM events e LEFT JOIN users u USING (user_id) WHERE ts >= {lo} AND ts < {hi} GROUP BY ALL""")
    out["repurchase"] = q(f"""
        WITH a AS (SELECT o.user_id, CAST({LOCAL} AS DATE) AS day, u.channel, min(ts) AS t0
                   FROM orders o LEFT JOIN users u USING (user_id)
                   WHERE status IN ('paid','refunded') AND ts >= {lo} AND ts < {hi} GROUP BY ALL)
        SELECT day, channel, count(*) AS n,
               count(*) FILTER (EXISTS (SELECT 1 FROM orders b WHERE b.user_id = a.user_id
                     AND b.status IN ('paid','refunded') AND b.ts > a.t0 AND b.ts <= a.t0 + INTERVAL 30 DAY)) AS c
        FROM a GROUP BY ALL""")
    for n in (1, 7, 30):
        out[f"retention_d{n}"] = q(f"""
            WITH a AS (SELECT user_id, channel, CAST(first_seen + INTERVAL 8 HOUR AS DATE) AS day,
                              date_trunc('day', first_seen + INTERVAL 8 HOUR) AS d0
                       FROM users WHERE first_seen >= {lo} AND first_seen < {hi})
            SELECT day, channel, count(*) AS n,
                   count(*) FILTER (EXISTS (SELECT 1 FROM events b WHERE b.user_id = a.user_id
                        AND b.ts + INTERVAL 8 HOUR >= a.d0 + INTERVAL {n} DAY
                        AND b.ts + INTERVAL 8 HOUR < a.d0 + INTERVAL {n + 1} DAY)) AS c
            FROM a GROUP BY ALL""")
    for name, days in (("repaid_on_time", 1), ("repaid_within_30d", 30), ("repaid_within_90d", 90)):
        out[name] = q(f"""
            WITH a AS (SELECT json_extract_string(e.properties, '$.loan_id') || '|' ||
                              json_extract_string(e.properties, '$.installment') AS k,
                              CAST({LOCAL} AS DATE) AS day, u.channel, min(ts) AS t0
                       FROM events e LEFT JOIN users u USING (user_id)
                       WHERE event = 'repayment_due' AND ts >= {lo} AND ts < {hi} GROUP BY ALL),
                 b AS (SELECT json_extract_string(properties, '$.loan_id') || '|' ||
                              json_extract_string(properties, '$.installment') AS k, ts
                       FROM events WHERE event = 'repayment')
            SELECT day, channel, count(*) AS n,
                   count(*) FILTER (EXISTS (SELECT 1 FROM b WHERE b.k = a.k AND b.ts > a.t0 - INTERVAL 366 DAY
                                            AND b.ts <= a.t0 + INTERVAL {days} DAY)) AS c
            FROM a GROUP BY ALL""")
    out["lifecycle"] = q(f"""
        WITH cal AS (SELECT CAST(d AS DATE) AS pe FROM range(DATE '{start}', DATE '{end + dt.timedelta(days=1)}', INTERVAL 1 DAY) t(d)),
             ud AS (SELECT DISTINCT user_id, CAST({LOCAL} AS DATE) AS day FROM events
                    WHERE ts >= {lo} - INTERVAL 31 DAY AND ts < {hi}),
             act AS (SELECT user_id, pe, max(day = pe) AS inp FROM ud JOIN cal ON day <= pe AND day > pe - 30
                     GROUP BY ALL),
             uc AS (SELECT user_id, channel, CAST(first_seen + INTERVAL 8 HOUR AS DATE) AS fl, pe
                    FROM users JOIN cal ON CAST(first_seen + INTERVAL 8 HOUR AS DATE) <= pe)
        SELECT uc.pe, channel, count(*) AS total, count(*) FILTER (fl = uc.pe) AS new,
               count(*) FILTER (fl < uc.pe AND inp) AS active,
               count(*) FILTER (fl < uc.pe AND NOT inp) AS silent,
               count(*) FILTER (fl < uc.pe AND inp IS NULL) AS churned
        FROM uc LEFT JOIN act ON uc.user_id = act.user_id AND uc.pe = act.pe GROUP BY ALL""")
    # Ratios, formulas and running totals on the small per-day frames, as the library does.
    ev, od = out["events"], out["orders"]
    m = ev.merge(od, on=["day", "channel"], how="outer").fillna(0)
    m["conversion_rate"] = m["buyers"] / m["uv"]
    m["aov"] = m["gmv"].astype(float) / m["buyers"]
    m["avg_order_value"] = m["gmv"].astype(float) / m["orders"]
    m["refund_rate"] = m["refunded_orders"] / m["orders"]
    m["net_gmv"] = m["gmv"].astype(float) - m["refund_amount"].astype(float)
    m["approval_rate"] = m["loan_approvals"] / m["loan_applications"]
    m["collection_rate"] = m["amount_repaid"] / m["amount_due"]
    m["sessions_per_user"] = m["sessions"] / m["uv"]
    m["stickiness"] = 1.0  # avg DAU / distinct users of the day: 1 at day grain
    m["day"] = pd.to_datetime(m["day"]).dt.date
    m = m.sort_values("day")
    m["_month"] = pd.to_datetime(m["day"]).dt.to_period("M")
    m["gmv_mtd"] = m.groupby(["channel", "_month"])["gmv"].cumsum()
    nu = out["new_users"].sort_values("day")
    nu["total_users"] = nu.groupby("channel")["new_users"].cumsum()
    out["combined"] = m
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--metrics", type=int, default=50)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    run(args.events, args.days, args.metrics, args.dir)


def run(events: int, days: int, n_metrics: int = 50, folder: Path | None = None) -> dict[str, float]:
    tmp = folder or Path(tempfile.mkdtemp(prefix="yy-metrics-bench-"))
    settings = load_settings(tmp)
    reg = load_registry(settings, list(LIBRARIES))
    names = bench_metrics(reg, n_metrics)
    start = END - dt.timedelta(days=days - 1)
    with Warehouse(settings, "duckdb") as wh:
        if wh.row_count("events") == 0:
            t0 = time.perf_counter()
            generate(wh, events, days)
            print(f"generated {wh.row_count('events'):,} events, {wh.row_count('orders'):,} orders, "
                  f"{wh.row_count('users'):,} users in {time.perf_counter() - t0:.1f}s")
        # Alternate the two sides twice and keep each one's best time (the OS cache warms up).
        t_yy = t_sql = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            base = _sql_baseline(wh.duck, start, END)
            t_sql = min(t_sql, time.perf_counter() - t0)
            t0 = time.perf_counter()
            res = compute(wh, reg, names, "day", start, END, by="channel", use_cache=False)
            t_yy = min(t_yy, time.perf_counter() - t0)
        compute(wh, reg, names, "day", start, END, by="channel", use_cache=True)
        t0 = time.perf_counter()
        hit = compute(wh, reg, names, "day", start, END, by="channel", use_cache=True)
        t_hit = time.perf_counter() - t0
        assert hit.cached
        # Spot-check that both sides computed the same numbers.
        comb = base["combined"].set_index(["day", "channel"])
        checks = 0
        for metric in ("gmv", "uv", "conversion_rate", "loan_amount", "sessions"):
            s = res.get(metric)
            for p in s.points[:200]:
                key = (p.period, p.dim)
                if key in comb.index and p.value is not None:
                    want = float(comb.loc[key, metric])
                    assert abs(want - p.value) <= 1e-6 * max(1.0, abs(want)), (metric, key, want, p.value)
                    checks += 1
    points = sum(len(s.points) for s in res.series)
    print(f"{len(names)} metrics × {days} days by channel: {points:,} values")
    print(f"yunying compute       {t_yy:8.2f} s")
    print(f"hand-written SQL      {t_sql:8.2f} s")
    print(f"overhead              {t_yy / t_sql:8.2f}x (target <= 1.3x)")
    print(f"cache hit             {t_hit * 1000:8.1f} ms")
    print(f"cross-checked values  {checks}")
    return {"yunying": t_yy, "sql": t_sql, "ratio": t_yy / t_sql, "cache_hit": t_hit, "checks": checks}


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/ is sys.path[0] when run as a script

    main()
    print()
    print_machine()
