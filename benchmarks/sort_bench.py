"""Key sort benchmark: every way we tried of sorting 64-bit keys, on this machine.

The funnel and retention fast paths sort one ``uint64`` per row (``yunying.analytics.
sortkeys``). ``np.sort``'s speed depends on which SIMD kernel NumPy picks for the CPU, so
``yunying.analytics.keysort`` measures in each process and picks between ``np.sort`` and a
Numba LSD radix sort by timing its big sorts. This prints, per key shape, the median of
``--repeat`` runs of each method, and what ``keysort`` chose after its trial sorts. Run it once as is and once with
``NPY_DISABLE_CPU_FEATURES="X86_V4 AVX512_ICL"`` to see what the AVX-512 kernel does.

    .venv/bin/python benchmarks/sort_bench.py [--rows 5100000] [--repeat 5] [--duckdb]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when imported by path
from machine import print_machine  # noqa: E402

U64 = np.uint64


def np_lsd16(a: np.ndarray) -> np.ndarray:
    """LSD radix in NumPy: 4 stable argsorts of 16-bit digits (NumPy radix-sorts those)."""
    out = a
    for d in range(4):
        digit = (out >> U64(16 * d)).astype(np.uint16)
        out = out[np.argsort(digit, kind="stable")]
    return out


def duckdb_order(a: np.ndarray) -> np.ndarray:
    import duckdb
    import pyarrow as pa

    con = duckdb.connect()
    con.register("_k", pa.table({"k": a}))
    out = np.asarray(con.execute("SELECT k FROM _k ORDER BY k").fetchnumpy()["k"])
    con.close()
    return out


def shapes(n: int, seed: int = 11) -> dict[str, np.ndarray]:
    """Random keys, and keys packed like the funnel's (user bucket | time | step) in the
    time order a query returns rows, for n/10 users."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 2**64 - 1, max(n // 10, 1), dtype=U64, endpoint=True)
    u = users[rng.integers(0, users.size, n)]
    ts = np.sort(rng.integers(0, 2**30, n)).astype(U64)
    packed = ((u >> U64(34)) << U64(34)) | (ts << U64(4)) | rng.integers(1, 6, n).astype(U64)
    return {
        "random uint64": rng.integers(0, 2**64 - 1, n, dtype=U64, endpoint=True),
        "packed, time order": packed,
        "packed, sorted": np.sort(packed),
    }


def median_ms(fn: Callable[[np.ndarray], np.ndarray], a: np.ndarray, repeat: int) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn(a)
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1000


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--rows", type=int, default=5_100_000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--duckdb", action="store_true", help="also DuckDB ORDER BY (slow: about 0.65 s)")
    a = ap.parse_args(argv)

    from yunying.analytics import kernels, keysort

    t0 = time.perf_counter()
    kernels.warm()
    print(f"Numba passes loaded in {time.perf_counter() - t0:.2f} s (compiled once per install)")
    methods: dict[str, Callable[[np.ndarray], np.ndarray]] = {
        "np.sort": np.sort,
        "Numba LSD radix (11-bit)": keysort.sort_radix,
        "NumPy LSD radix (16-bit)": np_lsd16,
        "np.argsort + gather": lambda x: x[np.argsort(x)],
    }
    if a.duckdb:
        methods["DuckDB ORDER BY"] = duckdb_order
    print(f"\n== sorting {a.rows:,} uint64 keys: median of {a.repeat} runs, ms ==")
    print(f"  {'keys':22s}" + "".join(f"{m:>27s}" for m in methods) + "   keysort picks")
    for name, keys in shapes(a.rows).items():
        want = np.sort(keys)
        row = []
        for fn in methods.values():
            assert np.array_equal(fn(keys), want)
            row.append(median_ms(fn, keys, a.repeat))
        keysort.reset()  # then as a process would: trial sorts of each method, then its pick
        for _ in range(2 * keysort.TRIALS + 1):
            keysort.sort_u64(keys)
        pick, per_key = keysort.chosen()
        trials = ", ".join(f"{k} {v:.1f}" for k, v in per_key.items())
        print(f"  {name:22s}" + "".join(f"{v:27.1f}" for v in row) + f"   {pick} (ns/key: {trials})")
    print()
    print_machine()


if __name__ == "__main__":
    main()
