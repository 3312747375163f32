"""Sorting the packed ``uint64`` keys (``sortkeys``) at a speed that holds on every CPU.

``np.sort`` of ``uint64`` dispatches to one SIMD kernel per CPU. Issue 15 reports NumPy
2.4's AVX-512 kernel about 5x slower than its AVX2 one on AMD Zen 4 (numpy/x86-simd-sort#6,
numpy/numpy#32690: 5.1M keys in 320–410 ms against 61–67 ms), while on the AMD EPYC of
family 26 that ``benchmarks/sort_bench.py`` last ran on the same kernel was the fastest
sort measured (about 30–45 ms). So no one method is right everywhere, and each process
measures:

- ``numpy``: ``np.sort`` (the only method a one-off CLI query has: it never imports Numba);
- ``radix``: an LSD radix sort by 11-bit digits compiled by Numba (``kernels.radix_sort``),
  whose speed is the memory's, not one instruction's; available once the compiled passes
  are loaded (``kernels.loaded``: ``yunying serve`` and the benchmarks warm them).

Sorts of at least ``CALIBRATE_MIN`` keys are timed, per key: the first ``TRIALS`` of them
try each method in turn (in a query the user keys and the identities sort at once, on
two threads, so the two methods meet the same load), and later ones take the method with
the lower median of its latest ``KEEP`` timings (the chosen one's keep coming). Timing real sorts costs
nothing and sees what a sample would not: the radix sort's time per key grows past the
caches (measured 20 ns at 1M keys, 30–36 ns at 4–5M, against np.sort's 21–26).
Measured alternatives that lost everywhere we ran them (``benchmarks/sort_bench.py``): a
NumPy LSD radix by 16-bit digits with ``argsort(kind="stable")`` (about 15x ``np.sort``
where ``np.sort`` is fast, and slower than a slow ``np.sort``), ``np.argsort`` then a
gather, and DuckDB's ``ORDER BY`` on the keys.

``YUNYING_KEY_SORT=numpy|radix`` forces a method (benchmarks, tests); ``radix`` without
Numba loaded warms it first.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections import deque

import numpy as np

from yunying.analytics import kernels

CALIBRATE_MIN = 1 << 20  # smaller sorts take a few ms whichever way
TRIALS = 2  # sorts per method before choosing
KEEP = 8  # the latest timings per method that the choice uses
METHODS = ("numpy", "radix")

_lock = threading.Lock()
_timings: dict[str, deque[float]] = {m: deque(maxlen=KEEP) for m in METHODS}
_tries = dict.fromkeys(METHODS, 0)  # trial sorts started (two threads may start at once)


def sort_numpy(a: np.ndarray, in_place: bool = False) -> np.ndarray:
    if in_place:
        a.sort()
        return a
    return np.sort(a)


def sort_radix(a: np.ndarray, in_place: bool = False, ks: kernels.Kernels | None = None) -> np.ndarray:
    """The compiled LSD radix sort (``ks`` or the loaded passes). ``in_place`` lets it
    use ``a`` as one of its two buffers: the result may be ``a`` or a new array."""
    ks = ks or kernels.loaded()
    if ks is None:
        kernels.warm()
        ks = kernels.loaded()
        if ks is None:  # pragma: no cover - no Numba in this install
            return sort_numpy(a, in_place)
    src = a if in_place else a.copy()
    if src.size < 2:
        return src
    tmp = np.empty_like(src)
    return tmp if ks.radix_sort(src, tmp) else src


def _choose() -> str:
    """The method with too few timings yet (``numpy`` first), else the lower median
    time per key."""
    with _lock:
        short = [m for m in METHODS if _tries[m] < TRIALS]
        if short:
            m = min(short, key=lambda m: _tries[m])
            _tries[m] += 1
            return m
        timed = [m for m in METHODS if _timings[m]]
        return min(timed, key=lambda m: statistics.median(_timings[m])) if timed else METHODS[0]


def _pick(keys: np.ndarray) -> tuple[str, bool]:
    """(the method for ``keys``, whether to time it)."""
    forced = os.environ.get("YUNYING_KEY_SORT", "").strip().lower()
    if forced in METHODS:
        return forced, False
    if keys.size < CALIBRATE_MIN or kernels.loaded() is None:
        return "numpy", False
    return _choose(), True


def method_for(keys: np.ndarray) -> str:
    """The method ``sort_u64`` uses for ``keys`` (a trial counts as started)."""
    return _pick(keys)[0]


def _record(method: str, n: int, seconds: float) -> None:
    with _lock:
        _timings[method].append(seconds * 1e9 / n)


def sort_u64(a: np.ndarray, in_place: bool = False) -> np.ndarray:
    """``a`` (``uint64``) sorted ascending, by the method measured fastest here.
    ``in_place`` allows reusing ``a``'s memory; always use the returned array."""
    if a.dtype != np.uint64:
        raise TypeError(f"sort_u64 sorts uint64 keys, not {a.dtype}")
    method, measured = _pick(a)
    t0 = time.perf_counter()
    out = sort_radix(a, in_place) if method == "radix" else sort_numpy(a, in_place)
    if measured:
        _record(method, a.size, time.perf_counter() - t0)
    return out


def chosen() -> tuple[str | None, dict[str, float]]:
    """(the method big sorts use now, or None while still trying both; the median ns per
    key of each method's latest big sorts)."""
    with _lock:
        med = {m: statistics.median(v) for m, v in _timings.items() if v}
        done = all(len(_timings[m]) >= TRIALS for m in METHODS)

    return (min(med, key=lambda m: med[m]) if done else None), med


def reset() -> None:
    """Forget the timings (tests)."""
    with _lock:
        for v in _timings.values():
            v.clear()
        for m in METHODS:
            _tries[m] = 0
