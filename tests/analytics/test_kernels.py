"""The compiled passes equal the NumPy passes on the same keys: the ordered funnel's
levels, and retention's cohort cells and D1/D7/D30 hits."""

from __future__ import annotations

from datetime import date
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.fuzz import examples
from yunying.analytics import kernels, retention, sortkeys
from yunying.analytics.common import DateRange, period_of_date
from yunying.analytics.funnels import _reached_sorted, _users_sorted
from yunying.analytics.retention import RetentionQuery
from yunying.analytics.sortkeys import U64, group_starts


@pytest.fixture(autouse=True, scope="module")
def _loaded() -> None:
    """Build and load the compiled pass (a no-op without Numba)."""
    kernels.warm()


def passes(name: str) -> list[Any]:
    """The plain-Python pass and, when Numba is installed, the compiled one."""
    out = [getattr(kernels.reference, name)]
    if kernels.compiled is not None:
        out.append(getattr(kernels.compiled, name))
    return out


def distinct_sorted(a: np.ndarray) -> int:
    """Number of distinct values of a sorted array."""
    return 1 + int(np.count_nonzero(a[1:] != a[:-1])) if a.size else 0


def level_counts(
    got: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray], n: int
) -> tuple[list[int], list[int]]:
    """Users reaching each step and the converted users' fastest spans, from per-user
    arrays (bucket order)."""
    _, lvl, _, span = got
    return [int((lvl >= j).sum()) for j in range(1, n + 1)], [int(s) for s in span[lvl == n]]


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
    per_user = _users_sorted(key, n, kb, shift, w)
    for fn in passes("funnel_users"):
        got = fn(key, n, kb, shift, lim)
        assert all(np.array_equal(a, b) for a, b in zip(got, per_user, strict=True))
        assert level_counts(got, n) == want


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
    for fn in passes("funnel_users"):
        ub, lvl, s0, spans = fn(key, 3, kb, shift, lim)
        assert ub.tolist() == [1, 2, 3] and lvl.tolist() == [3, 1, 3]
        assert s0.tolist() == [0, 3, 0]  # each user's first step-1 time
        assert spans.tolist() == [9, -1, 10]
        assert level_counts((ub, lvl, s0, spans), 3) == ([3, 2, 2], [9, 10])
    run_both(rows, 3, 10)


def test_window_bound_is_inclusive_and_other_users_never_chain() -> None:
    rows = [(5, 0, 1), (5, 10, 2), (6, 11, 2), (7, 0, 1), (7, 11, 2)]
    run_both(rows, 2, 10)


def test_empty() -> None:
    run_both([], 3, 10)


# (user, time, code) rows: users 0..6, times 0..40, codes 1..4
ROWS = st.lists(st.tuples(st.integers(0, 6), st.integers(0, 40), st.integers(1, 4)), max_size=60)


@given(
    rows=ROWS,
    n=st.integers(2, 4),
    w=st.integers(0, 15),
)
@settings(max_examples=examples(300), deadline=None)
def test_generated_rows(rows: list[tuple[int, int, int]], n: int, w: int) -> None:
    run_both([(u, t, min(c, n)) for u, t, c in rows], n, w)


def test_compiled_on_a_million_rows() -> None:
    if kernels.compiled is None:
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
    got = kernels.compiled.funnel_users(key, 5, kb, shift, U64((w << kb) | 7))
    assert level_counts(got, 5) == numpy_pass(key, 5, kb, shift, w)


def retention_numpy(
    key: np.ndarray, q: RetentionQuery, tb: int, day0: int, last_day: int | None,
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[list[int], list[tuple[int, int, int]], dict[int, int]]:
    with monkeypatch.context() as m:
        m.setattr(kernels, "compiled", None)
        days, cells, hits = retention._retention_part(key.copy(), q, tb, day0, last_day)
    return sorted(days.tolist()), sorted(map(tuple, cells.to_numpy().tolist())), hits


@given(
    rows=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 60), st.integers(1, 3)), max_size=80
    ),
    period=st.sampled_from(["day", "week", "month"]),
    periods=st.integers(1, 8),
    method=st.sampled_from(["classic", "rolling"]),
    last=st.one_of(st.none(), st.integers(0, 70)),
)
@settings(max_examples=examples(200), deadline=None)
def test_retention_cells_equal_numpy(
    rows: list[tuple[int, int, int]], period: str, periods: int, method: str, last: int | None
) -> None:
    """Users 0..5, relative days 0..60 (0 = before the range), codes start/return/both."""
    with pytest.MonkeyPatch.context() as mp:
        check_retention(rows, period, periods, method, last, mp)


def check_retention(
    rows: list[tuple[int, int, int]], period: str, periods: int, method: str,
    last: int | None, mp: pytest.MonkeyPatch,
) -> None:
    tb = 7
    shift = tb + retention._CODE_BITS
    key = np.array(sorted((u << shift) | (d << 2) | c for u, d, c in rows), dtype=np.uint64)
    q = RetentionQuery(
        start_event="s", period=period, periods=periods, method=method,  # type: ignore[arg-type]
        dates=DateRange(**{"from": date(2024, 1, 29), "to": date(2024, 3, 1)}),
    )
    day0 = period_of_date(q.dates.from_, "day")
    last_day = None if last is None else day0 - 1 + last
    want = retention_numpy(key, q, tb, day0, last_day, mp)
    period_of = retention._periods_of_days(
        np.arange(1 << tb, dtype=np.int64) + (day0 - 1), period
    ).astype(np.int32)
    ld = -(2**62) if last_day is None else last_day - (day0 - 1)
    for fn in passes("retention_cells"):
        days, counts, hits = fn(key, tb, shift, period_of, periods, method == "rolling", ld)
        if method == "rolling":
            counts = counts[:, ::-1].cumsum(axis=1)[:, ::-1]
        ci, ni = np.nonzero(counts)
        cells = sorted(zip((ci + period_of[0]).tolist(), ni.tolist(), counts[ci, ni].tolist(), strict=True))
        got = (
            sorted((days.astype(np.int64) + day0 - 1).tolist()),
            cells,
            dict(zip(retention.SUMMARY_DAYS, map(int, hits), strict=True)),
        )
        assert got == want


def test_retention_cells_by_hand(monkeypatch: pytest.MonkeyPatch) -> None:
    """Weekly, classic: user 1 starts on day 3 (before it, a return on day 1 that does not
    count) and returns on days 4 and 10; user 2 only returns; user 3 starts on day 0
    (before the range: no cohort)."""
    rows = [(1, 1, 1), (1, 3, 2), (1, 4, 1), (1, 10, 1), (2, 5, 1), (3, 0, 2), (3, 8, 1)]
    check_retention(rows, "week", 3, "classic", None, monkeypatch)
    tb = 7
    shift = tb + retention._CODE_BITS
    key = np.array(sorted((u << shift) | (d << 2) | c for u, d, c in rows), dtype=np.uint64)
    period_of = (np.arange(1 << tb, dtype=np.int32) + 4) // 7  # week of relative day
    for fn in passes("retention_cells"):
        days, counts, hits = fn(key, tb, shift, period_of, 3, False, 100)
        assert days.tolist() == [3]
        c = period_of[3] - period_of[0]
        assert counts[c].tolist() == [1, 1, 0, 0]  # day 4: same week; day 10: week +1
        assert hits.tolist() == [1, 1, 0]  # day 4 = D1, day 10 = D7


@st.composite
def batches(draw: st.DrawFn) -> tuple[list[str], list[int], list[int]]:
    """Short ids (0..8 bytes, some non-ASCII), µs times around t0, codes 0..3."""
    n = draw(st.integers(0, 40))
    ids = draw(st.lists(st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=4)
                        .filter(lambda x: len(x.encode()) <= 8), min_size=n, max_size=n))
    ts = draw(st.lists(st.integers(-3 * 86_400, 9 * 86_400).map(lambda x: x * 1_000_000)
                       | st.integers(-(10**12), 10**12), min_size=n, max_size=n))
    codes = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
    return ids, ts, codes


T0_US = 1_704_067_200_000_000


@given(
    b=batches(),
    spec=st.sampled_from([
        sortkeys.Low("ts", "k", T0_US, 1_000_000, 3, exact=True, drop_code=1, end_us=T0_US + 86_400 * 10**6),
        sortkeys.Low("ts", "k", T0_US, 1_000, 3, exact=True),
        sortkeys.Low("ts", "k", T0_US, 1, 2),
        sortkeys.Low("ts", "k", T0_US, 86_400 * 10**6, 2, cap=5),
    ]),
    code_type=st.sampled_from([pa.int32(), pa.int64()]),
)
@settings(max_examples=examples(300), deadline=None)
def test_pack_keys_equals_numpy(
    b: tuple[list[str], list[int], list[int]], spec: sortkeys.Low, code_type: pa.DataType
) -> None:
    """The compiled packing writes the keys and identities ``_pack`` and ``Low.numpy``
    give, and rejects inexact times exactly when NumPy does."""
    ids, ts, codes = b
    if spec.cap < 0:  # times before t0 occur only where the spec caps days (retention)
        ts = [abs(t) for t in ts]
    batch = pa.record_batch({
        "user_id": pa.array(ids, pa.string()),
        "ts": pa.array([T0_US + t for t in ts], pa.timestamp("us")),
        "k": pa.array(codes, code_type),
    })
    tagged = sortkeys._id_format([batch.column("user_id")])
    assert tagged is not None
    shift = 50  # time bits: up to 10**12 µs << 3
    ident_want = sortkeys._pack(batch.column("user_id"), tagged)
    try:
        low = spec.numpy(batch)
    except sortkeys.Inexact:
        low = None
    ch = batch.column("user_id")
    data = ch.buffers()[2]
    raw = np.zeros(9, np.uint8)  # at least 9 bytes (kernels.words), the ids' bytes first
    if data is not None:
        got = np.frombuffer(data, np.uint8)
        raw = np.concatenate([got, raw]) if got.size < 9 else got
    for fn in passes("pack_keys"):
        key = np.zeros(len(ids), U64)
        ident = np.zeros(len(ids), U64)
        with np.errstate(over="ignore"):
            ok = fn(sortkeys._offsets(ch), kernels.words(raw), raw, tagged, sortkeys.ts_array(batch.column("ts")), batch.column("k").to_numpy(),
                    spec.t0, spec.unit, spec.exact, spec.cap, spec.drop_code, spec.end_us,
                    spec.code_bits, shift, key, ident)
        assert ok == (low is not None)
        if ok:
            assert low is not None
            assert ident.tolist() == ident_want.tolist()
            want = ((ident_want >> U64(shift)) << U64(shift)) | low
            assert key.tolist() == want.tolist()


@given(
    h=st.lists(st.integers(0, 2**64 - 1) | st.integers(0, 40), max_size=60),
    bits=st.integers(1, 63),
)
@settings(max_examples=examples(300), deadline=None)
def test_distinct_and_clashes_equals_numpy(h: list[int], bits: int) -> None:
    """Distinct identities and whether any bucket holds two, as ``_identities`` finds them."""
    hs = np.sort(np.array(h, dtype=np.uint64))
    want_d = len(set(h))
    want_clash = len({x >> (64 - bits) for x in set(h)}) < want_d
    for fn in passes("distinct_and_clashes"):
        d, c = fn(hs, 64 - bits)
        assert d == want_d and (c > 0) == want_clash


@given(
    rows=ROWS,
    n=st.integers(2, 3),
    w=st.integers(0, 15),
)
@settings(max_examples=examples(300), deadline=None)
def test_exclusion_rows_equal_numpy(rows: list[tuple[int, int, int]], n: int, w: int) -> None:
    """Codes above n are exclusion events: a user with one within the window of their
    first step-1 row is left out, by both passes alike (and by hand below)."""
    kb = (n + 1).bit_length()
    tb = max(max((t for _, t, _ in rows), default=1), 1).bit_length() + 1
    key, shift = keys([(u, t, min(c, n + 1)) for u, t, c in rows], kb, tb)
    lim = U64((w << kb) | ((1 << kb) - 1))
    want = _users_sorted(key, n, kb, shift, w)
    for fn in passes("funnel_users"):
        got = fn(key, n, kb, shift, lim)
        assert all(np.array_equal(a, b) for a, b in zip(got, want, strict=True))


def test_exclusion_by_hand() -> None:
    # w=10, n=2, exclusion code 3. user 1: 1@5, excluded @15 (on the bound) -> dropped;
    # user 2: excluded @1 before its first step-1 @2, then 2@4 -> kept at level 2;
    # user 3: 1@0, excluded @11 (past the window) -> kept at level 1
    rows = [(1, 5, 1), (1, 15, 3), (2, 1, 3), (2, 2, 1), (2, 4, 2), (3, 0, 1), (3, 11, 3)]
    kb, tb = 2, 6
    key, shift = keys(rows, kb, tb)
    for fn in [*passes("funnel_users"), lambda k, n, kb, sh, lim: _users_sorted(k, n, kb, sh, 10)]:
        ub, lvl, _, _ = fn(key, 2, kb, shift, U64((10 << kb) | 3))
        assert ub.tolist() == [2, 3] and lvl.tolist() == [2, 1]
