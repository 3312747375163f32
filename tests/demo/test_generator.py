"""The demo company is deterministic and has the shapes the analyses are meant to find."""

from __future__ import annotations

import datetime as dt
import hashlib
import json

import pyarrow as pa
import pytest

from yunying.demo import DemoSpec, generate
from yunying.warehouse.contracts import CONTRACTS
from yunying.warehouse.engine import Warehouse, arrow_schema


def _collect(spec: DemoSpec) -> dict[str, pa.Table]:
    parts: dict[str, list[pa.Table]] = {}
    generate(spec, lambda t, d: parts.setdefault(t, []).append(d))
    return {t: pa.concat_tables(p) for t, p in parts.items()}


@pytest.fixture(scope="module")
def company() -> dict[str, pa.Table]:
    return _collect(DemoSpec(users=6000, days=120, seed=7))


def _digest(tables: dict[str, pa.Table]) -> str:
    h = hashlib.sha256()
    for name in sorted(tables):
        h.update(name.encode())
        h.update(str(tables[name].to_pydict()).encode())
    return h.hexdigest()


def test_same_seed_same_company() -> None:
    a = _collect(DemoSpec(users=800, days=60, seed=3))
    b = _collect(DemoSpec(users=800, days=60, seed=3))
    c = _collect(DemoSpec(users=800, days=60, seed=4))
    assert _digest(a) == _digest(b)
    assert _digest(a) != _digest(c)


def test_rows_fit_the_contracts(company: dict[str, pa.Table]) -> None:
    for table, data in company.items():
        c = CONTRACTS[table]
        cast = data.select(c.names).cast(arrow_schema(c))
        keys = cast.column(c.key).to_pylist()
        assert len(keys) == len(set(keys)), f"{table} keys not unique"
        for col in c.columns:
            if col.required:
                assert cast.column(col.name).null_count == 0, f"{table}.{col.name}"
    for p in company["events"].column("properties").to_pylist()[:1000]:
        assert isinstance(json.loads(p), dict)


def test_everything_inside_the_window(company: dict[str, pa.Table]) -> None:
    spec = DemoSpec(users=6000, days=120, seed=7)
    # Local days in Asia/Shanghai (UTC+8) → UTC bounds.
    lo = dt.datetime.combine(spec.start, dt.time()) - dt.timedelta(hours=8)
    hi = dt.datetime.combine(spec.end + dt.timedelta(days=1), dt.time()) - dt.timedelta(hours=8)
    ts = company["events"].column("ts").to_pylist()
    assert min(ts) >= lo and max(ts) < hi
    assert len(company["users"]) == 6000


def test_shapes_analyses_should_find(company: dict[str, pa.Table]) -> None:
    import duckdb

    con = duckdb.connect()
    for name, data in company.items():
        con.register(name, data)
    # Funnel steps shrink: view > add_to_cart > checkout > pay.
    counts = dict(
        con.execute("SELECT event, count(DISTINCT user_id) FROM events GROUP BY 1").fetchall()
    )
    assert counts["view"] > counts["add_to_cart"] > counts["checkout"] > counts["pay"] > 0
    # Channels differ in quality: referral converts better than kol.
    conv = dict(
        con.execute(
            """SELECT u.channel, count(DISTINCT o.user_id) / count(DISTINCT u.user_id)
               FROM users u LEFT JOIN orders o USING (user_id) GROUP BY 1"""
        ).fetchall()
    )
    assert conv["referral"] > conv["kol"]
    # Weekends busier than weekdays, promotion days busiest.
    spec = DemoSpec(users=6000, days=120, seed=7)
    per_day = con.execute(
        "SELECT CAST(ts + INTERVAL 8 HOUR AS DATE) d, count(*) FROM events "
        "WHERE account_id IS NULL GROUP BY 1"
    ).fetchall()
    by_day = {d: n for d, n in per_day}
    lo, hi = spec.promo_days
    promo = [by_day[spec.start + dt.timedelta(days=i)] for i in range(lo, hi + 1)]
    before = [by_day[spec.start + dt.timedelta(days=i)] for i in range(lo - 21, lo)]
    assert min(promo) > 1.4 * (sum(before) / len(before))
    # Refunds exist and are a minority.
    status = dict(con.execute("SELECT status, count(*) FROM orders GROUP BY 1").fetchall())
    assert 0.02 < status["refunded"] / (status["paid"] + status["refunded"]) < 0.15
    # Some users come back after a long gap (resurrection).
    gaps = con.execute(
        """SELECT count(*) FROM (
             SELECT user_id, ts - lag(ts) OVER (PARTITION BY user_id ORDER BY ts) AS gap
             FROM events WHERE account_id IS NULL) WHERE gap > INTERVAL 14 DAY"""
    ).fetchall()[0][0]
    assert gaps > 50
    # 2B side: churned subscriptions and plan changes both present.
    subs = company["subscriptions"]
    assert subs.column("end_date").null_count < len(subs)
    assert len(set(subs.column("plan").to_pylist())) == 3


def test_demo_into_spark_lake_matches_duckdb(settings) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("pyspark")
    spec = DemoSpec(users=300, days=60, seed=1)
    tables = _collect(spec)
    results = {}
    for engine in ("duckdb", "spark"):
        w = Warehouse(settings, engine)
        for t, d in tables.items():
            w.append_arrow(t, d)
        w.refresh()
        results[engine] = {t: w.row_count(t) for t in CONTRACTS}
        w.close()
    assert results["duckdb"] == results["spark"]


test_demo_into_spark_lake_matches_duckdb = pytest.mark.spark(
    pytest.mark.xdist_group("spark")(test_demo_into_spark_lake_matches_duckdb)
)
