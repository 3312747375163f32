"""Sequential testing: always-valid p-values and confidence sequences (mixture SPRT).

Howard et al. (2021) normal-mixture boundary, as GrowthBook uses it: with the effect
estimate δ̂ of variance v after N units, mixing over δ ~ N(0, τ²) with τ² = v·N·ρ² gives
the likelihood ratio Λ = exp(Nρ²z²/(2(1+Nρ²))) / √(1+Nρ²), z = δ̂/√v. Λ is a
non-negative martingale under no effect, so by Ville's inequality P(sup Λ ≥ 1/α) ≤ α:
rejecting whenever p = min(1, 1/Λ) ≤ α is safe however often anyone looks.
ρ is tuned so the interval is tightest at ``tuning_n`` total units.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from yunying.experiments.stats.models import Difference, Statistic, effect, usable


def rho(alpha: float, tuning_n: float) -> float:
    """Mixture scale that minimises the boundary width at ``tuning_n`` units."""
    a = -2.0 * math.log(alpha)
    return math.sqrt((a + math.log(a + 1.0)) / tuning_n)


def half_width(se: float, n_total: float, alpha: float, tuning_n: float) -> float:
    """Half-width of the (1 - α) confidence sequence for an estimate with standard error se."""
    r2 = rho(alpha, tuning_n) ** 2
    s2 = se**2 * n_total
    nr = n_total * r2
    return math.sqrt(s2) * math.sqrt(2.0 * (nr + 1.0) / (n_total**2 * r2) * math.log(math.sqrt(nr + 1.0) / alpha))


def always_valid_p(
    z: npt.ArrayLike, n_total: npt.ArrayLike, alpha: float, tuning_n: float
) -> npt.NDArray[np.float64]:
    """min(1, 1/Λ) for z statistics after n_total units (vectorised for simulations)."""
    z_arr = np.asarray(z, dtype=float)
    nr = np.asarray(n_total, dtype=float) * rho(alpha, tuning_n) ** 2
    log_inv = 0.5 * np.log1p(nr) - nr * z_arr**2 / (2.0 * (1.0 + nr))
    return np.minimum(1.0, np.exp(log_inv))


@dataclass(frozen=True)
class SequentialResult:
    point: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    difference: Difference
    tuning_n: float
    ok: bool = True


def sequential_test(
    a: Statistic,
    b: Statistic,
    difference: Difference = "relative",
    alpha: float = 0.05,
    tuning_n: float = 5000.0,
) -> SequentialResult:
    """Confidence sequence and always-valid p-value for b vs a; safe to read at any time."""
    if not usable(a, b) or (difference == "relative" and a.unadjusted_mean == 0):
        return SequentialResult(0.0, 0.0, 0.0, 0.0, 1.0, difference, tuning_n, ok=False)
    e = effect(a, b, difference)
    if e.variance <= 0:
        return SequentialResult(0.0, 0.0, 0.0, 0.0, 1.0, difference, tuning_n, ok=False)
    n = float(a.n + b.n)
    hw = half_width(e.se, n, alpha, tuning_n)
    p = float(always_valid_p(e.point / e.se, n, alpha, tuning_n))
    return SequentialResult(e.point, e.se, e.point - hw, e.point + hw, p, difference, tuning_n)
