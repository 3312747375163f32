"""The benchmark keeps working (tiny size): the runner and plain pandas agree on every sum."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_experiment_benchmark_on_a_tiny_size() -> None:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "experiment_bench.py"
    spec = importlib.util.spec_from_file_location("experiment_bench", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.run(6000, verbose=False)  # asserts both sides' sums agree to 1e-6
    assert out["metrics"] == 20 and out["comparisons"] == 40
    assert out["yunying_s"] > 0 and out["pandas_s"] > 0
