"""Bayesian test on the effect: chance to beat control, credible interval, expected loss.

As GrowthBook's effect-based engine: the data give δ̂ ~ N(δ, v) (absolute or relative
lift, delta-method v); the prior on δ is flat or N(mean, sd²) (an informative prior
shrinks noisy lifts). The posterior is normal, so every quantity is closed form.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from yunying.experiments.stats.models import Difference, Statistic, effect, usable


@dataclass(frozen=True)
class Prior:
    """Normal prior on the effect; ``proper=False`` is the flat prior."""

    mean: float = 0.0
    sd: float = 0.3
    proper: bool = False


@dataclass(frozen=True)
class BayesianResult:
    post_mean: float
    post_sd: float
    chance_to_win: float
    ci_low: float
    ci_high: float
    # Expected loss (in effect units) of shipping the variant / of keeping control.
    risk_variant: float
    risk_control: float
    difference: Difference
    ok: bool = True


def posterior(point: float, variance: float, prior: Prior) -> tuple[float, float]:
    """Normal-normal conjugate update; the flat prior leaves the likelihood unchanged."""
    if not prior.proper:
        return point, math.sqrt(variance)
    prec = 1.0 / variance + 1.0 / prior.sd**2
    mean = (point / variance + prior.mean / prior.sd**2) / prec
    return mean, math.sqrt(1.0 / prec)


def expected_loss(mean: float, sd: float) -> tuple[float, float]:
    """E[max(0, -δ)] (loss if the variant ships) and E[max(0, δ)] (loss if it does not)."""
    if sd <= 0:
        return max(0.0, -mean), max(0.0, mean)
    u = mean / sd
    from scipy import stats  # not at import: experiment specs use Prior without statistics

    pdf, cdf_neg, cdf_pos = stats.norm.pdf(u), stats.norm.cdf(-u), stats.norm.cdf(u)
    return float(sd * pdf - mean * cdf_neg), float(sd * pdf + mean * cdf_pos)


def bayesian_test(
    a: Statistic,
    b: Statistic,
    difference: Difference = "relative",
    alpha: float = 0.05,
    prior: Prior | None = None,
) -> BayesianResult:
    """Posterior of b vs a; ``alpha`` sets the (1 - α) equal-tailed credible interval."""
    prior = prior or Prior()
    if not usable(a, b) or (difference == "relative" and a.unadjusted_mean == 0):
        return BayesianResult(0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, difference, ok=False)
    e = effect(a, b, difference)
    if e.variance <= 0:
        return BayesianResult(0.0, 0.0, 0.5, 0.0, 0.0, 0.0, 0.0, difference, ok=False)
    from scipy import stats

    m, s = posterior(e.point, e.variance, prior)
    ctw = float(stats.norm.sf(0.0, loc=m, scale=s))
    z = float(stats.norm.ppf(1 - alpha / 2))
    rv, rc = expected_loss(m, s)
    return BayesianResult(m, s, ctw, m - z * s, m + z * s, rv, rc, difference)
