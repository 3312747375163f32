"""Sample ratio mismatch: chi-square goodness of fit of units per variant to the weights.

A mismatch means assignment or logging is broken (bots, redirects, lost exposures), so
every effect in the experiment is suspect; the default threshold 0.001 keeps false
alarms rare on the many experiments a team runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from scipy import stats

SRM_THRESHOLD = 0.001


@dataclass(frozen=True)
class SrmResult:
    observed: list[int]
    expected: list[float]
    chi2: float
    p_value: float
    mismatch: bool


def srm_check(
    counts: Sequence[int], weights: Sequence[float], threshold: float = SRM_THRESHOLD
) -> SrmResult:
    """χ² test of ``counts`` against ``weights`` (normalised); flags p < threshold."""
    total = float(sum(counts))
    wsum = float(sum(weights))
    if total <= 0 or wsum <= 0 or len(counts) < 2:
        return SrmResult(list(counts), [0.0] * len(counts), 0.0, 1.0, False)
    expected = [total * w / wsum for w in weights]
    chi2 = sum((o - e) ** 2 / e for o, e in zip(counts, expected, strict=True) if e > 0)
    p = float(stats.chi2.sf(chi2, len(counts) - 1))
    return SrmResult(list(counts), expected, float(chi2), p, p < threshold)
