"""CUPED / regression adjustment with the same metric in the pre-exposure period.

θ is the pooled within-variant slope of y on x, so the adjusted difference equals the
treatment coefficient of the ANCOVA regression y ~ variant + x; the variance shrinks by
about 1 - ρ(x, y)². Because x is measured before exposure, adjustment cannot bias the
effect, only sharpen it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from yunying.experiments.stats.models import RegressionAdjusted, SampleMean


@dataclass(frozen=True)
class CupedInput:
    """Sums for one variant: post-period y, pre-period x, and Σxy."""

    n: int
    y_sum: float
    y_sum_squares: float
    x_sum: float
    x_sum_squares: float
    xy_sum: float


def pooled_theta(groups: Sequence[CupedInput]) -> float:
    """Σ within-group covariance / Σ within-group variance of x (0 when x is constant)."""
    cov = 0.0
    var = 0.0
    for g in groups:
        if g.n <= 1:
            continue
        cov += g.xy_sum - g.x_sum * g.y_sum / g.n
        var += g.x_sum_squares - g.x_sum**2 / g.n
    return cov / var if var > 0 else 0.0


def adjust(groups: Sequence[CupedInput], theta: float | None = None) -> list[RegressionAdjusted]:
    """Regression-adjusted statistics for every variant with one shared θ."""
    th = pooled_theta(groups) if theta is None else theta
    return [
        RegressionAdjusted(
            n=g.n,
            post=SampleMean(g.n, g.y_sum, g.y_sum_squares),
            pre=SampleMean(g.n, g.x_sum, g.x_sum_squares),
            post_pre_sum_of_products=g.xy_sum,
            theta=th,
        )
        for g in groups
    ]
