"""Sufficient statistics per variant and the effect estimate every test starts from.

A metric in one variant is summarised by sums, so the warehouse never ships rows:
``SampleMean`` (n, Σy, Σy²), ``Proportion`` (n, conversions), ``Ratio`` (Σm, Σd and their
squares and cross product, delta method), ``RegressionAdjusted`` (CUPED: post and pre
period with their cross product and the shared slope θ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

Difference = Literal["absolute", "relative"]


class Statistic(Protocol):
    """What every test needs of a variant: units, mean, per-unit variance."""

    @property
    def n(self) -> int: ...

    @property
    def mean(self) -> float: ...

    @property
    def variance(self) -> float: ...

    @property
    def unadjusted_mean(self) -> float: ...


@dataclass(frozen=True)
class SampleMean:
    """A per-unit metric (revenue per user): sample variance with n - 1."""

    n: int
    sum: float
    sum_squares: float

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n > 0 else 0.0

    @property
    def variance(self) -> float:
        if self.n <= 1:
            return 0.0
        return max((self.sum_squares - self.sum**2 / self.n) / (self.n - 1), 0.0)

    @property
    def unadjusted_mean(self) -> float:
        return self.mean


@dataclass(frozen=True)
class Proportion:
    """A 0/1 metric per unit (converted or not): variance p(1 - p)."""

    n: int
    sum: float

    @property
    def mean(self) -> float:
        return self.sum / self.n if self.n > 0 else 0.0

    @property
    def variance(self) -> float:
        p = self.mean
        return p * (1.0 - p)

    @property
    def unadjusted_mean(self) -> float:
        return self.mean

    @property
    def sum_squares(self) -> float:
        return self.sum


@dataclass(frozen=True)
class Ratio:
    """Σm / Σd over units (e.g. revenue per order); variance by the delta method.

    ``variance`` is per unit, so ``variance / n`` is the variance of the ratio estimate.
    """

    n: int
    m_sum: float
    m_sum_squares: float
    d_sum: float
    d_sum_squares: float
    md_sum: float

    @property
    def mean(self) -> float:
        return self.m_sum / self.d_sum if self.d_sum != 0 else 0.0

    @property
    def variance(self) -> float:
        if self.n <= 1 or self.d_sum == 0:
            return 0.0
        n = self.n
        mu_m, mu_d = self.m_sum / n, self.d_sum / n
        var_m = (self.m_sum_squares - self.m_sum**2 / n) / (n - 1)
        var_d = (self.d_sum_squares - self.d_sum**2 / n) / (n - 1)
        cov = (self.md_sum - self.m_sum * self.d_sum / n) / (n - 1)
        v = (
            var_m / mu_d**2
            - 2 * cov * mu_m / mu_d**3
            + var_d * mu_m**2 / mu_d**4
        )
        return max(v, 0.0)

    @property
    def unadjusted_mean(self) -> float:
        return self.mean


@dataclass(frozen=True)
class RegressionAdjusted:
    """CUPED: y - θ·x with x the same metric in the pre-period and θ shared by all variants."""

    n: int
    post: SampleMean
    pre: SampleMean
    post_pre_sum_of_products: float
    theta: float

    @property
    def covariance(self) -> float:
        if self.n <= 1:
            return 0.0
        return (self.post_pre_sum_of_products - self.post.sum * self.pre.sum / self.n) / (
            self.n - 1
        )

    @property
    def mean(self) -> float:
        return self.post.mean - self.theta * self.pre.mean

    @property
    def variance(self) -> float:
        v = (
            self.post.variance
            + self.theta**2 * self.pre.variance
            - 2 * self.theta * self.covariance
        )
        return max(v, 0.0)

    @property
    def unadjusted_mean(self) -> float:
        return self.post.mean


@dataclass(frozen=True)
class EffectEstimate:
    """Difference treatment - control (absolute or relative to control) and its variance."""

    point: float
    variance: float
    df: float
    difference: Difference

    @property
    def se(self) -> float:
        return math.sqrt(self.variance)


def welch_df(a: Statistic, b: Statistic) -> float:
    """Welch-Satterthwaite degrees of freedom of the difference of two means."""
    va, vb = a.variance / a.n, b.variance / b.n
    den = (va**2 / (a.n - 1) if a.n > 1 else 0.0) + (vb**2 / (b.n - 1) if b.n > 1 else 0.0)
    if den == 0:
        return float(a.n + b.n - 2)
    return float((va + vb) ** 2 / den)


def effect(a: Statistic, b: Statistic, difference: Difference = "relative") -> EffectEstimate:
    """Point estimate and delta-method variance of b versus a.

    Relative lift (mb - ma)/ma has variance vb/ma² + va·mb²/ma⁴ (first-order delta
    method, treating the two means as independent).
    """
    ma, mb = a.mean, b.mean
    va, vb = a.variance / a.n, b.variance / b.n
    df = welch_df(a, b)
    if difference == "absolute":
        return EffectEstimate(mb - ma, va + vb, df, difference)
    ca, cb = a.unadjusted_mean, b.unadjusted_mean
    if ca == 0:
        return EffectEstimate(0.0, 0.0, df, difference)
    # With CUPED the adjusted difference is scaled by the unadjusted control mean.
    if isinstance(a, RegressionAdjusted):
        point = (mb - ma) / ca
        var = vb / ca**2 + va * cb**2 / ca**4
        return EffectEstimate(point, var, df, difference)
    return EffectEstimate(mb / ma - 1.0, vb / ma**2 + va * mb**2 / ma**4, df, difference)


def usable(a: Statistic, b: Statistic) -> bool:
    """Enough data for a test: two units per arm, some variance, a non-zero control mean."""
    return (
        a.n >= 2
        and b.n >= 2
        and (a.variance > 0 or b.variance > 0)
    )
