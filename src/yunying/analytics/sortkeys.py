"""One sortable 64-bit key per event row, for the DuckDB fast paths of funnels and retention.

Grouping 5M rows by a VARCHAR ``user_id`` in DuckDB (hash aggregate or list collect) costs
more than the whole funnel does in ClickHouse. Instead DuckDB returns, per row, one
``UBIGINT`` packing ``(user bucket, time, code)`` — the top bits of ``hash(user_id)``, then
the time in the coarsest exact unit, then a small code (step number, flags) — and NumPy
sorts those plain integers (a vectorised sort, far faster than ``argsort`` or ``lexsort``).
Rows of one user are then contiguous and ordered by (time, code).

Hashing is lossy, so every answer built on these keys is checked, exactly:

- two users whose 64-bit hashes share the bucket bits are moved to free buckets
  (``resolve_buckets``, from the full hashes);
- ``count(DISTINCT user_id)`` (run by DuckDB on a second cursor while NumPy works) must
  equal the number of distinct full hashes, otherwise two user ids share a 64-bit hash
  and the caller falls back to its exact string-keyed path.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

U64 = np.uint64


def fetch(wh: Any, sql: str) -> dict[str, np.ndarray]:
    """Run ``sql`` on the warehouse's DuckDB connection; columns as NumPy arrays.

    ``execute`` materialises the result with all threads (a relation's ``sql()`` streams
    it through one)."""
    cols = wh.duck.execute(sql).fetchnumpy()
    return {k: np.asarray(v) for k, v in cols.items()}


def distinct_users(wh: Any, sql: str) -> Future[int]:
    """``count(DISTINCT user_id)`` of the rows of ``sql``, computed on a second DuckDB
    cursor in a background thread (DuckDB releases the GIL while NumPy sorts)."""
    cur = wh.duck.cursor()
    pool = ThreadPoolExecutor(max_workers=1)

    def run() -> int:
        try:
            row = cur.execute(f"SELECT count(DISTINCT user_id) FROM ({sql}) AS _d").fetchone()
            return int(row[0]) if row else 0
        finally:
            cur.close()

    fut = pool.submit(run)
    pool.shutdown(wait=False)
    return fut


def distinct_sorted(a: np.ndarray) -> int:
    """Number of distinct values of a sorted array."""
    if a.size == 0:
        return 0
    return 1 + int(np.count_nonzero(a[1:] != a[:-1]))


def group_starts(sorted_keys: np.ndarray, shift: int) -> np.ndarray:
    """Positions where ``key >> shift`` (the user bucket) changes, in sorted keys."""
    if sorted_keys.size == 0:
        return np.zeros(0, np.int64)
    g = sorted_keys >> U64(shift)
    new = np.empty(g.size, bool)
    new[0] = True
    np.not_equal(g[1:], g[:-1], out=new[1:])
    return np.flatnonzero(new)


def resolve_buckets(key: np.ndarray, h: np.ndarray, bucket_bits: int, shift: int) -> int:
    """Give every distinct full hash its own bucket (in place); return the number of
    distinct hashes, or -1 when there are not enough free buckets (the caller falls back).

    ``key >> shift`` holds the top ``bucket_bits`` bits of ``h``. Hashes that share those
    bits (about n²/2^(bits+1) pairs) get unused bucket values, so after sorting a bucket
    is exactly one hash.
    """
    if h.size == 0:
        return 0
    hs = np.sort(h)
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
    return int(uniq.size)
