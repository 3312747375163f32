"""RFM and CLV at scale: yunying beside the ``lifetimes`` package (and pandas for RFM).

Generates ``n`` customers' orders from a BG/NBD + Gamma-Gamma process with known
parameters (numpy, vectorised), loads them into a DuckDB project, then times each step in
its own spawned process (so each peak RSS is that step's own) on the same inputs:

- summary: ``customer_summary`` (DuckDB) vs ``lifetimes.utils.summary_data_from_transaction_data``;
- rfm: ``run_rfm`` (DuckDB) vs the usual pandas groupby + rank recipe (class counts compared);
- bgnbd / gamma_gamma fit: yunying vs ``BetaGeoFitter`` / ``GammaGammaFitter`` on the same
  summary (parameters compared to 4 significant figures);
- predict: P(alive), expected purchases and 12-month CLV vs lifetimes on the same parameters.

``analytics_bench.py`` imports this file and calls ``run(n_customers)``; it also runs alone:

    .venv/bin/python benchmarks/_value_section.py --customers 1000000
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when loaded by path
from _proc import spawned  # noqa: E402
from machine import print_machine  # noqa: E402

TRUE = {"r": 0.25, "alpha": 4.0, "a": 0.8, "b": 2.5, "p": 6.0, "q": 3.8, "v": 15.0}
START = datetime(2024, 1, 1)
DAYS = 365  # calibration length; customers arrive during the first half
CAL_END = (START + timedelta(days=DAYS - 1)).date()


def generate(n: int, seed: int = 11) -> pa.Table:
    """Orders of ``n`` customers from BG/NBD (weeks) purchases and Gamma-Gamma spend."""
    rng = np.random.default_rng(seed)
    lam = rng.gamma(TRUE["r"], 1.0 / TRUE["alpha"], n) / 7.0  # purchases per day
    drop = rng.beta(TRUE["a"], TRUE["b"], n)
    nu = rng.gamma(TRUE["q"], 1.0 / TRUE["v"], n)
    first = rng.uniform(0.0, DAYS / 2.0, n)
    cust = [np.arange(n)]
    when = [first]
    idx = np.arange(n)
    cur = first.copy()
    alive = np.ones(n, dtype=bool)  # BG/NBD: dropout only after a repeat purchase
    while True:
        idx, cur = idx[alive], cur[alive]
        if len(idx) == 0:
            break
        cur = cur + rng.exponential(1.0, len(idx)) / lam[idx]
        inside = cur < DAYS
        idx, cur = idx[inside], cur[inside]
        cust.append(idx)
        when.append(cur)
        alive = rng.random(len(idx)) >= drop[idx]
    c = np.concatenate(cust)
    t = np.concatenate(when)
    amount = np.maximum(np.round(rng.gamma(TRUE["p"], 1.0 / nu[c]), 2), 0.01)
    ts = np.datetime64(START, "us") + (t * 86_400e6).astype("timedelta64[us]")
    m = len(c)
    return pa.table(
        {
            "order_id": pa.array(np.char.add("o", np.arange(m).astype(str))),
            "user_id": pa.array(np.char.add("c", c.astype(str))),
            "ts": pa.array(ts, pa.timestamp("us")),
            "amount": pa.array(amount).cast(pa.decimal128(18, 2)),
            "currency": pa.array(["CNY"] * m),
            "status": pa.array(["paid"] * m),
            "properties": pa.nulls(m, pa.string()),
        }
    )


# -- measured steps (each runs in a fresh spawned process) ---------------------------------


def measured(fn: Callable[..., Any], *args: Any) -> tuple[Any, float, float]:
    """(result, seconds, peak RSS MB) of ``fn(*args)`` in its own process; ``fn`` returns
    (result, seconds) and times only its own work."""
    (res, dt), _, peak = spawned(fn, *args)
    return res, dt, peak


Timings = tuple[Any, list[float], float]  # result, seconds of each run, peak RSS MB


def pair(
    yy: Callable[..., Any], yy_args: tuple[Any, ...], base: Callable[..., Any],
    base_args: tuple[Any, ...], repeat: int,
) -> tuple[Timings, Timings]:
    """Both sides ``repeat`` times, alternating (each run a fresh process), so machine
    load hits both alike; the result is the last run's, the peak the highest."""
    ys: list[float] = []
    bs: list[float] = []
    ym = bm = 0.0
    a: Any = None
    b: Any = None
    for _ in range(repeat):
        a, dt, mb = measured(yy, *yy_args)
        ys.append(dt)
        ym = max(ym, mb)
        b, dt, mb = measured(base, *base_args)
        bs.append(dt)
        bm = max(bm, mb)
    return (a, ys, ym), (b, bs, bm)


def _wh(project: str) -> Any:
    from yunying.config import load_settings
    from yunying.warehouse.engine import Warehouse

    return Warehouse(load_settings(project, timezone="UTC"), "duckdb")


def _warm_ibis() -> None:
    """Import the query stack before the clock starts (the baseline's imports are untimed too).

    That includes Ibis' DuckDB backend, which Ibis imports lazily on first connect
    (~0.3 s of module loading), and the settings module; connecting, opening the
    database and every query stay timed.
    """
    import ibis

    import yunying.analytics.clv
    import yunying.analytics.rfm
    import yunying.config
    import yunying.warehouse.engine  # noqa: F401

    _ = ibis.duckdb  # loads and caches the backend module


Timed = tuple[Any, float]


def yy_summary(project: str, out: str) -> Timed:
    from yunying.analytics.clv import ClvQuery, customer_summary

    _warm_ibis()
    t0 = time.perf_counter()
    with _wh(project) as wh:
        df, _ = customer_summary(wh, ClvQuery(calibration_end=CAL_END, period="week"))
    dt = time.perf_counter() - t0
    df.to_parquet(out)
    return len(df), dt


def lt_summary(orders: str, out: str) -> Timed:
    import pandas as pd
    from lifetimes.utils import summary_data_from_transaction_data

    tx = pd.read_parquet(orders, columns=["user_id", "ts", "amount"])
    tx["amount"] = tx["amount"].astype("float64")
    t0 = time.perf_counter()
    s = summary_data_from_transaction_data(
        tx, "user_id", "ts", "amount", observation_period_end=pd.Timestamp(CAL_END),
        freq="D", freq_multiplier=7,
    )
    dt = time.perf_counter() - t0
    s.to_parquet(out)
    return len(s), dt


def yy_rfm(project: str) -> Timed:
    from yunying.analytics.rfm import RfmQuery, run_rfm

    _warm_ibis()
    t0 = time.perf_counter()
    with _wh(project) as wh:
        res = run_rfm(wh, RfmQuery(as_of=CAL_END, lookback_days=DAYS))
    return {g.key: g.users for g in res.classes}, time.perf_counter() - t0


def pd_rfm(orders: str) -> Timed:
    """The usual pandas recipe on orders already in memory: groupby user, ranks, 8 classes."""
    import pandas as pd

    from yunying.analytics.rfm import CLASSES

    o = pd.read_parquet(orders, columns=["user_id", "ts", "amount"])
    t0 = time.perf_counter()
    o = o[(o["ts"] >= pd.Timestamp(START)) & (o["ts"] < pd.Timestamp(CAL_END + timedelta(days=1)))]
    g = o.groupby("user_id").agg(last=("ts", "max"), F=("ts", "size"), M=("amount", "sum"))
    g["M"] = g["M"].astype("float64")
    g["R"] = (pd.Timestamp(CAL_END) - g["last"].dt.normalize()).dt.days
    n = len(g)
    for col, asc in (("R", False), ("F", True), ("M", True)):
        g[col + "s"] = 1 + (g[col].rank(method="min", ascending=asc).astype(int) - 1) * 5 // n
    rh, fh, mh = g["R"] < g["R"].mean(), g["F"] > g["F"].mean(), g["M"] > g["M"].mean()
    out = {}
    for key, r, f, m, _zh, _en in CLASSES:
        out[key] = int(((rh == r) & (fh == f) & (mh == m)).sum())
    return out, time.perf_counter() - t0


def _summary_arrays(path: str) -> tuple[np.ndarray, ...]:
    import pandas as pd

    df = pd.read_parquet(path)
    return tuple(df[c].to_numpy(dtype=np.float64) for c in ("frequency", "recency", "T", "monetary"))


def yy_bgnbd(summary: str) -> Timed:
    from yunying.analytics.clv import fit_bgnbd

    x, tx, T, _m = _summary_arrays(summary)
    t0 = time.perf_counter()
    p = fit_bgnbd(x, tx, T)
    return {"r": p.r, "alpha": p.alpha, "a": p.a, "b": p.b}, time.perf_counter() - t0


def lt_bgnbd(summary: str) -> Timed:
    from lifetimes import BetaGeoFitter

    x, tx, T, _m = _summary_arrays(summary)
    t0 = time.perf_counter()
    f = BetaGeoFitter().fit(x, tx, T)
    dt = time.perf_counter() - t0
    return {k: float(f.params_[k]) for k in ("r", "alpha", "a", "b")}, dt


def yy_gg(summary: str) -> Timed:
    from yunying.analytics.clv import fit_gamma_gamma

    x, _tx, _T, m = _summary_arrays(summary)
    t0 = time.perf_counter()
    p = fit_gamma_gamma(x, m)
    return {"p": p.p, "q": p.q, "v": p.v}, time.perf_counter() - t0


def lt_gg(summary: str) -> Timed:
    from lifetimes import GammaGammaFitter

    x, _tx, _T, m = _summary_arrays(summary)
    t0 = time.perf_counter()
    rep = x > 0
    f = GammaGammaFitter().fit(x[rep], m[rep])
    dt = time.perf_counter() - t0
    return {k: float(f.params_[k]) for k in ("p", "q", "v")}, dt


def yy_predict(summary: str, params: dict[str, float], out: str) -> Timed:
    from yunying.analytics.clv import (
        BgNbdParams,
        GammaGammaParams,
        bgnbd_expected_purchases,
        bgnbd_p_alive,
        compress,
        customer_lifetime_value,
    )

    x, tx, T, m = _summary_arrays(summary)
    bg = BgNbdParams(params["r"], params["alpha"], params["a"], params["b"], 0.0)
    gg = GammaGammaParams(params["p"], params["q"], params["v"], 0.0)
    t0 = time.perf_counter()
    (ux, ut, uT), _w, inv = compress(x, tx, T)
    alive = bgnbd_p_alive(bg, ux, ut, uT)[inv]
    exp52 = bgnbd_expected_purchases(bg, 52.0, ux, ut, uT)[inv]
    clv = customer_lifetime_value(bg, gg, x, tx, T, m, 12, 0.01, "week")
    dt = time.perf_counter() - t0
    np.savez(out, alive=alive, exp=exp52, clv=clv)
    return len(x), dt


def lt_predict(summary: str, params: dict[str, float], out: str) -> Timed:
    import pandas as pd
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    x, tx, T, m = (pd.Series(a) for a in _summary_arrays(summary))
    bg = BetaGeoFitter()
    bg.params_ = pd.Series({k: params[k] for k in ("r", "alpha", "a", "b")})
    bg.predict = bg.conditional_expected_number_of_purchases_up_to_time  # set by fit()
    gg = GammaGammaFitter()
    gg.params_ = pd.Series({k: params[k] for k in ("p", "q", "v")})
    t0 = time.perf_counter()
    alive = np.asarray(bg.conditional_probability_alive(x, tx, T))
    exp52 = np.asarray(bg.conditional_expected_number_of_purchases_up_to_time(52.0, x, tx, T))
    clv = gg.customer_lifetime_value(bg, x, tx, T, m, time=12, discount_rate=0.01, freq="W")
    dt = time.perf_counter() - t0
    np.savez(out, alive=alive, exp=exp52, clv=clv.to_numpy())
    return len(x), dt


# -- orchestration ---------------------------------------------------------------------------


def _rel(a: dict[str, float], b: dict[str, float]) -> float:
    return max(abs(a[k] - b[k]) / abs(b[k]) for k in a)


def _sig4(a: dict[str, float], b: dict[str, float]) -> bool:
    return all(f"{a[k]:.3e}" == f"{b[k]:.3e}" for k in a)


def _num(v: object) -> float:
    assert isinstance(v, int | float)
    return float(v)


def _row(step: str, yy: Timings, base: Timings, **extra: Any) -> dict[str, object]:
    """Best (min) and median seconds of each side; ratio = baseline / yunying on the best."""
    yb, bb = min(yy[1]), min(base[1])
    ymed, bmed = statistics.median(yy[1]), statistics.median(base[1])
    return {
        "step": step,
        "yunying_s": round(yb, 3),
        "baseline_s": round(bb, 3),
        "ratio": round(bb / yb, 1) if yb > 0 else None,
        "yunying_med_s": round(ymed, 3),
        "baseline_med_s": round(bmed, 3),
        "ratio_med": round(bmed / ymed, 1) if ymed > 0 else None,
        "yunying_peak_mb": round(yy[2]),
        "baseline_peak_mb": round(base[2]),
        **extra,
    }


def run(n_customers: int, work: Path | None = None, repeat: int = 3) -> list[dict[str, object]]:
    """Generate, load, and time every step; rows of figures (ratio = baseline ÷ yunying)."""
    own = work is None
    folder = Path(tempfile.mkdtemp(prefix="yy-value-")) if work is None else work
    try:
        return _run(n_customers, folder, max(1, repeat))
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)


def _run(n: int, folder: Path, repeat: int) -> list[dict[str, object]]:
    project = folder / "project"
    project.mkdir(parents=True, exist_ok=True)
    orders = generate(n)
    pq.write_table(orders, folder / "orders.parquet")
    with _wh(str(project)) as wh:
        wh.truncate("orders")
        wh.append_arrow("orders", orders)
    rows: list[dict[str, object]] = [
        {"step": "data", "customers": n, "orders": orders.num_rows, "true": TRUE}
    ]
    del orders
    o, p = str(folder / "orders.parquet"), str(project)
    ys, ls = str(folder / "yy_summary.parquet"), str(folder / "lt_summary.parquet")

    a, b = pair(yy_summary, (p, ys), lt_summary, (o, ls), repeat)
    import pandas as pd

    y_df = pd.read_parquet(ys).set_index("user_id").sort_index()
    l_df = pd.read_parquet(ls).sort_index()
    l_df.index = l_df.index.astype(str)
    same = y_df.index.equals(l_df.index)
    diff = max(
        float(np.max(np.abs(y_df[c].to_numpy() - l_df[k].to_numpy()))) if same else float("nan")
        for c, k in (("frequency", "frequency"), ("recency", "recency"), ("T", "T"),
                     ("monetary", "monetary_value"))
    )
    rows.append(_row("summary", a, b, same_customers=same, max_abs_diff=diff))

    a, b = pair(yy_rfm, (p,), pd_rfm, (o,), repeat)
    rows.append(_row("rfm", a, b, classes_equal=a[0] == b[0], important_value=a[0]["important_value"]))

    a, b = pair(yy_bgnbd, (ys,), lt_bgnbd, (ys,), repeat)
    rows.append(_row("bgnbd_fit", a, b, max_rel_diff=f"{_rel(a[0], b[0]):.2e}",
                     equal_4sf=_sig4(a[0], b[0]), estimates={k: round(v, 4) for k, v in a[0].items()}))
    bg = a[0]
    a, b = pair(yy_gg, (ys,), lt_gg, (ys,), repeat)
    rows.append(_row("gamma_gamma_fit", a, b, max_rel_diff=f"{_rel(a[0], b[0]):.2e}",
                     equal_4sf=_sig4(a[0], b[0]), estimates={k: round(v, 4) for k, v in a[0].items()}))
    params = {**bg, **a[0]}
    yo, lo = str(folder / "yy_pred.npz"), str(folder / "lt_pred.npz")
    a, b = pair(yy_predict, (ys, params, yo), lt_predict, (ys, params, lo), repeat)
    y, lt = np.load(yo), np.load(lo)
    rel = max(float(np.max(np.abs(y[k] - lt[k]) / np.maximum(np.abs(lt[k]), 1e-12)))
              for k in ("alive", "exp", "clv"))
    rows.append(_row("predict_clv", a, b, max_rel_diff=f"{rel:.2e}"))
    by = {str(r["step"]): r for r in rows}

    def total(name: str, steps: list[str]) -> dict[str, object]:
        """Sums of the steps' best and median seconds (each step in its own processes)."""

        def add(key: str) -> float:
            return sum(_num(by[k][key]) for k in steps)

        ty, tb, tym, tbm = (add(k) for k in ("yunying_s", "baseline_s", "yunying_med_s", "baseline_med_s"))
        return {"step": name, "sums": "+".join(steps),
                "yunying_s": round(ty, 3), "baseline_s": round(tb, 3), "ratio": round(tb / ty, 1),
                "yunying_med_s": round(tym, 3), "baseline_med_s": round(tbm, 3),
                "ratio_med": round(tbm / tym, 1),
                "yunying_peak_mb": round(max(_num(by[k]["yunying_peak_mb"]) for k in steps)),
                "baseline_peak_mb": round(max(_num(by[k]["baseline_peak_mb"]) for k in steps))}

    rows.append(total("total_fits", ["bgnbd_fit", "gamma_gamma_fit"]))
    # The target: summary + RFM + BG/NBD + Gamma-Gamma, >= 10x.
    rows.append(total("total_target", ["summary", "rfm", "bgnbd_fit", "gamma_gamma_fit"]))
    rows.append(total("total_all", ["summary", "rfm", "bgnbd_fit", "gamma_gamma_fit", "predict_clv"]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each side per step (best and median)")
    a = ap.parse_args()
    print(f"== RFM / CLV ({a.customers:,} customers, {a.repeat} runs per side) ==")
    for row in run(a.customers, repeat=a.repeat):
        print("  " + "  ".join(f"{k}={v}" for k, v in row.items()))
    print()
    print_machine()


if __name__ == "__main__":
    main()
