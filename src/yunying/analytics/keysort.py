"""Sorting the packed ``uint64`` keys (``sortkeys``) at a speed that holds on every CPU.

``np.sort`` of ``uint64`` dispatches to one SIMD kernel per CPU. On AMD Zen 4 NumPy 2.4's
AVX-512 kernel is about 5x slower than its AVX2 one (numpy/x86-simd-sort#6,
numpy/numpy#32690: 5.1M keys in 320–410 ms against 61–67 ms), while on other AVX-512 CPUs
the same kernel is the fastest sort there is. So no one method is right everywhere, and
each process measures:

- ``numpy``: ``np.sort`` (the only method a one-off CLI query has: it never imports Numba);
- ``radix``: an LSD radix sort by 11-bit digits compiled by Numba (``kernels.radix_sort``),
  whose speed is the memory's, not one instruction's; available once the compiled passes
  are loaded (``kernels.loaded``: ``yunying serve`` and the benchmarks warm them).

The first sort of at least ``CALIBRATE_MIN`` keys with both methods available times each
on a slice of those keys (about 10 ms, once per process) and keeps the faster one.
Measured alternatives that lost everywhere we ran them (``benchmarks/sort_bench.py``): a
NumPy LSD radix by 16-bit digits with ``argsort(kind="stable")`` (about 15x ``np.sort``
where ``np.sort`` is fast, and slower than a slow ``np.sort``), ``np.argsort`` then a
gather, and DuckDB's ``ORDER BY`` on the keys.

``YUNYING_KEY_SORT=numpy|radix`` forces a method (benchmarks, tests); ``radix`` without
Numba loaded warms it first.
"""

from __future__ import annotations

import os
import threading
import time

import numpy as np

from yunying.analytics import kernels

CALIBRATE_MIN = 1 << 20  # smaller sorts take a few ms whichever way
SAMPLE = 1 << 18
METHODS = ("numpy", "radix")

_lock = threading.Lock()
_chosen: str | None = None
_timings: dict[str, float] = {}


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


def _best_ms(fn: object, sample: np.ndarray, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t0 = time.perf_counter()
        fn(sample)  # type: ignore[operator]
        best = min(best, time.perf_counter() - t0)
    return best * 1000


def calibrate(keys: np.ndarray) -> str:
    """Time both methods on a slice of ``keys`` and remember the faster (under a lock:
    concurrent first callers wait for one measurement)."""
    global _chosen
    with _lock:
        if _chosen is None:
            sample = np.ascontiguousarray(keys[:SAMPLE], dtype=np.uint64)
            ks = kernels.loaded()
            assert ks is not None
            _timings["numpy"] = _best_ms(np.sort, sample)
            _timings["radix"] = _best_ms(lambda x: sort_radix(x, ks=ks), sample)
            _chosen = min(METHODS, key=lambda m: _timings[m])
        return _chosen


def method_for(keys: np.ndarray) -> str:
    """The method ``sort_u64`` uses for ``keys``."""
    forced = os.environ.get("YUNYING_KEY_SORT", "").strip().lower()
    if forced in METHODS:
        return forced
    if keys.size < CALIBRATE_MIN or kernels.loaded() is None:
        return "numpy"
    return _chosen or calibrate(keys)


def sort_u64(a: np.ndarray, in_place: bool = False) -> np.ndarray:
    """``a`` (``uint64``) sorted ascending, by the method measured fastest here.
    ``in_place`` allows reusing ``a``'s memory; always use the returned array."""
    if a.dtype != np.uint64:
        raise TypeError(f"sort_u64 sorts uint64 keys, not {a.dtype}")
    if method_for(a) == "radix":
        return sort_radix(a, in_place)
    return sort_numpy(a, in_place)


def chosen() -> tuple[str | None, dict[str, float]]:
    """(the method calibration chose, or None before it ran; its sample timings in ms)."""
    return _chosen, dict(_timings)


def reset() -> None:
    """Forget the choice (tests)."""
    global _chosen
    with _lock:
        _chosen = None
        _timings.clear()
