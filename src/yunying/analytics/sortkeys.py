"""One sortable 64-bit key per event row, for the DuckDB fast paths of funnels and retention.

Grouping 5M rows by a VARCHAR ``user_id`` in DuckDB (hash aggregate or list collect) costs
more than the whole funnel does in ClickHouse. Instead DuckDB returns the rows (``user_id``
and one integer of time and code), NumPy builds per row one ``uint64`` packing
``(user bucket, time, code)`` — the top bits of a 64-bit user identity, then the time in
the coarsest exact unit, then a small code (step number, flags) — and sorts those plain
integers (``keysort.sort_u64``: far faster than ``argsort`` or ``lexsort``). Rows of one
user are then contiguous and ordered by (time, code).

The user identity is exact wherever it can be:

- ids of at most 8 bytes (``u0012345``, most numeric ids): their bytes, zero-padded, in
  64 bits are injective when no id holds a NUL byte (else ids of at most 7 bytes add
  their length), so no check is needed (``short_ids``); an odd multiplier (a bijection)
  spreads them over the buckets;
- longer ids: DuckDB's 64-bit ``hash``, and ``count(DISTINCT user_id)`` (a background
  thread while NumPy works) must equal the number of distinct hashes, otherwise two ids
  share a hash and the caller falls back to its exact string-keyed path
  (``hashes_and_check``).

Identities that share the bucket bits are moved to free buckets (``resolve_buckets``), so
after sorting a bucket is exactly one user.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, NamedTuple, TypeVar

import numpy as np
import pyarrow as pa

from yunying.analytics import kernels
from yunying.analytics.keysort import sort_u64

U64 = np.uint64
R = TypeVar("R")
_SPLIT_ROWS = 1_000_000  # below this one thread is as fast


def group_starts(sorted_keys: np.ndarray, shift: int) -> np.ndarray:
    """Positions where ``key >> shift`` (the user bucket) changes, in sorted keys."""
    if sorted_keys.size == 0:
        return np.zeros(0, np.int64)
    g = sorted_keys >> U64(shift)
    new = np.empty(g.size, bool)
    new[0] = True
    np.not_equal(g[1:], g[:-1], out=new[1:])
    return np.flatnonzero(new)


def resolve_buckets(
    key: np.ndarray, h: np.ndarray, bucket_bits: int, shift: int,
    moved: list[np.ndarray] | None = None,
) -> int:
    """Give every distinct full hash its own bucket (in place); return the number of
    distinct hashes, or -1 when there are not enough free buckets (the caller falls back).
    ``moved`` receives the moved hashes (sorted) and their new buckets.

    ``key >> shift`` holds the top ``bucket_bits`` bits of ``h``. Hashes that share those
    bits (about n²/2^(bits+1) pairs) get unused bucket values, so after sorting a bucket
    is exactly one hash.
    """
    if h.size == 0:
        return 0
    hs = sort_u64(h)
    first = np.empty(hs.size, bool)
    first[0] = True
    np.not_equal(hs[1:], hs[:-1], out=first[1:])
    uniq = hs[first]
    drop = U64(64 - bucket_bits)
    bu = uniq >> drop
    same = bu[1:] == bu[:-1]
    if not same.any():
        return int(uniq.size)
    clash = np.zeros(uniq.size, bool)
    clash[1:] |= same
    clash[:-1] |= same
    clash_h = uniq[clash]  # sorted
    clash_b = np.unique(bu[clash])
    rows = np.flatnonzero(np.isin(h >> drop, clash_b))
    rank = np.searchsorted(clash_h, h[rows])
    if bu.size + clash_h.size >= 1 << bucket_bits:
        return -1
    free = np.setdiff1d(np.arange(bu.size + clash_h.size, dtype=U64), bu)[: clash_h.size]
    low = U64((1 << shift) - 1)
    key[rows] = (free[rank] << U64(shift)) | (key[rows] & low)
    if moved is not None:
        moved[:] = [clash_h, free]
    return int(uniq.size)


_MIX = kernels.MIX  # odd, so multiplying modulo 2**64 is a bijection (one constant for both)
SHORT_ID_BYTES = 7


def fetch_arrow(wh: Any, sql: str) -> pa.Table:
    """Run ``sql`` on the warehouse's DuckDB connection; an Arrow table."""
    return wh.duck.sql(sql).to_arrow_table()


_LONG_IDS: dict[tuple[str, int], bool] = {}  # (warehouse file, events rows) -> long ids
_LONG_LOCK = threading.Lock()


def _ids_key(wh: Any) -> tuple[str, int]:
    rows = wh.duck.execute("SELECT count(*) FROM events").fetchall()[0][0]  # metadata: ~0.3 ms
    return str(wh.settings.warehouse_path), int(rows)


def long_ids(wh: Any) -> bool:
    """True when an earlier query on these events (same file, same row count) found user
    ids too long to pack (UUIDs…): ``fetch_rows`` then asks DuckDB for their hash instead
    of the id. Learnt from the fetched rows rather than by a scan of its own, so the first
    such query of a process pays the slower path; a stale answer costs speed only, since
    both fetches are exact."""
    key = _ids_key(wh)
    with _LONG_LOCK:
        return _LONG_IDS.get(key, False)


def _found_long_ids(wh: Any) -> None:
    key = _ids_key(wh)
    with _LONG_LOCK:
        if len(_LONG_IDS) > 64:  # one entry per warehouse state seen: keep it small
            _LONG_IDS.clear()
        _LONG_IDS[key] = True


def fetch_rows(wh: Any, sql: str) -> tuple[pa.Table, Future[int] | None]:
    """The rows of ``sql`` (with a ``user_id`` column) for ``row_keys``. Short ids come
    as they are; long ones (``long_ids``) as DuckDB's 64-bit ``hash`` in column ``h``,
    with, running beside the fetch, the exact count of distinct ids the distinct hashes
    must equal: no id text crosses into Python, and the hash is computed in the scan.
    """
    if not long_ids(wh):
        return fetch_arrow(wh, sql), None
    cur = wh.duck.cursor()
    pool = ThreadPoolExecutor(max_workers=1)

    def run() -> int:
        try:
            row = cur.execute(f"SELECT count(DISTINCT user_id) FROM ({sql}) AS _r").fetchall()
            return int(row[0][0]) if row else 0
        finally:
            cur.close()

    check = pool.submit(run)
    pool.shutdown(wait=False)
    return fetch_arrow(wh, f"SELECT hash(user_id) AS h, * EXCLUDE (user_id) FROM ({sql}) AS _r"), check


_MASKS = np.array([(1 << (8 * i)) - 1 for i in range(9)], U64)  # low i bytes
_TAGS = np.array([i << 56 for i in range(8)] + [0], U64)  # the length in the top byte


def _id_format(chunks: list[pa.Array]) -> bool | None:
    """How short ids pack exactly: False = bytes alone (ids of at most 8 bytes and no NUL
    byte, so zero padding is unambiguous), True = bytes and length (at most 7 bytes),
    None = they do not (null or longer ids)."""
    longest, nul = 0, False
    for c in chunks:
        if not len(c):
            continue
        if c.null_count:
            return None
        c = _string_chunk(c)
        off = _offsets(c)
        longest = max(longest, int(np.diff(off).max()))
        data = c.buffers()[2]
        if data is not None and not nul:
            nul = bool(np.any(np.frombuffer(data, np.uint8)[off[0] : off[-1]] == 0))
    if longest <= SHORT_ID_BYTES + 1 and not nul:
        return False
    return True if longest <= SHORT_ID_BYTES else None


def short_ids(col: pa.ChunkedArray, tagged: bool | None = None) -> np.ndarray | None:
    """An exact 64-bit identity per user id, mixed so its top bits spread evenly; None
    when an id is null or too long (then hash + check).

    The id's bytes (little-endian, zero-padded) are injective when no id has more than 8
    bytes or a NUL byte; otherwise ids of at most 7 bytes add their length in the top
    byte. One unaligned 8-byte read per id (a strided view over the Arrow data).
    ``tagged`` packs some of the ids an earlier call (or ``_short_keys``) packed, the
    same way.
    """
    chunks = col.chunks
    fmt = _id_format(chunks)
    if fmt is None:
        return None
    tagged = fmt if tagged is None else tagged
    half = len(chunks) // 2 if len(col) >= _SPLIT_ROWS else 0
    groups = [chunks[:half], chunks[half:]] if half else [chunks]
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        parts = [
            p for ps in pool.map(lambda cs: [_pack(c, tagged) for c in cs], groups) for p in ps
        ]
    return np.concatenate(parts) if parts else np.zeros(0, U64)


def _string_chunk(ch: pa.Array) -> pa.Array:
    return ch if ch.type in (pa.string(), pa.binary()) else ch.cast(pa.string())


def _offsets(ch: pa.Array) -> np.ndarray:
    return np.frombuffer(ch.buffers()[1], np.int32, len(ch) + 1, ch.offset * 4)


def _pack(ch: pa.Array, tagged: bool) -> np.ndarray:
    """``short_ids`` of one Arrow chunk whose ids fit (see ``_id_format``)."""
    ch = _string_chunk(ch)
    n = len(ch)
    off = _offsets(ch)
    ln = np.diff(off)
    data = ch.buffers()[2]
    raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
    first = off[:-1]
    safe = max(raw.size - 7, 0)  # 8-byte reads starting below this stay in the buffer
    inside = first < safe
    if inside.all():
        v = np.ndarray((safe,), dtype="<u8", buffer=raw, strides=(1,))[first]
    else:
        v = np.zeros(n, U64)
        if safe:
            at = np.ndarray((safe,), dtype="<u8", buffer=raw, strides=(1,))
            v[inside] = at[first[inside]]
    tail = np.flatnonzero(~inside)
    if tail.size:  # the last few ids: read from a padded copy of the buffer's end
        lo = int(first[tail].min())
        pad = np.zeros(raw.size - lo + 8, np.uint8)
        pad[: raw.size - lo] = raw[lo:]
        at = np.ndarray((pad.size - 7,), dtype="<u8", buffer=pad, strides=(1,))
        v[tail] = at[first[tail] - lo]
    v &= _MASKS[ln]
    if tagged:
        v |= _TAGS[ln]
    return v * _MIX


class Inexact(Exception):
    """A time is not a whole number of the assumed unit: pack again in a finer one."""


@dataclass(frozen=True)
class Low:
    """How a fetched row's time and code become a key's low bits (below the user bucket):
    ``low = q << code_bits | code`` with ``q = floor((time - t0) / unit)``.

    - ``exact``: raise ``Inexact`` when a time is not a whole number of ``unit``;
    - ``cap`` (days): ``q + 1`` at most ``cap``, and 0 for times before ``t0``;
    - ``drop_code``: that code becomes 0 (no code) at or after ``end_us``.

    The same arithmetic runs in NumPy (``numpy``) or compiled (``kernels.pack_keys``);
    either is cheaper than computing it in the query.
    """

    time: str  # the timestamp column
    code: str  # the integer code column
    t0: int  # µs since 1970
    unit: int  # µs
    code_bits: int
    exact: bool = False
    cap: int = -1  # -1: none
    drop_code: int = -1  # -1: none
    end_us: int = 0

    def numpy(self, b: pa.RecordBatch) -> np.ndarray:
        ts = ts_array(b.column(self.time))
        code = values(b.column(self.code)).astype(U64)
        if self.drop_code >= 0:
            code[(code == U64(self.drop_code)) & (ts >= self.end_us)] = 0
        t = ts - self.t0
        if self.cap >= 0:
            before = t < 0
            t //= self.unit
            t += 1
            np.minimum(t, self.cap, out=t)
            t[before] = 0
        elif self.unit > 1:
            q = t // self.unit
            if self.exact and not np.array_equal(q * self.unit, t):
                raise Inexact
            t = q
        u = t.view(U64)
        u <<= U64(self.code_bits)
        u |= code
        return u


def values(col: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A fixed-width Arrow column as NumPy: a view of its values buffer when it has no
    nulls. Arrow's own ``to_numpy`` imports pandas (0.2 s of a one-off CLI query)."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if col.null_count or not pa.types.is_integer(col.type):
        return col.to_numpy(zero_copy_only=False)  # type: ignore[no-any-return]
    dtype = np.dtype(f"{'u' if pa.types.is_unsigned_integer(col.type) else 'i'}{col.type.bit_width // 8}")
    return np.frombuffer(col.buffers()[1], dtype=dtype, count=len(col), offset=col.offset * dtype.itemsize)


def ts_array(col: pa.Array) -> np.ndarray:
    """Microseconds since 1970 of a timestamp column (a view when it has no nulls)."""
    if col.type != pa.timestamp("us"):
        col = col.cast(pa.timestamp("us"))
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    ints = col.view(pa.int64())
    if ints.null_count:  # as before: a null is NaT's int64 (never a row the keys keep)
        import pyarrow.compute as pc

        ints = pc.fill_null(ints, np.iinfo(np.int64).min)
    return values(ints)


class RowKeys(NamedTuple):
    """``row_keys``'s answer: per row the key and the identity; for long ids the pending
    distinct check; how short ids were packed (``_id_format``; None: hashed)."""

    key: np.ndarray
    ident: np.ndarray
    check: Future[int] | None
    tagged: bool | None

    def buckets(
        self, wh: Any, ids: pa.ChunkedArray, shift: int, moved: list[np.ndarray]
    ) -> np.ndarray | None:
        """The buckets the sorted keys give these user ids (ids among the fetched ones),
        ``moved`` as ``sort_keys`` filled it; None when they cannot be packed the same way."""
        if self.tagged is None:
            cur = wh.duck.cursor()
            try:
                cur.register("_yy_ids", pa.table({"user_id": ids}))
                got = cur.execute("SELECT hash(user_id) AS h FROM _yy_ids").fetchnumpy()["h"]
                h = np.asarray(got, dtype=U64)
            finally:
                cur.close()
        else:
            packed = short_ids(ids, self.tagged)
            if packed is None:
                return None
            h = packed
        b = h >> U64(shift)
        if moved and moved[0].size:
            idents, fresh = moved
            at = np.minimum(np.searchsorted(idents, h), idents.size - 1)
            hit = idents[at] == h
            b[hit] = fresh[at[hit]]
        return b


def row_keys(
    wh: Any, tab: pa.Table, shift: int, low: Low, check: Future[int] | None = None
) -> RowKeys:
    """Per fetched row (``fetch_rows``): ``key = identity bucket | low`` (``low`` must fit
    in ``shift`` bits), the identity, and, for long ids, the pending distinct check (its
    count must equal the distinct identities). Raises ``Inexact`` as ``low`` says."""
    batches = [b for b in tab.to_batches() if b.num_rows]
    if "h" in tab.column_names:  # hashed by the query; ``check`` is its distinct count
        h = (
            np.concatenate([values(b.column("h")) for b in batches])
            if batches else np.zeros(0, U64)
        ).astype(U64, copy=False)
        lows = _lows(batches, low)
    else:
        got = _short_keys(tab, shift, low)
        if got is not None:
            return RowKeys(got[0], got[1], None, got[2])
        _found_long_ids(wh)
        lows = _lows(batches, low)  # first: an Inexact retry should not start a 2nd check
        h, check = hashes_and_check(wh, tab)
    return RowKeys(((h >> U64(shift)) << U64(shift)) | lows, h, check, None)


def _lows(batches: list[pa.RecordBatch], low: Low) -> np.ndarray:
    return np.concatenate([low.numpy(b) for b in batches]) if batches else np.zeros(0, U64)


def _short_keys(
    tab: pa.Table, shift: int, low: Low
) -> tuple[np.ndarray, np.ndarray, bool] | None:
    """``row_keys`` for short ids, batch by batch on two threads into one output; one
    compiled pass per batch once the kernels are loaded."""
    batches = [b for b in tab.to_batches() if b.num_rows]
    starts = np.cumsum([0] + [b.num_rows for b in batches])
    key = np.empty(int(starts[-1]), U64)
    ident = np.empty(int(starts[-1]), U64)
    s = U64(shift)

    tagged = _id_format([b.column("user_id") for b in batches])
    if tagged is None:
        return None
    ks = kernels.loaded()

    def run(idx: list[int]) -> None:
        for i in idx:
            a, b = starts[i], starts[i + 1]
            batch = batches[i]
            ch = _string_chunk(batch.column("user_id"))
            data = ch.buffers()[2]
            raw = np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)
            if ks is not None and raw.size >= 9:
                ro = kernels.readonly
                raw = ro(raw)
                ok = ks.pack_keys(
                    ro(_offsets(ch)), kernels.words(raw), raw, tagged,
                    ro(ts_array(batch.column(low.time))),
                    ro(values(batch.column(low.code))),
                    low.t0, low.unit, low.exact, low.cap, low.drop_code, low.end_us,
                    low.code_bits, shift, key[a:b], ident[a:b],
                )
                if not ok:
                    raise Inexact
                continue
            h = _pack(batch.column("user_id"), tagged)
            lo = low.numpy(batch)
            ident[a:b] = h
            np.right_shift(h, s, out=h)
            np.left_shift(h, s, out=h)
            np.bitwise_or(h, lo, out=key[a:b])

    order = list(range(len(batches)))
    groups = [order[: len(order) // 2], order[len(order) // 2 :]] if key.size >= _SPLIT_ROWS else [order]
    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        list(pool.map(run, groups))
    return key, ident, tagged


def hashes_and_check(wh: Any, tab: pa.Table) -> tuple[np.ndarray, Future[int]]:
    """For ids that are not short: DuckDB's 64-bit ``hash`` of the fetched ids, and their
    exact distinct count (a background thread) to compare with the distinct hashes."""
    ids = tab.select(["user_id"])
    cur = wh.duck.cursor()
    cur.register("_yy_ids", ids)
    pool = ThreadPoolExecutor(max_workers=1)

    def run() -> int:
        try:
            row = cur.execute("SELECT count(DISTINCT user_id) FROM _yy_ids").fetchall()
            return int(row[0][0]) if row else 0
        finally:
            cur.unregister("_yy_ids")
            cur.close()

    fut = pool.submit(run)
    pool.shutdown(wait=False)
    own = wh.duck.cursor()
    try:
        own.register("_yy_ids", ids)
        h = np.asarray(own.execute("SELECT hash(user_id) AS h FROM _yy_ids").fetchnumpy()["h"])
    finally:
        own.close()
    return h, fut


def sort_keys(
    key: np.ndarray, h: np.ndarray, bucket_bits: int, shift: int,
    moved: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, int]:
    """The keys sorted with one identity per bucket, and the number of distinct
    identities (-1: not enough free buckets). ``moved`` receives the identities given a
    fresh bucket (sorted) and those buckets: the bucket of any other identity is its top
    bits.

    Big inputs sort on one thread while another sorts the identities to count them and
    find clashes (identities sharing the bucket bits: a few pairs per million users).
    The clashing users' rows are then cut out of the sorted keys and appended with fresh
    buckets above every used one, which keeps the order.
    """
    if key.size < _SPLIT_ROWS:
        return _resolve_then_sort(key, h, bucket_bits, shift, moved)
    with ThreadPoolExecutor(max_workers=1) as pool:
        fut = pool.submit(_identities, h, bucket_bits)
        done = sort_u64(key)
        distinct, clash_h = fut.result()
    if clash_h.size == 0:
        return done, distinct
    top = int(done[-1] >> U64(shift))
    if top + 1 + clash_h.size >= 1 << bucket_bits:  # no room above: the slow way
        del done
        return _resolve_then_sort(key, h, bucket_bits, shift, moved)
    drop = U64(64 - bucket_bits)
    low = U64((1 << shift) - 1)
    clash_b = np.unique(clash_h >> drop)
    lo = np.searchsorted(done, clash_b << U64(shift))
    hi = np.searchsorted(done, (clash_b << U64(shift)) | low, side="right")
    rows = np.flatnonzero(np.isin(h >> drop, clash_b))
    fresh = U64(top + 1) + np.searchsorted(clash_h, h[rows]).astype(U64)
    if moved is not None:
        moved[:] = [clash_h, U64(top + 1) + np.arange(clash_h.size, dtype=U64)]
    appended = sort_u64((fresh << U64(shift)) | (key[rows] & low), in_place=True)
    # close the gaps left by the moved rows in place (ranges are few), then append them
    at = int(lo[0])
    for i in range(lo.size):
        end = int(lo[i + 1]) if i + 1 < lo.size else done.size
        part = done[int(hi[i]) : end]
        done[at : at + part.size] = part
        at += part.size
    done[at:] = appended
    return done, distinct


def _resolve_then_sort(
    key: np.ndarray, h: np.ndarray, bucket_bits: int, shift: int,
    moved: list[np.ndarray] | None = None,
) -> tuple[np.ndarray, int]:
    distinct = resolve_buckets(key, h, bucket_bits, shift, moved)
    if distinct >= 0:
        key = sort_u64(key, in_place=True)
    return key, distinct


def _identities(h: np.ndarray, bucket_bits: int) -> tuple[int, np.ndarray]:
    """Distinct identities, and those (sorted) that share their bucket bits."""
    if h.size == 0:
        return 0, h[:0]
    hs = sort_u64(h)
    ks = kernels.loaded()
    if ks is not None:
        distinct, clashing = ks.distinct_and_clashes(hs, 64 - bucket_bits)
        if not clashing:
            return int(distinct), h[:0]
    first = np.empty(hs.size, bool)
    first[0] = True
    np.not_equal(hs[1:], hs[:-1], out=first[1:])
    uniq = hs[first]
    bu = uniq >> U64(64 - bucket_bits)
    same = bu[1:] == bu[:-1]
    if not same.any():
        return int(uniq.size), h[:0]
    clash = np.zeros(uniq.size, bool)
    clash[1:] |= same
    clash[:-1] |= same
    return int(uniq.size), uniq[clash]


def halves(key: np.ndarray, shift: int) -> list[np.ndarray]:
    """Sorted keys cut in two at a user boundary near the middle (views, no copy), to
    scan on two cores: a user's rows share the bits above ``shift``."""
    if key.size < _SPLIT_ROWS:
        return [key]
    mid = (key[key.size // 2] >> U64(shift)) << U64(shift)
    cut = int(np.searchsorted(key, mid))
    return [key[:cut], key[cut:]] if 0 < cut < key.size else [key]


def map_parts(fn: Callable[[np.ndarray], R], parts: list[np.ndarray]) -> list[R]:
    """``fn`` on each part, in threads (NumPy's sorts and ufuncs release the GIL)."""
    if len(parts) == 1:
        return [fn(parts[0])]
    with ThreadPoolExecutor(max_workers=len(parts)) as pool:
        return list(pool.map(fn, parts))
