"""Experiment analysis benchmark: 20 metrics × 3 variants over N exposure rows (default 10M).

Generates the data in a temporary DuckDB warehouse (exposures with JSON properties,
metric events before and after exposure, orders), then times in the same run:

* yunying: ``variant_sums`` (the Ibis runner on DuckDB) + the statistics;
* plain pandas: the same computation (first exposure per user, post/pre windows, CUPED
  sums, winsorizing, ratio cross products, per-variant sums) + the same statistics.

pandas is given the exposure properties already parsed into columns (not timed), which
favours it. Both paths' per-variant sums are checked equal before figures are printed.

    .venv/bin/python benchmarks/experiment_bench.py [--rows 10000000]
"""

from __future__ import annotations

import argparse
import gc
import tempfile
import time
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

from yunying.config import load_settings
from yunying.experiments.analysis import (
    AnalyzeQuery,
    VariantSums,
    _Columns,
    _key,
    analyse_sums,
    metric_cols,
    variant_sums,
)
from yunying.experiments.spec import ExperimentSpec, Measure
from yunying.warehouse.engine import Warehouse

T0 = datetime(2026, 3, 1)
EVENTS = ("view", "click", "cart", "share", "search")
CUPED_DAYS = 14


def bench_spec() -> ExperimentSpec:
    """20 metrics: 5 conversions, 5 counts, 5 value sums, 4 order metrics, 1 ratio."""
    metrics: list[dict[str, Any]] = []
    for e in EVENTS:
        metrics.append({"id": f"{e}_any", "kind": "proportion", "measure": {"event": e, "agg": "any"}})
        metrics.append({"id": f"{e}_n", "kind": "mean", "measure": {"event": e, "agg": "count"}})
        metrics.append({"id": f"{e}_v", "kind": "mean", "measure": {"event": e, "agg": "sum", "value": "v"}})
    metrics += [
        {"id": "paid", "kind": "proportion", "measure": {"source": "orders", "agg": "any"}},
        {"id": "orders", "kind": "mean", "measure": {"source": "orders", "agg": "count"}},
        {"id": "revenue", "kind": "mean", "measure": {"source": "orders", "agg": "sum"}},
        {"id": "revenue_w", "kind": "mean", "measure": {"source": "orders", "agg": "sum"}, "winsorize": 0.99},
        {"id": "aov", "kind": "ratio", "numerator": {"source": "orders", "agg": "sum"},
         "denominator": {"source": "orders", "agg": "count"}},
    ]
    return ExperimentSpec.model_validate({
        "id": "bench",
        "variants": [{"key": "control"}, {"key": "b"}, {"key": "c"}],
        "metrics": metrics,
        "cuped_days": CUPED_DAYS,
        "correction": "bh",
    })


def generate(wh: Warehouse, n: int) -> None:
    """n exposures (one per user), n metric events over six weeks, n/5 orders (bulk SQL)."""
    d = wh.duck
    us = 14 * 86400 * 1_000_000
    d.execute(f"""
        INSERT INTO events SELECT 'x' || i, '$exposure', 'u' || i,
          TIMESTAMP '{T0}' + to_microseconds(CAST(hash(i) % {us} AS BIGINT)), NULL, NULL,
          '{{"experiment": "bench", "variant": "' || (['control','b','c'])[1 + i % 3] || '"}}'
        FROM range({n}) t(i)""")
    d.execute(f"""
        INSERT INTO events SELECT 'm' || i, (['view','click','cart','share','search'])[1 + i % 5],
          'u' || (hash(i * 7 + 1) % {n}),
          TIMESTAMP '{T0 - timedelta(days=14)}' + to_microseconds(CAST(hash(i * 3) % {3 * us} AS BIGINT)),
          NULL, NULL, '{{"v": ' || CAST((hash(i) % 1000) / 10.0 AS VARCHAR) || '}}'
        FROM range({n}) t(i)""")
    d.execute(f"""
        INSERT INTO orders SELECT 'o' || i, 'u' || (hash(i * 11) % {n}),
          TIMESTAMP '{T0 - timedelta(days=14)}' + to_microseconds(CAST(hash(i * 5) % {3 * us} AS BIGINT)),
          CAST((hash(i * 13) % 50000) / 100.0 AS DECIMAL(18,2)), 'CNY', 'paid', NULL
        FROM range({n // 5}) t(i)""")


def load_frames(wh: Warehouse) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The raw tables as pandas, JSON already parsed into columns (a favour to pandas)."""
    d = wh.duck
    ev = d.execute("""
        SELECT user_id, event, ts,
          json_extract_string(properties, '$.experiment') AS experiment,
          json_extract_string(properties, '$.variant') AS variant,
          TRY_CAST(json_extract_string(properties, '$.v') AS DOUBLE) AS v
        FROM events""").df()
    od = d.execute("SELECT user_id, ts, CAST(amount AS DOUBLE) AS amount, status FROM orders").df()
    return ev, od


def pandas_sums(spec: ExperimentSpec, ev: pd.DataFrame, od: pd.DataFrame) -> VariantSums:
    """The runner's computation, written in plain pandas."""
    cols = _Columns(spec, {})
    ex = ev[ev["event"].isin(["$exposure", "experiment_exposure"]) & (ev["experiment"] == spec.id)]
    g = ex.groupby("user_id").agg(variant=("variant", "min"), t0=("ts", "min"), nv=("variant", "nunique"))
    multi = int((g["nv"] > 1).sum())
    first, last = g["t0"].min(), g["t0"].max()
    g = g[g["nv"] == 1].drop(columns="nv")
    per = g
    by_source: dict[str, list[tuple[str, Measure]]] = {}
    for k, ms in cols.measures.items():
        by_source.setdefault(ms.source, []).append((cols.names[k], ms))
    for source, items in by_source.items():
        if source == "events":
            names = sorted({m.event for _, m in items if m.event})
            src = ev[ev["event"].isin(names)]
        else:
            src = od
        j = src.merge(g[["t0"]], left_on="user_id", right_index=True, how="inner")
        j = j[j["ts"] >= j["t0"] - pd.Timedelta(days=spec.cuped_days)]
        post = (j["ts"] >= j["t0"]).to_numpy()
        users = j["user_id"].to_numpy()
        # One measure at a time keeps pandas' memory bounded (a frame of every column at
        # 10M rows does not fit next to the data on a 24 GB machine).
        for name, m in items:
            if source == "events":
                hit = (j["event"] == m.event).to_numpy()
                x = np.where(hit, j["v"].fillna(0.0).to_numpy() if m.agg == "sum" else 1.0, 0.0)
            else:
                hit = (j["status"] == m.status).to_numpy()
                x = np.where(hit, j["amount"].to_numpy() if m.agg == "sum" else 1.0, 0.0)
            red = "max" if m.agg == "any" else "sum"
            both = pd.DataFrame({name: np.where(post, x, np.nan), f"{name}_pre": np.where(~post, x, np.nan)}, index=users)
            per = per.join(both.groupby(level=0).agg(red), how="left")
            del both, x, hit
        del j
    mcols = [c for c in per.columns if c.startswith("m")]
    per[mcols] = per[mcols].fillna(0.0)
    caps: dict[str, float] = {}
    for md in spec.metrics:
        if md.winsorize is not None:
            for c in metric_cols(md, cols):
                caps[_key(md, c)] = float(per[c].quantile(md.winsorize))
                caps[_key(md, f"{c}_pre")] = float(per[f"{c}_pre"].quantile(md.winsorize))
    variant = per["variant"]
    sums_d: dict[str, pd.Series] = {"n": variant.groupby(variant).size().astype(float)}

    def add(key: str, values: pd.Series) -> None:
        if key not in sums_d:
            sums_d[key] = values.groupby(variant).sum()

    for md in spec.metrics:
        names = metric_cols(md, cols)

        def val(c: str, md: Any = md) -> pd.Series:
            cap = caps.get(_key(md, c))
            return per[c].clip(upper=cap) if cap is not None else per[c]

        for c in names:
            k = _key(md, c)
            y, x = val(c), val(f"{c}_pre")
            add(f"{k}__s", y)
            add(f"{k}__ss", y * y)
            add(f"{k}__xs", x)
            add(f"{k}__xss", x * x)
            add(f"{k}__xy", x * y)
        if md.kind == "ratio":
            a, b = names
            add(f"{_key(md, a)}__{_key(md, b)}__xy", val(a) * val(b))
    sums = pd.DataFrame(sums_d)
    rows = {str(v): {k: float(x) for k, x in r.items()} for v, r in sums.iterrows()}
    return VariantSums(rows, caps, cols, multi, first, last)


def compare(a: VariantSums, b: VariantSums) -> float:
    """Largest relative difference between two sets of per-variant sums."""
    worst = 0.0
    for v, row in a.rows.items():
        for k, x in row.items():
            if k == "variant":
                continue
            y = b.rows[v][k]
            worst = max(worst, abs(float(x) - float(y)) / max(abs(float(x)), 1e-9))
    return worst


def run(n: int, verbose: bool = True) -> dict[str, float]:
    spec = bench_spec()
    with tempfile.TemporaryDirectory() as tmp:
        wh = Warehouse(load_settings(tmp, warehouse={"memory_limit": "6GB"}), "duckdb")
        t = time.perf_counter()
        generate(wh, n)
        gen_s = time.perf_counter() - t
        if verbose:
            print(f"experiment analysis: {n:,} exposure rows, {n:,} metric events, {n // 5:,} orders; "
                  f"{len(spec.metrics)} metrics x 3 variants (CUPED, winsorizing, ratio)", flush=True)
            print(f"  data generation (DuckDB SQL)     {gen_s:8.2f} s", flush=True)
        q = AnalyzeQuery(experiment=spec.id)
        t = time.perf_counter()
        ours = variant_sums(wh, spec)
        res_ours = analyse_sums(spec, ours, q)
        ours_s = time.perf_counter() - t
        if verbose:
            print(f"  yunying (Ibis on DuckDB) + stats {ours_s:8.2f} s", flush=True)
        ev, od = load_frames(wh)
        wh.close()
        gc.collect()
        t = time.perf_counter()
        theirs = pandas_sums(spec, ev, od)
        res_pd = analyse_sums(spec, theirs, q)
        pandas_s = time.perf_counter() - t
    diff = compare(ours, theirs)
    assert diff < 1e-6, f"yunying and pandas disagree (max relative difference {diff:g})"
    assert [round(m.abs_effect, 9) for m in res_ours.metrics] == [round(m.abs_effect, 9) for m in res_pd.metrics]
    out = {
        "exposures": float(n),
        "metrics": float(len(spec.metrics)),
        "comparisons": float(len(res_ours.metrics)),
        "generate_s": gen_s,
        "yunying_s": ours_s,
        "pandas_s": pandas_s,
        "speedup": pandas_s / ours_s,
    }
    if verbose:
        print(f"  comparisons                      {len(res_ours.metrics):8d}")
        print(f"  plain pandas + same stats        {pandas_s:8.2f} s")
        print(f"  ratio pandas / yunying           {pandas_s / ours_s:8.2f} x   (sums agree to {diff:.1e})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rows", type=int, default=10_000_000)
    run(ap.parse_args().rows)


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/ is sys.path[0] when run as a script

    main()
    print()
    print_machine()
