"""Power, sample size and minimum detectable effect for a two-arm test (normal approximation).

Answers "how many users do we need" before a test and "what could this test have
detected" after it, so a flat result is not mistaken for "no effect".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats


@dataclass(frozen=True)
class SampleSize:
    per_variant: int
    total: int


def _z(alpha: float, power: float) -> tuple[float, float]:
    return float(stats.norm.ppf(1 - alpha / 2)), float(stats.norm.ppf(power))


def sample_size_mean(
    sd: float, mde_abs: float, alpha: float = 0.05, power: float = 0.8, variants: int = 2
) -> SampleSize:
    """Units per arm to detect an absolute change ``mde_abs`` of a mean with std dev ``sd``."""
    za, zb = _z(alpha, power)
    n = math.ceil(2 * (za + zb) ** 2 * sd**2 / mde_abs**2)
    return SampleSize(n, n * variants)


def sample_size_proportion(
    baseline: float, mde_abs: float, alpha: float = 0.05, power: float = 0.8, variants: int = 2
) -> SampleSize:
    """Units per arm to move a conversion rate from ``baseline`` by ``mde_abs`` (absolute)."""
    p1, p2 = baseline, baseline + mde_abs
    pbar = (p1 + p2) / 2
    za, zb = _z(alpha, power)
    num = za * math.sqrt(2 * pbar * (1 - pbar)) + zb * math.sqrt(p1 * (1 - p1) + p2 * (1 - p2))
    n = math.ceil(num**2 / mde_abs**2)
    return SampleSize(n, n * variants)


def power_mean(sd: float, mde_abs: float, n_per_variant: int, alpha: float = 0.05) -> float:
    """Power of the two-sided test (both tails) at ``n_per_variant`` units per arm."""
    za = float(stats.norm.ppf(1 - alpha / 2))
    shift = abs(mde_abs) / (sd * math.sqrt(2.0 / n_per_variant))
    return float(stats.norm.cdf(shift - za) + stats.norm.cdf(-shift - za))


def mde_mean(sd: float, n_per_variant: int, alpha: float = 0.05, power: float = 0.8) -> float:
    """Smallest absolute change detectable with the given power at ``n_per_variant``."""
    za, zb = _z(alpha, power)
    return (za + zb) * sd * math.sqrt(2.0 / n_per_variant)


def mde_proportion(
    baseline: float, n_per_variant: int, alpha: float = 0.05, power: float = 0.8
) -> float:
    """Absolute MDE of a conversion rate (variance at the baseline rate)."""
    return mde_mean(math.sqrt(baseline * (1 - baseline)), n_per_variant, alpha, power)
