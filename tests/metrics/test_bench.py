"""The benchmark keeps working (tiny size): both sides run and agree on the values."""

from __future__ import annotations

import importlib.util
from pathlib import Path


def test_metrics_benchmark_on_a_tiny_size(tmp_path: Path) -> None:
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "metrics_bench.py"
    spec = importlib.util.spec_from_file_location("metrics_bench", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = mod.run(20_000, 14, 50, tmp_path)
    assert out["checks"] > 50 and out["yunying"] > 0 and out["sql"] > 0 and out["cache_hit"] < out["yunying"]
