"""Multiple-testing correction across metrics and variants: Holm and Benjamini-Hochberg.

With 20 metrics × 2 variants at α = 0.05 one "win" is expected by chance alone; Holm
controls the chance of any false win (FWER), BH the share of false wins (FDR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

Correction = Literal["none", "holm", "bh"]


def holm(p: Sequence[float]) -> list[float]:
    """Holm step-down adjusted p-values."""
    arr = np.asarray(p, dtype=float)
    m = arr.size
    if m == 0:
        return []
    order = np.argsort(arr, kind="stable")
    adj = np.maximum.accumulate((m - np.arange(m)) * arr[order])
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return [float(x) for x in out]


def benjamini_hochberg(p: Sequence[float]) -> list[float]:
    """Benjamini-Hochberg step-up adjusted p-values (q-values)."""
    arr = np.asarray(p, dtype=float)
    m = arr.size
    if m == 0:
        return []
    order = np.argsort(arr, kind="stable")
    ranked = arr[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(adj, 1.0)
    return [float(x) for x in out]


def adjust_p(p: Sequence[float], method: Correction) -> list[float]:
    if method == "holm":
        return holm(p)
    if method == "bh":
        return benjamini_hochberg(p)
    return [float(x) for x in p]
