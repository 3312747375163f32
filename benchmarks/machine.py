"""Where a benchmark ran: CPU model, SIMD features, core count and library versions.

Every script in ``benchmarks/`` prints ``describe()`` beside its figures, because the same
code can be several times faster or slower on another CPU (NumPy's AVX-512 sort of
``uint64`` on AMD Zen 4 is one example: see docs/analytics.md). ``python
benchmarks/machine.py`` prints it alone.
"""

from __future__ import annotations

import os
import platform
from importlib import metadata

# The flags of /proc/cpuinfo that decide which SIMD kernels NumPy, DuckDB and Numba use.
SIMD_FLAGS = (
    "sse4_2", "avx", "avx2", "fma", "bmi2",
    "avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl",
    "avx512_vbmi", "avx512_vbmi2", "avx512_vnni", "avx512_bitalg", "avx512_vpopcntdq",
    "avx512_bf16", "avx512_fp16", "amx_tile", "sve", "asimd",
)
LIBRARIES = ("numpy", "duckdb", "numba", "chdb", "pyarrow", "ibis-framework")
ENV_VARS = ("NPY_DISABLE_CPU_FEATURES", "OPENBLAS_CORETYPE", "NUMBA_DISABLE_JIT")


def cpu() -> tuple[str, list[str]]:
    """(CPU model, the SIMD features in ``SIMD_FLAGS`` that it has)."""
    model = platform.processor() or platform.machine()
    flags: set[str] = set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                name, _, value = line.partition(":")
                name = name.strip()
                if name in ("model name", "Hardware", "cpu model") and value.strip():
                    model = value.strip()
                elif name in ("flags", "Features"):
                    flags.update(value.split())
                if line.strip() == "" and flags:
                    break  # the first processor says it for all
    except OSError:
        pass
    return model, [f for f in SIMD_FLAGS if f in flags]


def cpu_family() -> str:
    """Vendor, family and model numbers (``AuthenticAMD 25/17`` is Zen 4), or ''."""
    info: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                if not line.strip():
                    break
                name, _, value = line.partition(":")
                info[name.strip()] = value.strip()
    except OSError:
        return ""
    if "vendor_id" not in info:
        return ""
    return f"{info['vendor_id']} family {info.get('cpu family', '?')} model {info.get('model', '?')}"


def versions() -> dict[str, str]:
    out = {}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def numpy_simd() -> str:
    """The SIMD targets NumPy found and uses in this process (after NPY_DISABLE_CPU_FEATURES)."""
    try:
        from numpy._core._multiarray_umath import __cpu_features__ as feats  # type: ignore[attr-defined]
    except ImportError:  # pragma: no cover - NumPy < 2
        return "?"
    wanted = ("AVX2", "AVX512F", "AVX512_SKX", "AVX512_ICL", "AVX512_SPR")
    return " ".join(f for f in wanted if feats.get(f)) or "none above baseline"


def describe() -> str:
    """A few lines saying where this ran, to print next to the figures."""
    model, simd = cpu()
    fam = cpu_family()
    libs = "  ".join(f"{k} {v}" for k, v in versions().items())
    env = "  ".join(f"{k}={os.environ[k]}" for k in ENV_VARS if k in os.environ) or "(none set)"
    try:
        load = "  load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:  # pragma: no cover - not on this platform
        load = ""
    return "\n".join(
        [
            f"machine : {model}{f' ({fam})' if fam else ''}, {os.cpu_count()} logical CPUs,"
            f" {platform.system()} {platform.machine()}",
            f"SIMD    : {' '.join(simd) or '-'}",
            f"NumPy uses: {numpy_simd()}",
            f"Python  : {platform.python_version()}  {libs}",
            f"env     : {env}{load}",
        ]
    )


def print_machine() -> None:
    print(describe(), flush=True)


if __name__ == "__main__":
    print_machine()
