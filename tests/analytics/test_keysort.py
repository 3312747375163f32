"""The key sort equals ``np.sort`` on every path: the compiled radix sort, its plain-Python
form, and the NumPy method; and the choice between them is a measurement."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.support.fuzz import examples
from yunying.analytics import kernels, keysort

U64_MAX = (1 << 64) - 1


@pytest.fixture(autouse=True, scope="module")
def _loaded() -> None:
    kernels.warm()


@pytest.fixture(autouse=True)
def _fresh_choice(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("YUNYING_KEY_SORT", raising=False)
    keysort.reset()
    yield
    keysort.reset()


def _reference_radix(a: np.ndarray, in_place: bool = False) -> np.ndarray:
    """The radix sort as plain Python (what Numba compiles), for small inputs."""
    src = a if in_place else a.copy()
    tmp = np.empty_like(src)
    return tmp if kernels.reference.radix_sort(src, tmp) else src


def _compiled_radix(a: np.ndarray, in_place: bool = False) -> np.ndarray:
    ks = kernels.loaded()
    if ks is None:  # pragma: no cover - no Numba
        pytest.skip("Numba not installed")
    return keysort.sort_radix(a, in_place, ks=ks)


SORTS: dict[str, Callable[..., np.ndarray]] = {
    "numpy": keysort.sort_numpy,
    "radix-compiled": _compiled_radix,
    "radix-python": _reference_radix,
    "sort_u64": keysort.sort_u64,
}


def check(sort: Callable[..., np.ndarray], a: np.ndarray) -> None:
    want = np.sort(a)
    before = a.copy()
    got = sort(a)
    assert got.dtype == np.uint64
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(a, before)  # not in place unless asked
    got = sort(a.copy(), in_place=True)
    np.testing.assert_array_equal(got, want)


keys_strategy = hnp.arrays(
    np.uint64,
    st.integers(0, 300),
    elements=st.one_of(
        st.integers(0, U64_MAX),
        st.integers(0, 4),  # small values: many equal keys and single-digit passes
        st.sampled_from([0, U64_MAX, 1 << 63, (1 << 63) - 1, 1 << 55, (1 << 11) - 1]),
    ),
)


@pytest.mark.parametrize("name", sorted(SORTS))
@settings(max_examples=examples(60), deadline=None)
@given(a=keys_strategy)
def test_random_keys_equal_np_sort(name: str, a: np.ndarray) -> None:
    check(SORTS[name], a)


@pytest.mark.parametrize("name", sorted(SORTS))
@pytest.mark.parametrize(
    "case",
    ["empty", "one", "two-equal", "all-equal", "all-max", "sorted", "reversed", "sawtooth", "high-bits-only"],
)
def test_edge_cases_equal_np_sort(name: str, case: str) -> None:
    rng = np.random.default_rng(5)
    n = 5000
    r = rng.integers(0, U64_MAX, n, dtype=np.uint64, endpoint=True)
    a = {
        "empty": np.zeros(0, np.uint64),
        "one": np.array([12345678901234567], np.uint64),
        "two-equal": np.array([7, 7], np.uint64),
        "all-equal": np.full(n, 0xDEADBEEF, np.uint64),
        "all-max": np.full(n, U64_MAX, np.uint64),
        "sorted": np.sort(r),
        "reversed": np.sort(r)[::-1].copy(),
        "sawtooth": (np.arange(n, dtype=np.uint64) % np.uint64(97)) << np.uint64(40),
        "high-bits-only": r & ~np.uint64((1 << 50) - 1),
    }[case]
    check(SORTS[name], a)


@pytest.mark.parametrize("method", keysort.METHODS)
def test_large_keys_each_method(method: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Above the calibration size, forced to each method: packed-key shaped input."""
    monkeypatch.setenv("YUNYING_KEY_SORT", method)
    rng = np.random.default_rng(9)
    n = keysort.CALIBRATE_MIN + 17
    users = rng.integers(0, U64_MAX, 50_000, dtype=np.uint64, endpoint=True)
    key = (users[rng.integers(0, users.size, n)] >> np.uint64(24) << np.uint64(24)) | np.sort(
        rng.integers(0, 1 << 20, n).astype(np.uint64)
    ) << np.uint64(3)
    assert keysort.method_for(key) == method
    np.testing.assert_array_equal(keysort.sort_u64(key), np.sort(key))


def test_big_sorts_try_each_method_then_keep_the_faster() -> None:
    if kernels.loaded() is None:  # pragma: no cover - no Numba
        pytest.skip("Numba not installed")
    rng = np.random.default_rng(3)
    key = rng.integers(0, U64_MAX, keysort.CALIBRATE_MIN, dtype=np.uint64, endpoint=True)
    want = np.sort(key)
    used = []
    for _ in range(2 * keysort.TRIALS + 2):
        m = keysort.method_for(key)
        used.append(m)
        keysort._record(m, key.size, 0.001 if m == "radix" else 0.002)
    assert sorted(used[: 2 * keysort.TRIALS]) == sorted(list(keysort.METHODS) * keysort.TRIALS)
    assert used[2 * keysort.TRIALS :] == ["radix", "radix"]  # the lower time per key
    chosen, per_key = keysort.chosen()
    assert chosen == "radix" and set(per_key) == set(keysort.METHODS)
    keysort.reset()
    for _ in range(2 * keysort.TRIALS + 1):  # real sorts, timed for real
        np.testing.assert_array_equal(keysort.sort_u64(key), want)
    chosen, per_key = keysort.chosen()
    assert chosen in keysort.METHODS and chosen == min(per_key, key=lambda m: per_key[m])


def test_small_or_uncompiled_uses_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert keysort.method_for(np.zeros(10, np.uint64)) == "numpy"
    monkeypatch.setattr(kernels, "loaded", lambda: None)
    assert keysort.method_for(np.zeros(keysort.CALIBRATE_MIN, np.uint64)) == "numpy"
    assert keysort.sort_u64(np.zeros(keysort.CALIBRATE_MIN, np.uint64)).size == keysort.CALIBRATE_MIN
    assert keysort.chosen() == (None, {})  # nothing was timed


def test_only_uint64() -> None:
    with pytest.raises(TypeError):
        keysort.sort_u64(np.zeros(3, np.int64))


@pytest.mark.parametrize("typ", ["int8", "int32", "int64", "uint16", "uint64"])
def test_arrow_values_equal_to_numpy(typ: str) -> None:
    """``sortkeys.values`` reads Arrow's buffers (no pandas): slices, chunks and nulls."""
    import pyarrow as pa

    from yunying.analytics.sortkeys import values

    t = getattr(pa, typ)()
    a = pa.array([1, 2, 3, 4, 5], t)
    for col in (a, a.slice(2), pa.chunked_array([a.slice(1, 2), a.slice(3)]), pa.chunked_array([a.slice(1)])):
        np.testing.assert_array_equal(values(col), col.to_numpy(zero_copy_only=False))
        assert values(col).dtype == np.dtype(typ)
    with_null = pa.array([1, None, 3], t)
    np.testing.assert_array_equal(values(with_null), with_null.to_numpy(zero_copy_only=False))


def test_ts_array_equal_to_numpy() -> None:
    import datetime as dt

    import pyarrow as pa

    from yunying.analytics.sortkeys import ts_array

    a = pa.array([dt.datetime(2024, 1, 1), None, dt.datetime(2025, 1, 1, 0, 0, 1, 7000)], pa.timestamp("us"))
    for col in (a, a.slice(1), pa.chunked_array([a.slice(0, 1), a.slice(1)]), a.cast(pa.timestamp("ms"))):
        want = col.cast(pa.timestamp("us")).to_numpy(zero_copy_only=False).view(np.int64)
        np.testing.assert_array_equal(ts_array(col), want)
