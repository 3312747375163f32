"""Customer lifetime value (客户终身价值): BG/NBD for repeat purchases, Gamma-Gamma for spend.

The models are those of Fader, Hardie & Lee (2005), "Counting your customers the easy
way" and "RFM and CLV", fitted by maximum likelihood with the usual conventions (same as
the ``lifetimes`` package): orders on the same local day are one purchase; ``frequency``
is the number of repeat purchase days, ``recency`` the time from the first to the last
purchase day and ``T`` from the first purchase day to the calibration end, in days,
weeks or months (30 days).

Speed comes from the sufficient statistics: the BG/NBD likelihood only depends on the
tuple (x, t_x, T), so customers are compressed (by hashing, not sorting) to unique tuples
with counts; Gamma-Gamma groups its x-only terms by x and its only v-dependent term by
the total repeat spend. Both are fitted with L-BFGS-B on log-parameters using analytic
gradients, with BLAS on one thread (see ``_serial_blas``).
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any, Literal

import ibis
import ibis.expr.datatypes as dt
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
from pydantic import BaseModel, Field, model_validator
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1

from yunying.analytics.common import (
    QUERY_CONFIG,
    QueryDate,
    engine_of,
    local_midnight_utc,
    local_ts,
)
from yunying.errors import YunyingError
from yunying.i18n import t

Period = Literal["day", "week", "month"]
PERIOD_DAYS: dict[str, float] = {"day": 1.0, "week": 7.0, "month": 30.0}
# Periods per month for the monthly discounting (the convention of lifetimes' CLV).
PERIODS_PER_MONTH: dict[str, float] = {"day": 30.0, "week": 4.345, "month": 1.0}

Arr = npt.NDArray[np.float64]
_LOG_BOUND = 15.0  # parameters between e^-15 and e^15


# ---------------------------------------------------------------------------------------
# BG/NBD
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BgNbdParams:
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


@dataclass(frozen=True)
class GammaGammaParams:
    p: float
    q: float
    v: float
    log_likelihood: float


def compress(*cols: Arr) -> tuple[list[Arr], Arr, npt.NDArray[np.intp]]:
    """Unique rows of the columns, their counts (weights) and the inverse index.

    Hashing, not sorting: each column is factorised (a few distinct values each), the
    codes are combined into one integer key and the key is counted in a dense table (or
    factorised again when the table would be sparse). Several times faster than a lexsort
    on millions of rows. The unique rows come in key order, not sorted order.
    """
    arrs = [np.asarray(c, dtype=np.float64) for c in cols]
    n = len(arrs[0])
    if n == 0:
        return [a[:0] for a in arrs], np.zeros(0), np.zeros(0, dtype=np.intp)
    dense_limit = max(4 * n, 1 << 16)
    key = np.zeros(n, dtype=np.int64)
    size = 1
    for a in arrs:
        codes, uniq = pd.factorize(a, use_na_sentinel=False)
        if size * len(uniq) > dense_limit:
            key, size = _factorize_int(key)
        key = key * len(uniq) + codes
        size *= len(uniq)
    if size <= dense_limit:
        full = np.bincount(key, minlength=size)
        present = full > 0
        slot = np.cumsum(present) - 1
        inverse = slot[key].astype(np.intp, copy=False)
        counts = full[present].astype(np.float64)
    else:
        inverse, size = _factorize_int(key)
        counts = np.bincount(inverse, minlength=size).astype(np.float64)
    # Any member stands for its group (all members are equal).
    rep = np.empty(len(counts), dtype=np.intp)
    rep[inverse] = np.arange(n)
    return [a[rep] for a in arrs], counts, inverse.astype(np.intp, copy=False)


def _factorize_int(key: npt.NDArray[np.int64]) -> tuple[npt.NDArray[np.int64], int]:
    codes, uniq = pd.factorize(key)
    return codes.astype(np.int64, copy=False), len(uniq)


def _codes(a: Arr) -> tuple[Arr, npt.NDArray[np.intp]]:
    """Distinct values and each element's index into them (hash based, unsorted)."""
    codes, uniq = pd.factorize(a, use_na_sentinel=False)
    return np.asarray(uniq, dtype=np.float64), codes.astype(np.intp, copy=False)


def bgnbd_loglik_terms(
    params: tuple[float, float, float, float], x: Arr, t_x: Arr, T: Arr
) -> Arr:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, eq. 6)."""
    r, alpha, a, b = params
    ln_a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    ln_a2 = betaln(a, b + x) - betaln(a, b)
    ln_a3 = -(r + x) * np.log(alpha + T)
    repeat = x > 0
    ln_a4 = np.where(
        repeat,
        np.log(a) - np.log(b + np.maximum(x, 1.0) - 1.0) - (r + x) * np.log(alpha + t_x),
        -np.inf,
    )
    return ln_a1 + ln_a2 + np.logaddexp(ln_a3, ln_a4)  # type: ignore[no-any-return]


def _weighted_sum(v: Arr, w: Arr | None) -> float:
    return float(v.sum()) if w is None else _dot(v, w)


def _dot(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> float:
    """Dot product without BLAS: BLAS threads spin and stall on a busy machine."""
    return float(np.einsum("i,i->", a, b))


def _group_rows(*codes: npt.NDArray[np.intp]) -> tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]:
    """Rows with equal codes: (group of each row, one row per group). Hashing, no sort."""
    key = np.zeros(len(codes[0]), dtype=np.int64)
    size = 1
    for c in codes:
        k = int(c.max()) + 1 if len(c) else 1
        if size * k > 1 << 62:
            key, size = _factorize_int(key)
        key = key * k + c
        size *= k
    group, n_groups = _factorize_int(key)
    first = np.empty(n_groups, dtype=np.intp)
    first[group] = np.arange(len(group))
    return group.astype(np.intp, copy=False), first


class _BgNbdObjective:
    """Negative mean log-likelihood and gradient, organised for speed.

    Built from customers (with optional weights) in one pass of hashing: the special
    functions depend only on x (a few dozen distinct values), the logs only on T or t_x
    (one per distinct day), one-off buyers only on T. Repeat buyers are grouped by their
    (x, t_x, T) and, per evaluation, only D = log(A4 / A3) is computed per group:
    log(A3 + A4) = log A3 + softplus(D), and the log A3 parts sum per distinct T.
    """

    def __init__(self, x: Arr, t_x: Arr, T: Arr, w: Arr | None = None) -> None:
        self.ux, ix = _codes(x)
        self.uT, iT = _codes(T)
        n_x, n_T = len(self.ux), len(self.uT)
        rep = x > 0
        wrep = None if w is None else w[rep]
        self.total = float(len(x)) if w is None else float(w.sum())
        self.wx = np.bincount(ix, weights=w, minlength=n_x).astype(np.float64)
        self.w0T = np.bincount(
            iT[~rep], weights=None if w is None else w[~rep], minlength=n_T
        ).astype(np.float64)
        # Repeat buyers: one row per distinct (x, t_x, T), and one per distinct (t_x, T).
        self.utx, itx = _codes(t_x[rep])
        ixr, iTr = ix[rep], iT[rep]
        group, first = _group_rows(ixr, iTr, itx)
        self.wr = np.bincount(group, weights=wrep, minlength=len(first)).astype(np.float64)
        self.ixr, iTr, itx = ixr[first], iTr[first], itx[first]
        self.xr = self.ux[self.ixr]
        self.wxr = self.wr * self.xr
        pair, pfirst = _group_rows(iTr, itx)
        self.pair, self.pT, self.ptx = pair, iTr[pfirst], itx[pfirst]
        # sum of w and w x over repeat buyers, per distinct T (for the log A3 parts)
        self.WT = np.bincount(iTr, weights=self.wr, minlength=n_T)
        self.WXT = np.bincount(iTr, weights=self.wxr, minlength=n_T)

    def __call__(self, theta: Arr) -> tuple[float, Arr]:
        r, alpha, a, b = np.exp(theta)
        ux, wx, w0T = self.ux, self.wx, self.w0T
        inv_T = 1.0 / (alpha + self.uT)
        inv_tx = 1.0 / (alpha + self.utx)
        log_T = np.log(alpha + self.uT)
        log_tx = np.log(alpha + self.utx)
        bx1 = b + np.maximum(ux, 1.0) - 1.0
        # x-only terms, weighted by the number of customers with each x
        a12 = gammaln(r + ux) - gammaln(r) + betaln(a, b + ux) - betaln(a, b)
        ll = _dot(wx, a12) + self.total * r * np.log(alpha) - r * _dot(w0T, log_T)
        # repeat buyers: log A3 = -(r + x) log(alpha + T), summed per distinct T
        wlogT = _dot(self.WT, log_T)
        ll -= r * wlogT + _dot(self.WXT, log_T)
        # D = log A4 - log A3 = log a - log(b + x - 1) - (r + x)(log(alpha + t_x) - log(alpha + T))
        dl = (log_tx[self.ptx] - log_T[self.pT])[self.pair]
        rx = r + self.xr
        d = (np.log(a) - np.log(bx1))[self.ixr] - rx * dl
        # softplus(D) and sigmoid(D) stably: np.logaddexp is ~50x slower than exp and log.
        e = np.exp(-np.abs(d))
        ll += _dot(self.wr, np.maximum(d, 0.0) + np.log1p(e))
        # sigmoid(D) = 1 / (1 + e) for D >= 0, e / (1 + e) below (e <= 1; no np.where: slow)
        wp = self.wr * np.maximum(e, d >= 0.0) / (1.0 + e)  # weight x P(the A4 branch)
        dinv = (inv_tx[self.ptx] - inv_T[self.pT])[self.pair]
        d_r = (
            _dot(wx, digamma(r + ux) - digamma(r))
            + self.total * np.log(alpha)
            - _dot(w0T, log_T)
            - wlogT
            - _dot(wp, dl)
        )
        d_alpha = (
            self.total * r / alpha
            - r * _dot(w0T, inv_T)
            - r * _dot(self.WT, inv_T)
            - _dot(self.WXT, inv_T)
            - _dot(wp * rx, dinv)
        )
        sw4 = float(wp.sum())
        d_a = _dot(wx, digamma(a + b) - digamma(a + b + ux)) + sw4 / a
        d_b = _dot(
            wx, digamma(b + ux) - digamma(a + b + ux) - digamma(b) + digamma(a + b)
        ) - _dot(np.bincount(self.ixr, weights=wp, minlength=len(ux)), 1.0 / bx1)
        grad = np.array([d_r * r, d_alpha * alpha, d_a * a, d_b * b])
        return -ll / self.total, -grad / self.total


@functools.cache
def _openblas_local_setters() -> tuple[Any, ...]:
    """``openblas_set_num_threads_local`` of each OpenBLAS loaded (numpy's, scipy's), if any.

    Found through /proc/self/maps (Linux); elsewhere, or with another BLAS, none: the
    guard below is then a no-op.
    """
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as fh:
            paths = {line.split()[-1] for line in fh if "openblas" in line.lower()}
    except OSError:
        return ()
    out = []
    for path in sorted(paths):
        if not path.startswith("/") or "openblas" not in path.rsplit("/", 1)[-1].lower():
            continue
        try:
            fn = ctypes.CDLL(path).openblas_set_num_threads_local  # OpenBLAS >= 0.3.27
        except (OSError, AttributeError):
            continue
        fn.argtypes, fn.restype = [ctypes.c_int], ctypes.c_int
        out.append(fn)
    return tuple(out)


@contextmanager
def _serial_blas() -> Iterator[None]:
    """BLAS on one thread, for this thread only, while L-BFGS-B runs.

    Its BLAS/LAPACK calls are on 4x4 matrices, yet OpenBLAS wakes its helper threads,
    which then spin: on a busy two-core machine they take the CPU from the objective
    and a fit runs 2-5x slower (measured). The setting is thread-local and restored.
    """
    setters = _openblas_local_setters()
    previous = [fn(1) for fn in setters]
    try:
        yield
    finally:
        for fn, n in zip(setters, previous, strict=True):
            fn(n)


def _converged(res: Any) -> bool:
    """L-BFGS-B success, or stopped by rounding noise at a point with a tiny gradient."""
    return bool(res.success) or float(np.max(np.abs(res.jac))) < 1e-5


def _fit_log_params(
    objective: Callable[[Arr], tuple[float, Arr]],
    starts: list[Arr],
    model: str,
    ftol: float,
    gtol: float,
) -> Any:
    """Maximum likelihood on log-parameters from several starts; the best converged fit."""
    best: Any = None
    with _serial_blas():
        for start in starts:
            res = minimize(
                objective,
                start,
                jac=True,
                method="L-BFGS-B",
                bounds=[(-_LOG_BOUND, _LOG_BOUND)] * len(start),
                options={"maxiter": 2000, "ftol": ftol, "gtol": gtol},
            )
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
            if best is not None and _converged(best):
                break
    if best is None or not _converged(best):
        raise YunyingError("clv.fit_failed", model=model)
    return best


def fit_bgnbd(
    frequency: Arr, recency: Arr, T: Arr, weights: Arr | None = None
) -> BgNbdParams:
    """Maximum-likelihood BG/NBD parameters; ``weights`` count identical customers."""
    x = np.asarray(frequency, dtype=np.float64)
    t_x = np.asarray(recency, dtype=np.float64)
    TT = np.asarray(T, dtype=np.float64)
    _check_rft(x, t_x, TT)
    w = None if weights is None else np.asarray(weights, dtype=np.float64)
    if not np.any(x > 0):
        raise YunyingError("clv.no_repeat")
    # The likelihood depends only on (x, t_x, T): the objective groups equal customers.
    objective = _BgNbdObjective(x, t_x, TT, w)
    # Start where the mean purchase rate r/alpha matches the data, dropout moderate.
    rate = max(_dot(objective.wx, objective.ux) / max(_weighted_sum(TT, w), 1e-9), 1e-6)
    starts = [np.log([1.0, 1.0 / rate, 1.0, 1.0]), np.zeros(4)]
    best = _fit_log_params(objective, starts, "BG/NBD", ftol=1e-15, gtol=1e-10)
    r, alpha, a, b = (float(v) for v in np.exp(best.x))
    return BgNbdParams(r, alpha, a, b, -float(best.fun) * objective.total)


def _expected_numerators(
    p: BgNbdParams, ts: list[float], x: Arr, T: Arr
) -> tuple[list[Arr], npt.NDArray[np.intp]]:
    """The hypergeometric part of E[Y(t)], per unique (x, T) pair (it ignores t_x).

    Returns one array per horizon in ``ts`` over the pairs, and each customer's pair index.
    """
    r, alpha, a, b = p.r, p.alpha, p.a, p.b
    (ux, uT), _w, inv = compress(x, T)
    out = []
    for h in ts:
        z = h / (alpha + uT + h)
        hyp = hyp2f1(r + ux, b + ux, a + b + ux - 1.0, z)
        first = (a + b + ux - 1.0) / (a - 1.0)
        second = 1.0 - np.exp((r + ux) * (np.log(alpha + uT) - np.log(alpha + uT + h))) * hyp
        out.append(first * second)
    return out, inv


def bgnbd_expected_purchases(p: BgNbdParams, t: float, x: Arr, t_x: Arr, T: Arr) -> Arr:
    """E[purchases in the next ``t`` periods | x, t_x, T] (Fader, Hardie & Lee 2005, eq. 10)."""
    x, t_x, T = (np.asarray(v, dtype=np.float64) for v in (x, t_x, T))
    (num,), inv = _expected_numerators(p, [float(t)], x, T)
    return num[inv] / _alive_denominator(p, x, t_x, T)  # type: ignore[no-any-return]


def _alive_denominator(p: BgNbdParams, x: Arr, t_x: Arr, T: Arr) -> Arr:
    log_ratio = np.log(p.a) - np.log(p.b + np.maximum(x, 1.0) - 1.0)
    log_ratio = log_ratio + (p.r + x) * (np.log(p.alpha + T) - np.log(p.alpha + t_x))
    return np.where(x > 0, 1.0 + np.exp(log_ratio), 1.0)  # type: ignore[no-any-return]


def bgnbd_p_alive(p: BgNbdParams, x: Arr, t_x: Arr, T: Arr) -> Arr:
    """P(still active | x, t_x, T): 1 for customers who never came back (the BG/NBD form)."""
    return 1.0 / _alive_denominator(p, x, t_x, T)  # type: ignore[no-any-return]


# ---------------------------------------------------------------------------------------
# Gamma-Gamma
# ---------------------------------------------------------------------------------------


def gamma_gamma_loglik_terms(params: tuple[float, float, float], x: Arr, m: Arr) -> Arr:
    """Per-customer Gamma-Gamma log-likelihood of the mean spend ``m`` over ``x`` purchases."""
    p, q, v = params
    px = p * x
    return (  # type: ignore[no-any-return]
        gammaln(px + q) - gammaln(px) - gammaln(q) + q * np.log(v)
        + (px - 1.0) * np.log(m) + px * np.log(x) - (px + q) * np.log(x * m + v)
    )


def fit_gamma_gamma(frequency: Arr, monetary: Arr) -> GammaGammaParams:
    """Maximum-likelihood Gamma-Gamma parameters from repeat customers (x > 0, m > 0)."""
    x = np.asarray(frequency, dtype=np.float64)
    m = np.asarray(monetary, dtype=np.float64)
    keep = (x > 0) & (m > 0)
    x, m = x[keep], m[keep]
    if len(x) < 3:
        raise YunyingError("clv.no_repeat")
    # Sufficient statistics, computed once. The x-only terms are summed per distinct x
    # (counts, sum of log m); the only v-dependent term, (p x + q) log(x m + v), is
    # summed per distinct total repeat spend s = x m (prices in cents: far fewer values
    # than customers) with weights X_s = sum of x and C_s = count.
    ux, inv = _codes(x)
    cnt = np.bincount(inv, minlength=len(ux)).astype(np.float64)
    slogm = np.bincount(inv, weights=np.log(m), minlength=len(ux))
    n = float(len(x))
    xlogx_w = float(cnt @ (ux * np.log(ux)))
    sum_slogm = float(slogm.sum())
    ux_slogm = _dot(ux, slogm)
    us, inv_s = _codes(x * m)
    xs = np.bincount(inv_s, weights=x, minlength=len(us))
    cs = np.bincount(inv_s, minlength=len(us)).astype(np.float64)

    def nll(theta: Arr) -> tuple[float, Arr]:
        p, q, v = np.exp(theta)
        pux = p * ux
        smv = us + v
        log_smv = np.log(smv)
        inv_smv = 1.0 / smv
        x_log = _dot(xs, log_smv)
        sum_log = _dot(cs, log_smv)
        ll = (
            _dot(cnt, gammaln(pux + q) - gammaln(pux))
            - n * gammaln(q)
            + n * q * np.log(v)
            + p * ux_slogm
            - sum_slogm
            + p * xlogx_w
            - p * x_log
            - q * sum_log
        )
        d_p = _dot(cnt * ux, digamma(pux + q) - digamma(pux)) + ux_slogm + xlogx_w - x_log
        d_q = _dot(cnt, digamma(pux + q)) - n * digamma(q) + n * np.log(v) - sum_log
        d_v = n * q / v - p * _dot(xs, inv_smv) - q * _dot(cs, inv_smv)
        grad = np.array([d_p * p, d_q * q, d_v * v])
        return -float(ll) / n, -grad / n

    mean_m = float(m.mean())
    starts = [np.log([1.0, 1.0, 1.0]), np.log([2.0, 2.0, mean_m])]
    best = _fit_log_params(nll, starts, "Gamma-Gamma", ftol=1e-13, gtol=1e-9)
    p, q, v = (float(val) for val in np.exp(best.x))
    return GammaGammaParams(p, q, v, -float(best.fun) * n)


def gamma_gamma_expected_spend(g: GammaGammaParams, x: Arr, m: Arr) -> Arr:
    """E[average spend | x, m]: the population mean shrunk towards the customer's mean."""
    pop = g.v * g.p / (g.q - 1.0)
    weight = g.p * x / (g.p * x + g.q - 1.0)
    return np.where(x > 0, (1.0 - weight) * pop + weight * m, pop)  # type: ignore[no-any-return]


def customer_lifetime_value(
    bg: BgNbdParams,
    gg: GammaGammaParams,
    x: Arr,
    t_x: Arr,
    T: Arr,
    m: Arr,
    months: int,
    discount_rate: float,
    period: str,
) -> Arr:
    """Discounted value of the next ``months`` months: monthly purchases × expected spend."""
    spend = gamma_gamma_expected_spend(gg, x, m)
    f = PERIODS_PER_MONTH[period]
    # E[Y(t)] = numerator(x, T; t) / denominator(x, t_x, T): discount the monthly
    # increments of the numerator per (x, T) pair, then divide once per customer.
    nums, inv = _expected_numerators(bg, [i * f for i in range(months + 1)], x, T)
    value = np.zeros_like(nums[0])
    for i in range(1, months + 1):
        value += (nums[i] - nums[i - 1]) / (1.0 + discount_rate) ** i
    return value[inv] / _alive_denominator(bg, x, t_x, T) * spend  # type: ignore[no-any-return]


def _check_rft(x: Arr, t_x: Arr, T: Arr) -> None:
    if len(x) == 0:
        raise YunyingError("clv.no_orders")
    if np.any(x < 0) or np.any(t_x < 0) or np.any(t_x > T + 1e-9) or np.any(x != np.floor(x)):
        raise YunyingError("clv.bad_summary")


# ---------------------------------------------------------------------------------------
# From the orders table
# ---------------------------------------------------------------------------------------


class ClvQuery(BaseModel):
    """Fit on orders up to ``calibration_end`` (inclusive, local day) and predict ahead."""

    model_config = QUERY_CONFIG

    calibration_end: QueryDate | None = None  # default: the day of the latest paid order
    calibration_start: QueryDate | None = None  # customers whose first order is from this day
    holdout_end: QueryDate | None = None  # validate on (calibration_end, holdout_end]
    period: Period = "week"
    horizon: float = Field(default=52.0, gt=0, le=10000)  # periods for expected purchases
    months: int = Field(default=12, ge=1, le=600)  # CLV horizon in months
    discount_rate: float = Field(default=0.01, ge=0, le=1)  # monthly
    top: int = Field(default=20, ge=0, le=1000)

    @model_validator(mode="after")
    def _dates(self) -> ClvQuery:
        if self.holdout_end and self.calibration_end and self.holdout_end <= self.calibration_end:
            raise ValueError("holdout_end must be after calibration_end")
        if self.calibration_start and self.calibration_end:
            if self.calibration_start > self.calibration_end:
                raise ValueError("calibration_start must not be after calibration_end")
        return self


class BgNbdModel(BaseModel):
    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float


class GammaGammaModel(BaseModel):
    p: float
    q: float
    v: float
    log_likelihood: float


class ClvModel(BaseModel):
    bgnbd: BgNbdModel
    gamma_gamma: GammaGammaModel


class ClvCustomer(BaseModel):
    user_id: str
    frequency: int
    recency: float
    T: float
    monetary: float
    p_alive: float
    expected_purchases: float
    expected_spend: float
    clv: float


class ValidationBucket(BaseModel):
    frequency: str  # "0".."6" or "7+"
    users: int
    actual: float  # mean purchases in the holdout
    predicted: float


class ClvValidation(BaseModel):
    holdout_end: date
    holdout_periods: float
    actual_total: float
    predicted_total: float
    error_pct: float
    buckets: list[ValidationBucket]


class ClvResult(BaseModel):
    calibration_end: date
    period: Period
    horizon: float
    months: int
    discount_rate: float
    customers: int
    repeat_customers: int
    model: ClvModel
    expected_purchases_total: float
    clv_total: float
    clv_mean: float
    top_customers: list[ClvCustomer]
    validation: ClvValidation | None = None

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        """Model parameters and totals as key/value rows, then the validation buckets."""
        b, g = self.model.bgnbd, self.model.gamma_gamma
        rows: list[list[Any]] = [
            [t("clv.row.customers"), self.customers],
            [t("clv.row.repeat_customers"), self.repeat_customers],
            ["BG/NBD r", round(b.r, 4)],
            ["BG/NBD alpha", round(b.alpha, 4)],
            ["BG/NBD a", round(b.a, 4)],
            ["BG/NBD b", round(b.b, 4)],
            ["BG/NBD LL", f"{b.log_likelihood:.2f}"],
            ["Gamma-Gamma p", round(g.p, 4)],
            ["Gamma-Gamma q", round(g.q, 4)],
            ["Gamma-Gamma v", round(g.v, 4)],
            [t("clv.row.expected_purchases", horizon=f"{self.horizon:g}", period=self.period),
             f"{self.expected_purchases_total:.1f}"],
            [t("clv.row.clv_total", months=self.months), f"{self.clv_total:.2f}"],
            [t("clv.row.clv_mean"), f"{self.clv_mean:.2f}"],
        ]
        if self.validation is not None:
            v = self.validation
            rows.append([t("clv.row.holdout_actual"), round(v.actual_total, 1)])
            rows.append([t("clv.row.holdout_predicted"), round(v.predicted_total, 1)])
            rows.append([t("clv.row.holdout_error"), f"{v.error_pct:+.1f}%"])
            for bk in v.buckets:
                rows.append(
                    [t("clv.row.bucket", frequency=bk.frequency, users=bk.users),
                     f"{bk.actual:.3f} / {bk.predicted:.3f}"]
                )
        return [t("clv.col.key"), t("clv.col.value")], rows


@ibis.udf.agg.builtin(name="min_by")
def _min_by(arg: dt.Decimal(38, 2), key: dt.Date) -> dt.Decimal(38, 2):  # type: ignore[empty-body,valid-type]
    """``arg`` at the smallest ``key`` (DuckDB and Spark: ``min_by``).

    Ibis' ``argmin`` compiles on DuckDB to an ordered ``first(arg ORDER BY key)``, which
    buffers and sorts every group: 2-3x slower on a million customers.
    """


def _paid(wh: Any) -> Any:
    o = wh.table("orders")
    return o.filter(o.status == "paid", o.user_id.notnull(), o.amount.notnull())


def customer_summary(wh: Any, q: ClvQuery) -> tuple[pd.DataFrame, date]:
    """Per customer from paid orders up to the calibration end: x, t_x, T, mean repeat spend.

    Orders are merged per local day (the engine does the grouping); the few date
    subtractions happen in numpy on the per-customer rows.
    """
    engine = engine_of(wh)
    tz = wh.settings.timezone
    if q.calibration_end is None:
        from yunying.analytics.rfm import latest_order_day

        try:
            cal_end = latest_order_day(wh)
        except YunyingError:
            raise YunyingError("clv.no_orders") from None
    else:
        cal_end = q.calibration_end
    o = _paid(wh)
    o = o.filter(o.ts < local_midnight_utc(cal_end + timedelta(days=1), tz))
    o = o.mutate(day=local_ts(engine, o.ts, tz).date())
    daily = o.group_by(["user_id", "day"]).aggregate(amount=o.amount.sum())
    per = daily.group_by("user_id").aggregate(
        days=daily.count(),
        first_day=daily.day.min(),
        last_day=daily.day.max(),
        total=daily.amount.sum(),
        first_amount=_min_by(daily.amount, daily.day),  # spend on the first purchase day
    )
    if q.calibration_start is not None:
        per = per.filter(per.first_day >= q.calibration_start)
    # The per-customer columns, computed by the engine (the same IEEE divisions NumPy
    # would do) and sorted there: Arrow to pandas is then a copy-free hand-over.
    unit = PERIOD_DAYS[q.period]
    x = (per.days - 1).cast("float64")
    repeat = (per.total - per.first_amount).cast("float64")
    out = per.select(
        "user_id",
        frequency=x,
        recency=per.last_day.delta(per.first_day, unit="day").cast("float64") / unit,
        T=ibis.literal(cal_end).delta(per.first_day, unit="day").cast("float64") / unit,
        monetary=ibis.ifelse(x > 0, repeat / x, 0.0),
    ).order_by("user_id")
    tab = wh.to_pyarrow(out)
    if tab.num_rows == 0:
        raise YunyingError("clv.no_orders")
    if not pa.types.is_string(tab.schema.field("user_id").type):
        tab = tab.set_column(0, "user_id", tab.column("user_id").cast(pa.string()))
    return tab.to_pandas(split_blocks=True), cal_end


def _holdout_counts(wh: Any, cal_end: date, holdout_end: date) -> pd.Series:
    """Purchase days per customer in (cal_end, holdout_end]."""
    engine = engine_of(wh)
    tz = wh.settings.timezone
    o = _paid(wh)
    lo = local_midnight_utc(cal_end + timedelta(days=1), tz)
    hi = local_midnight_utc(holdout_end + timedelta(days=1), tz)
    o = o.filter(o.ts >= lo, o.ts < hi)
    o = o.mutate(day=local_ts(engine, o.ts, tz).date())
    per = o.group_by("user_id").aggregate(n=o.day.nunique())
    df = wh.execute(per)
    return pd.Series(df["n"].to_numpy(dtype=np.float64), index=df["user_id"].astype(str))


@dataclass
class ClvFit:
    """Everything computed: the per-customer frame (with predictions) and the models."""

    customers: pd.DataFrame
    calibration_end: date
    bgnbd: BgNbdParams
    gamma_gamma: GammaGammaParams


def fit_clv(wh: Any, q: ClvQuery) -> ClvFit:
    df, cal_end = customer_summary(wh, q)
    x = df["frequency"].to_numpy()
    t_x = df["recency"].to_numpy()
    T = df["T"].to_numpy()
    m = df["monetary"].to_numpy()
    bg = fit_bgnbd(x, t_x, T)
    gg = fit_gamma_gamma(x, m)
    if gg.q <= 1.0:
        raise YunyingError("clv.spend_unbounded", q=round(gg.q, 3))
    (ux, ut, uT), _w, inv = compress(x, t_x, T)
    df["p_alive"] = bgnbd_p_alive(bg, ux, ut, uT)[inv]
    df["expected_purchases"] = bgnbd_expected_purchases(bg, q.horizon, ux, ut, uT)[inv]
    df["expected_spend"] = gamma_gamma_expected_spend(gg, x, m)
    df["clv"] = customer_lifetime_value(bg, gg, x, t_x, T, m, q.months, q.discount_rate, q.period)
    return ClvFit(df, cal_end, bg, gg)


def validate(wh: Any, fit: ClvFit, holdout_end: date, period: str) -> ClvValidation:
    """Predicted vs actual repeat purchases in the holdout, per calibration frequency."""
    df = fit.customers
    days = (holdout_end - fit.calibration_end).days
    t_h = days / PERIOD_DAYS[period]
    actual = _holdout_counts(wh, fit.calibration_end, holdout_end)
    act = actual.reindex(df["user_id"]).fillna(0.0).to_numpy()
    x = df["frequency"].to_numpy()
    (ux, ut, uT), _w, inv = compress(x, df["recency"].to_numpy(), df["T"].to_numpy())
    pred = bgnbd_expected_purchases(fit.bgnbd, t_h, ux, ut, uT)[inv]
    buckets = []
    labels = np.where(x >= 7, "7+", x.astype(int).astype(str))
    for label in [str(i) for i in range(7)] + ["7+"]:
        sel = labels == label
        if sel.any():
            buckets.append(
                ValidationBucket(
                    frequency=label,
                    users=int(sel.sum()),
                    actual=float(act[sel].mean()),
                    predicted=float(pred[sel].mean()),
                )
            )
    a_tot, p_tot = float(act.sum()), float(pred.sum())
    return ClvValidation(
        holdout_end=holdout_end,
        holdout_periods=t_h,
        actual_total=a_tot,
        predicted_total=p_tot,
        error_pct=(p_tot - a_tot) / a_tot * 100.0 if a_tot else 0.0,
        buckets=buckets,
    )


def run_clv(wh: Any, q: ClvQuery) -> ClvResult:
    return clv_result(wh, q, fit_clv(wh, q))


def clv_result(wh: Any, q: ClvQuery, fit: ClvFit) -> ClvResult:
    """The typed result of a fit (kept apart so the CLI can also export the same fit)."""
    df = fit.customers
    validation = None
    if q.holdout_end is not None:
        if q.holdout_end <= fit.calibration_end:
            raise YunyingError(
                "clv.bad_holdout", holdout=str(q.holdout_end), end=str(fit.calibration_end)
            )
        validation = validate(wh, fit, q.holdout_end, q.period)
    top = df.sort_values(["clv", "user_id"], ascending=[False, True]).head(q.top)
    bg, gg = fit.bgnbd, fit.gamma_gamma
    return ClvResult(
        calibration_end=fit.calibration_end,
        period=q.period,
        horizon=q.horizon,
        months=q.months,
        discount_rate=q.discount_rate,
        customers=len(df),
        repeat_customers=int((df["frequency"] > 0).sum()),
        model=ClvModel(
            bgnbd=BgNbdModel(
                r=bg.r, alpha=bg.alpha, a=bg.a, b=bg.b, log_likelihood=bg.log_likelihood
            ),
            gamma_gamma=GammaGammaModel(p=gg.p, q=gg.q, v=gg.v, log_likelihood=gg.log_likelihood),
        ),
        expected_purchases_total=float(df["expected_purchases"].sum()),
        clv_total=float(df["clv"].sum()),
        clv_mean=float(df["clv"].mean()),
        top_customers=[
            ClvCustomer(
                user_id=str(r.user_id),
                frequency=int(r.frequency),
                recency=float(r.recency),
                T=float(r.T),
                monetary=round(float(r.monetary), 2),
                p_alive=float(r.p_alive),
                expected_purchases=float(r.expected_purchases),
                expected_spend=float(r.expected_spend),
                clv=float(r.clv),
            )
            for r in top.itertuples(index=False)
        ],
        validation=validation,
    )


EXPORT_COLUMNS = (
    "user_id",
    "frequency",
    "recency",
    "T",
    "monetary",
    "p_alive",
    "expected_purchases",
    "expected_spend",
    "clv",
)


def export_clv_users(fit: ClvFit, path: str | Path, min_clv: float | None = None) -> int:
    """Per-customer predictions as CSV (``user_id`` first, so it loads as a target list)."""
    from yunying import csvsafe

    df = fit.customers
    if min_clv is not None:
        df = df[df["clv"] >= min_clv]
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8", newline="") as fh:
            w = csvsafe.writer(fh)
            w.writerow(EXPORT_COLUMNS)
            for r in df.itertuples(index=False):
                w.writerow(
                    [
                        r.user_id,
                        int(r.frequency),
                        f"{r.recency:.4f}",
                        f"{r.T:.4f}",
                        f"{r.monetary:.2f}",
                        f"{r.p_alive:.6f}",
                        f"{r.expected_purchases:.6f}",
                        f"{r.expected_spend:.2f}",
                        f"{r.clv:.2f}",
                    ]
                )
    except (OSError, ValueError) as e:
        raise YunyingError("value.export_failed", path=str(p), reason=str(e)) from e
    return len(df)
