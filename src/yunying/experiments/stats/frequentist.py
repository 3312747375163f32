"""Fixed-horizon frequentist tests: Welch t (Satterthwaite df) and the two-proportion z test.

Valid only when the sample size is fixed in advance and the result is read once; for
looking every day use :mod:`yunying.experiments.stats.sequential`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats

from yunying.experiments.stats.models import Difference, Statistic, effect, usable


@dataclass(frozen=True)
class FrequentistResult:
    """Effect of b vs a with its confidence interval and two-sided p-value."""

    point: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    df: float
    difference: Difference
    ok: bool = True


def _empty(difference: Difference) -> FrequentistResult:
    return FrequentistResult(0.0, 0.0, 0.0, 0.0, 1.0, 0.0, difference, ok=False)


def welch_test(
    a: Statistic, b: Statistic, difference: Difference = "relative", alpha: float = 0.05
) -> FrequentistResult:
    """Welch's t test with Satterthwaite df; relative lifts use delta-method variance."""
    if not usable(a, b) or (difference == "relative" and a.unadjusted_mean == 0):
        return _empty(difference)
    e = effect(a, b, difference)
    if e.variance <= 0:
        return _empty(difference)
    t = e.point / e.se
    p = 2.0 * float(stats.t.sf(abs(t), e.df))
    half = float(stats.t.ppf(1 - alpha / 2, e.df)) * e.se
    return FrequentistResult(e.point, e.se, e.point - half, e.point + half, p, e.df, difference)


def z_test(
    a: Statistic, b: Statistic, difference: Difference = "relative", alpha: float = 0.05
) -> FrequentistResult:
    """Normal (z) test on the same effect estimate: the large-sample version of Welch."""
    if not usable(a, b) or (difference == "relative" and a.unadjusted_mean == 0):
        return _empty(difference)
    e = effect(a, b, difference)
    if e.variance <= 0:
        return _empty(difference)
    z = e.point / e.se
    p = 2.0 * float(stats.norm.sf(abs(z)))
    half = float(stats.norm.ppf(1 - alpha / 2)) * e.se
    return FrequentistResult(
        e.point, e.se, e.point - half, e.point + half, p, math.inf, difference
    )


@dataclass(frozen=True)
class TwoProportionResult:
    """Classic two-proportion z test: pooled SE for the p-value, unpooled for the CI."""

    p_a: float
    p_b: float
    diff: float
    z: float
    p_value: float
    ci_low: float
    ci_high: float


def two_proportion_z(
    x_a: int, n_a: int, x_b: int, n_b: int, alpha: float = 0.05
) -> TwoProportionResult:
    """Two-sided z test of p_b - p_a (as statsmodels' ``proportions_ztest``)."""
    if n_a <= 0 or n_b <= 0:
        return TwoProportionResult(0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0)
    pa, pb = x_a / n_a, x_b / n_b
    pooled = (x_a + x_b) / (n_a + n_b)
    se_pooled = math.sqrt(pooled * (1 - pooled) * (1 / n_a + 1 / n_b))
    diff = pb - pa
    z = diff / se_pooled if se_pooled > 0 else 0.0
    p = 2.0 * float(stats.norm.sf(abs(z))) if se_pooled > 0 else 1.0
    se = math.sqrt(pa * (1 - pa) / n_a + pb * (1 - pb) / n_b)
    half = float(stats.norm.ppf(1 - alpha / 2)) * se
    return TwoProportionResult(pa, pb, diff, z, p, diff - half, diff + half)
