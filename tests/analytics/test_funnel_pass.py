"""The compiled ordered-funnel pass equals the NumPy level-by-level pass on the same keys."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from yunying.analytics import funnel_pass
from yunying.analytics.funnels import _reached_sorted
from yunying.analytics.sortkeys import U64, distinct_sorted, group_starts


@pytest.fixture(autouse=True, scope="module")
def _loaded() -> None:
    """Build and load the compiled pass (a no-op without Numba)."""
    funnel_pass.warm()


def numpy_pass(key: np.ndarray, n: int, kb: int, shift: int, w: int) -> tuple[list[int], list[int]]:
    """What ``_funnel_sorted`` computes without Numba: users per level, fastest spans."""
    reached, span = _reached_sorted(key, n, kb, w)
    users = [distinct_sorted(r >> U64(shift)) for r in reached]
    last = reached[-1]
    fastest = np.minimum.reduceat(span, group_starts(last, shift)) if last.size else span
    return users, [int(x) for x in fastest]


def keys(rows: list[tuple[int, int, int]], kb: int, tb: int) -> tuple[np.ndarray, int]:
    """Sorted keys ``user | time | step`` as ``_funnel_sorted`` packs them (spare bit)."""
    shift = tb + kb
    k = np.array(sorted((u << shift) | (t << kb) | c for u, t, c in rows), dtype=np.uint64)
    return k, shift


def run_both(rows: list[tuple[int, int, int]], n: int, w: int) -> None:
    kb = n.bit_length()
    tb = max(max((t for _, t, _ in rows), default=1), 1).bit_length() + 1
    key, shift = keys(rows, kb, tb)
    lim = U64((w << kb) | ((1 << kb) - 1))
    want = numpy_pass(key, n, kb, shift, w)
    for fn in (funnel_pass.reference, funnel_pass.compiled):
        if fn is None:
            continue
        users, spans = fn(key, n, kb, shift, lim)
        assert ([int(u) for u in users], [int(s) for s in spans]) == want


def test_by_hand() -> None:
    # user 1: 1@0, 2@5, 3@9 within w=10 -> level 3, span 9; a later start 1@20, 2@21
    # user 2: 2@0 without a start, then 1@3, 2@14 (outside w=10) -> level 1
    # user 3: 1@0, 1@4, 2@13 (within the second start), 3@14 -> level 3, span 10
    rows = [(1, 0, 1), (1, 5, 2), (1, 9, 3), (1, 20, 1), (1, 21, 2),
            (2, 0, 2), (2, 3, 1), (2, 14, 2),
            (3, 0, 1), (3, 4, 1), (3, 13, 2), (3, 14, 3)]
    kb, tb = 2, 6
    key, shift = keys(rows, kb, tb)
    lim = U64((10 << kb) | 3)
    for fn in (funnel_pass.reference, funnel_pass.compiled):
        if fn is None:
            continue
        users, spans = fn(key, 3, kb, shift, lim)
        assert list(users) == [3, 2, 2]
        assert list(spans) == [9, 10]
    run_both(rows, 3, 10)


def test_window_bound_is_inclusive_and_other_users_never_chain() -> None:
    rows = [(5, 0, 1), (5, 10, 2), (6, 11, 2), (7, 0, 1), (7, 11, 2)]
    run_both(rows, 2, 10)


def test_empty() -> None:
    run_both([], 3, 10)


@given(
    rows=st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 40), st.integers(1, 4)), max_size=60
    ),
    n=st.integers(2, 4),
    w=st.integers(0, 15),
)
@settings(max_examples=300, deadline=None)
def test_generated_rows(rows: list[tuple[int, int, int]], n: int, w: int) -> None:
    run_both([(u, t, min(c, n)) for u, t, c in rows], n, w)


def test_compiled_on_a_million_rows() -> None:
    if funnel_pass.compiled is None:
        pytest.skip("Numba is not installed")
    rng = np.random.default_rng(3)
    m = 1_000_000
    u = rng.integers(0, 50_000, m)
    t = rng.integers(0, 1 << 20, m)
    c = rng.integers(1, 6, m)
    kb, tb = 3, 21
    shift = tb + kb
    key = np.sort((u.astype(np.uint64) << U64(shift)) | (t.astype(np.uint64) << U64(kb)) | c.astype(np.uint64))
    w = 5000
    users, spans = funnel_pass.compiled(key, 5, kb, shift, U64((w << kb) | 7))
    assert ([int(x) for x in users], [int(s) for s in spans]) == numpy_pass(key, 5, kb, shift, w)
