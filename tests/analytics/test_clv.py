"""CLV: the likelihood by hand, the published CDNOW estimates, and lifetimes on the same inputs.

The CDNOW data ship inside the installed ``lifetimes`` package; they are read from there.
"""

from __future__ import annotations

import csv
import json
import math
from datetime import date, datetime
from decimal import Decimal
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from typer.testing import CliRunner

from yunying.analytics.clv import (
    BgNbdParams,
    ClvQuery,
    bgnbd_expected_purchases,
    bgnbd_loglik_terms,
    bgnbd_p_alive,
    customer_lifetime_value,
    export_clv_users,
    fit_bgnbd,
    fit_clv,
    fit_gamma_gamma,
    gamma_gamma_expected_spend,
    run_clv,
)
from yunying.cli import app
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse

DATASETS = resources.files("lifetimes") / "datasets"


def sig(x: float, n: int = 3) -> float:
    return float(f"{x:.{n - 1}e}")


@pytest.fixture(scope="module")
def cdnow() -> pd.DataFrame:
    """2,357 CDNOW customers (weeks): x, t_x, T and the mean repeat spend zbar."""
    with (DATASETS / "cdnow_customers_summary_with_transactions.csv").open() as fh:
        return pd.read_csv(fh)


def cols(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    return tuple(df[c].to_numpy(dtype=np.float64) for c in ("x", "t_x", "T", "zbar"))  # type: ignore[return-value]


# --- by hand ------------------------------------------------------------------------------


def beta(a: float, b: float) -> float:
    return math.exp(math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b))


def hand_likelihood(r: float, alpha: float, a: float, b: float, x: int, tx: float, T: float) -> float:
    """Fader, Hardie & Lee (2005) eq. 3, written with Beta functions as in the paper."""
    g = math.exp(math.lgamma(r + x) - math.lgamma(r)) * alpha**r
    term1 = beta(a, b + x) / beta(a, b) * g / (alpha + T) ** (r + x)
    term2 = 0.0
    if x > 0:
        term2 = beta(a + 1, b + x - 1) / beta(a, b) * g / (alpha + tx) ** (r + x)
    return term1 + term2


def test_bgnbd_likelihood_by_hand() -> None:
    params = (0.243, 4.414, 0.793, 2.426)
    cases = [(2, 30.43, 38.86), (0, 0.0, 38.86), (1, 1.71, 38.86), (7, 29.43, 32.71)]
    x, tx, T = (np.array([c[i] for c in cases], dtype=np.float64) for i in range(3))
    got = bgnbd_loglik_terms(params, x, tx, T)
    want = [math.log(hand_likelihood(*params, *c)) for c in cases]
    assert got == pytest.approx(want, rel=1e-12)
    # Customer 1 of CDNOW, worked through: L = 0.05003..., so log L = -2.995...
    assert math.exp(got[0]) == pytest.approx(hand_likelihood(*params, 2, 30.43, 38.86))
    # P(alive) of a one-off buyer is 1 in the BG/NBD; a long-silent repeat buyer is low.
    p = BgNbdParams(*params, log_likelihood=0.0)
    alive = bgnbd_p_alive(p, x, tx, T)
    assert alive[1] == 1.0 and 0 < alive[0] < 1
    # and it equals term1 / (term1 + term2).
    t1 = beta(0.793, 2.426 + 2) / beta(0.793, 2.426) / (4.414 + 38.86) ** (0.243 + 2)
    t2 = beta(1.793, 2.426 + 1) / beta(0.793, 2.426) / (4.414 + 30.43) ** (0.243 + 2)
    assert alive[0] == pytest.approx(t1 / (t1 + t2), rel=1e-12)


# --- published estimates -------------------------------------------------------------------


def test_cdnow_published_estimates(cdnow: pd.DataFrame) -> None:
    x, tx, T, m = cols(cdnow)
    bg = fit_bgnbd(x, tx, T)
    # Fader, Hardie & Lee (2005), "Counting your customers the easy way", table/§5.
    assert (sig(bg.r), sig(bg.alpha), sig(bg.a), sig(bg.b)) == (0.243, 4.41, 0.793, 2.43)
    assert round(bg.log_likelihood, 1) == -9582.4
    gg = fit_gamma_gamma(x, m)
    # Fader, Hardie & Lee (2005), "RFM and CLV" / the Gamma-Gamma note: 6.25, 3.74, 15.44.
    assert (sig(gg.p), sig(gg.q), sig(gg.v)) == (6.25, 3.74, 15.4)
    assert gg.v == pytest.approx(15.44, abs=0.01)


def test_weights_equal_expanded_data(cdnow: pd.DataFrame) -> None:
    """Compression is exact: weighted unique tuples give the same fit as every customer."""
    x, tx, T, _m = cols(cdnow)
    df = pd.DataFrame({"x": x, "tx": tx, "T": T})
    g = df.groupby(["x", "tx", "T"]).size().reset_index(name="n")
    a = fit_bgnbd(x, tx, T)
    b = fit_bgnbd(g.x.to_numpy(), g.tx.to_numpy(), g["T"].to_numpy(), g.n.to_numpy(dtype=float))
    assert (a.r, a.alpha, a.a, a.b) == pytest.approx((b.r, b.alpha, b.a, b.b), rel=1e-6)


# --- against lifetimes ---------------------------------------------------------------------


def test_against_lifetimes(cdnow: pd.DataFrame) -> None:
    from lifetimes import BetaGeoFitter, GammaGammaFitter

    x, tx, T, m = cols(cdnow)
    bg, gg = fit_bgnbd(x, tx, T), fit_gamma_gamma(x, m)
    freq, rec, age, mon = (pd.Series(v) for v in (x, tx, T, m))
    lb = BetaGeoFitter().fit(freq, rec, age)
    rep = freq > 0
    lg = GammaGammaFitter().fit(freq[rep], mon[rep])
    for name in ("r", "alpha", "a", "b"):
        assert sig(getattr(bg, name), 5) == sig(lb.params_[name], 5)
    for name in ("p", "q", "v"):
        assert sig(getattr(gg, name), 5) == sig(lg.params_[name], 5)
    # Predictions on identical parameters must agree to rounding error.
    for k, v in (("r", bg.r), ("alpha", bg.alpha), ("a", bg.a), ("b", bg.b)):
        lb.params_[k] = v
    for k, v in (("p", gg.p), ("q", gg.q), ("v", gg.v)):
        lg.params_[k] = v
    want = lb.conditional_expected_number_of_purchases_up_to_time(39, freq, rec, age)
    assert bgnbd_expected_purchases(bg, 39, x, tx, T) == pytest.approx(want.to_numpy(), rel=1e-9)
    want = lb.conditional_probability_alive(freq, rec, age)
    assert bgnbd_p_alive(bg, x, tx, T) == pytest.approx(np.asarray(want), rel=1e-9)
    want = lg.conditional_expected_average_profit(freq, mon)
    assert gamma_gamma_expected_spend(gg, x, m) == pytest.approx(want.to_numpy(), rel=1e-9)
    want = lg.customer_lifetime_value(lb, freq, rec, age, mon, time=12, discount_rate=0.01, freq="W")
    got = customer_lifetime_value(bg, gg, x, tx, T, m, 12, 0.01, "week")
    assert got == pytest.approx(want.to_numpy(), rel=1e-9)


# --- from the orders table -----------------------------------------------------------------


def cdnow_orders() -> pa.Table:
    """CDNOW_sample.txt as orders: one row per line, at noon in Shanghai (04:00 UTC)."""
    with (DATASETS / "CDNOW_sample.txt").open() as fh:
        raw = pd.read_csv(fh, sep=r"\s+", header=None, names=["m", "cust", "d", "n", "usd"], dtype=str)
    ts = pd.to_datetime(raw["d"], format="%Y%m%d") + pd.Timedelta(hours=4)
    return pa.table(
        {
            "order_id": [f"o{i}" for i in range(len(raw))],
            "user_id": ("c" + raw["cust"].str.zfill(4)).tolist(),
            "ts": pa.array(ts.to_numpy(dtype="datetime64[us]"), pa.timestamp("us")),
            "amount": pa.array([Decimal(v) for v in raw["usd"]], pa.decimal128(18, 2)),
            "currency": ["USD"] * len(raw),
            "status": ["paid"] * len(raw),
            "properties": pa.array([None] * len(raw), pa.string()),
        }
    )


@pytest.fixture(scope="module")
def cdnow_project(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    from tests.conftest import make_project

    s = make_project(tmp_path_factory.mktemp("cdnow"))
    with Warehouse(s, "duckdb") as wh:
        wh.append_arrow("orders", cdnow_orders())
    return s


CAL = ClvQuery(
    calibration_end=date(1997, 9, 30), holdout_end=date(1998, 6, 30), period="week", horizon=39
)


def test_run_clv_from_orders(cdnow_project: Settings, cdnow: pd.DataFrame) -> None:
    with Warehouse(cdnow_project, "duckdb") as wh:
        fit = fit_clv(wh, CAL)
        res = run_clv(wh, CAL)
    # The per-customer summary matches the published one (x exactly, weeks to 2 decimals).
    df = fit.customers
    assert len(df) == 2357 and df["frequency"].sum() == cdnow["x"].sum()
    assert np.allclose(np.sort(df["T"]), np.sort(cdnow["T"]), atol=0.006)
    assert np.allclose(np.sort(df["monetary"]), np.sort(cdnow["zbar"]), atol=0.006)
    b, g = res.model.bgnbd, res.model.gamma_gamma
    assert (sig(b.r), sig(b.alpha), sig(b.a), sig(b.b)) == (0.243, 4.41, 0.793, 2.43)
    assert sig(b.log_likelihood, 4) == pytest.approx(-9582, abs=1)
    assert (sig(g.p), sig(g.q), sig(g.v)) == (6.25, 3.74, 15.4)
    assert res.customers == 2357 and res.repeat_customers == int((cdnow["x"] > 0).sum())
    # Holdout: 39 weeks; the actual count is the independent pandas count of purchase days.
    v = res.validation
    assert v is not None and v.holdout_periods == pytest.approx(273 / 7)
    raw = cdnow_orders().to_pandas()
    day = raw["ts"].dt.normalize()
    hold = raw[(day > "1997-09-30") & (day <= "1998-06-30")]
    assert v.actual_total == hold.groupby("user_id")["ts"].apply(lambda s: s.dt.normalize().nunique()).sum()
    # Predicted = lifetimes' conditional expectation over the 39 holdout weeks, summed.
    from lifetimes import BetaGeoFitter

    lb = BetaGeoFitter()
    lb.params_ = pd.Series({"r": b.r, "alpha": b.alpha, "a": b.a, "b": b.b})
    want = lb.conditional_expected_number_of_purchases_up_to_time(
        273 / 7, df["frequency"], df["recency"], df["T"]
    )
    assert v.predicted_total == pytest.approx(float(want.sum()), rel=1e-9)
    assert v.error_pct == pytest.approx((v.predicted_total / v.actual_total - 1) * 100)
    assert [bk.frequency for bk in v.buckets] == ["0", "1", "2", "3", "4", "5", "6", "7+"]
    assert sum(bk.users for bk in v.buckets) == 2357
    top = res.top_customers
    assert len(top) == 20 and top[0].clv >= top[-1].clv > 0
    json.loads(res.model_dump_json())


def test_clv_cli_json_and_export(cdnow_project: Settings, tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "clv.csv"
    r = runner.invoke(
        app,
        ["clv", "--project", str(cdnow_project.project_dir), "--calibration-end", "1997-09-30",
         "--holdout-end", "1998-06-30", "--format", "json", "--export-users", str(out),
         "--min-clv", "100"],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    bg = doc["model"]["bgnbd"]
    assert set(bg) >= {"r", "alpha", "a", "b", "log_likelihood"}
    assert set(doc["model"]["gamma_gamma"]) >= {"p", "q", "v"}
    assert round(bg["r"], 3) == 0.243 and doc["validation"]["buckets"]
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows and all(float(row["clv"]) >= 100 for row in rows)
    assert 0 < float(rows[0]["p_alive"]) <= 1
    r = runner.invoke(
        app,
        ["clv", "--project", str(cdnow_project.project_dir), "--calibration-end", "1997-09-30",
         "--holdout-end", "1997-01-01"],
    )
    assert isinstance(r.exception, YunyingError) and r.exception.key == "value.bad_query"


def test_clv_errors(wh: Warehouse, tmp_path: Path) -> None:
    with pytest.raises(YunyingError) as e:
        run_clv(wh, ClvQuery())
    assert e.value.key == "clv.no_orders"
    # One-off buyers only: nothing to learn repeat behaviour from.
    rows = pa.table(
        {
            "order_id": ["a", "b"],
            "user_id": ["u1", "u2"],
            "ts": pa.array([datetime(2024, 1, 1, 4), datetime(2024, 1, 5, 4)], pa.timestamp("us")),
            "amount": pa.array([Decimal("5.00"), Decimal("6.00")], pa.decimal128(18, 2)),
            "currency": ["CNY", "CNY"],
            "status": ["paid", "paid"],
            "properties": pa.array([None, None], pa.string()),
        }
    )
    wh.append_arrow("orders", rows)
    with pytest.raises(YunyingError) as e:
        run_clv(wh, ClvQuery())
    assert "more than once" in e.value.message("en")
    with pytest.raises(YunyingError):
        fit_bgnbd(np.array([1.0]), np.array([5.0]), np.array([3.0]))  # recency > T
    with pytest.raises(YunyingError):
        fit_bgnbd(np.array([], dtype=float), np.array([], dtype=float), np.array([], dtype=float))
    with pytest.raises(YunyingError) as e:
        from yunying.analytics.clv import ClvFit, GammaGammaParams

        fit = ClvFit(pd.DataFrame(), date(2024, 1, 1), BgNbdParams(1, 1, 1, 1, 0), GammaGammaParams(1, 2, 1, 0))
        export_clv_users(fit, tmp_path)  # a folder, not a file
    assert e.value.key == "value.export_failed"


def test_customer_summary_by_hand_on_every_engine(any_wh: Warehouse) -> None:
    """Conventions: same local day merges, calibration end inclusive, weeks from day one."""
    from yunying.analytics.clv import customer_summary

    def row(i: int, user: str, ts: datetime, amount: str, status: str = "paid") -> dict:  # type: ignore[type-arg]
        return {"order_id": f"o{i}", "user_id": user, "ts": ts, "amount": Decimal(amount),
                "currency": "CNY", "status": status, "properties": None}

    rows = [
        row(1, "a", datetime(2024, 1, 1, 4), "10.00"),
        row(2, "a", datetime(2024, 1, 1, 15, 30), "99.00"),  # 23:30 local: same day as o1
        row(3, "a", datetime(2024, 1, 8, 4), "20.00"),
        row(4, "a", datetime(2024, 1, 14, 17), "30.00"),  # 01:00 on 01-15 local
        row(5, "a", datetime(2024, 1, 15, 4), "5.00"),  # same local day as o4
        row(6, "a", datetime(2024, 1, 29, 16, 30), "70.00"),  # 01-30 local: after the end
        row(7, "b", datetime(2024, 1, 22, 4), "8.00"),
        row(8, "b", datetime(2024, 1, 23, 4), "8.00", "refunded"),
        row(9, "c", datetime(2024, 1, 29, 4), "40.00"),  # on the calibration end day
    ]
    cols = ["order_id", "user_id", "ts", "amount", "currency", "status", "properties"]
    table = pa.table({c: [r[c] for r in rows] for c in cols})
    table = table.cast(pa.schema([
        ("order_id", pa.string()), ("user_id", pa.string()), ("ts", pa.timestamp("us")),
        ("amount", pa.decimal128(18, 2)), ("currency", pa.string()), ("status", pa.string()),
        ("properties", pa.string()),
    ]))
    any_wh.append_arrow("orders", table)
    any_wh.refresh()
    df, end = customer_summary(any_wh, ClvQuery(calibration_end=date(2024, 1, 29), period="week"))
    assert end == date(2024, 1, 29)
    got = {r.user_id: (r.frequency, r.recency, r.T, r.monetary) for r in df.itertuples()}
    # a: days 01-01 (109), 01-08 (20), 01-15 (35) -> x=2, t_x=14 d, T=28 d, m=(20+35)/2
    assert got["a"] == pytest.approx((2, 2.0, 4.0, 27.5))
    assert got["b"] == pytest.approx((0, 0.0, 1.0, 0.0))
    assert got["c"] == pytest.approx((0, 0.0, 0.0, 0.0))


# --- speed-ups keep the same answer ------------------------------------------------------


def test_compress_groups_equal_rows(cdnow: pd.DataFrame) -> None:
    """Hash-based compression: every row maps to its own unique row; counts add up."""
    from yunying.analytics.clv import compress

    x, tx, T, _m = cols(cdnow)
    x = np.concatenate([x, x[:500], [np.nan, np.nan]])  # duplicates and NaN keys
    tx = np.concatenate([tx, tx[:500], [0.0, 0.0]])
    T = np.concatenate([T, T[:500], [1.0, 1.0]])
    (ux, ut, uT), w, inv = compress(x, tx, T)
    want = np.unique(np.column_stack([x, tx, T]), axis=0)
    assert len(w) == len(want) - 1  # np.unique keeps each NaN apart; compress groups them
    assert w.sum() == len(x) and w.min() >= 1
    assert np.array_equal(ux[inv], x, equal_nan=True)
    assert np.array_equal(ut[inv], tx) and np.array_equal(uT[inv], T)
    assert np.array_equal(np.bincount(inv), w)
    # Larger than the dense table: the key is factorised instead, same groups.
    rng = np.random.default_rng(0)
    a, b, c = (rng.integers(0, 300, 5000).astype(float) for _ in range(3))
    (ua, ub, uc), w, inv = compress(a, b, c)
    assert len(w) == len(np.unique(np.column_stack([a, b, c]), axis=0))
    assert np.array_equal(ua[inv], a) and np.array_equal(ub[inv], b) and np.array_equal(uc[inv], c)


def test_gamma_gamma_likelihood_is_the_per_customer_sum(cdnow: pd.DataFrame) -> None:
    """Grouping by total repeat spend is exact: the fit's LL is the sum of customers' LLs."""
    from yunying.analytics.clv import gamma_gamma_loglik_terms

    x, _tx, _T, m = cols(cdnow)
    gg = fit_gamma_gamma(x, m)
    rep = (x > 0) & (m > 0)
    terms = gamma_gamma_loglik_terms((gg.p, gg.q, gg.v), x[rep], m[rep])
    assert gg.log_likelihood == pytest.approx(float(terms.sum()), rel=1e-12)
    bg = fit_bgnbd(*cols(cdnow)[:3])
    terms = bgnbd_loglik_terms((bg.r, bg.alpha, bg.a, bg.b), *cols(cdnow)[:3])
    assert bg.log_likelihood == pytest.approx(float(terms.sum()), rel=1e-12)


def test_fits_leave_this_threads_blas_setting_alone(cdnow: pd.DataFrame) -> None:
    """L-BFGS-B runs with one BLAS thread; the caller's (thread-local) setting comes back."""
    from yunying.analytics.clv import _openblas_local_setters

    setters = _openblas_local_setters()
    if not setters:
        pytest.skip("no OpenBLAS with openblas_set_num_threads_local loaded here")
    before = [fn(3) for fn in setters]
    try:
        x, tx, T, m = cols(cdnow)
        fit_bgnbd(x, tx, T)
        fit_gamma_gamma(x, m)
        assert [fn(3) for fn in setters] == [3] * len(setters)
    finally:
        for fn, n in zip(setters, before, strict=True):
            fn(n)
