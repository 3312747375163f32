"""Compiled passes over sorted 64-bit keys: the ordered funnel's levels and retention's
cohort cells.

``funnels._reached_sorted`` and ``retention._retention_part`` apply their rules with NumPy:
about a dozen full passes over the rows each (masks, cumulative counts, gathers), the
largest part of a query's time after the fetch. Here each rule runs once over the rows,
compiled by Numba, one user at a time.

- ``funnel_users``: per level it keeps the start carried by the last row that reached
  that level; a step-j row extends the chain of the last row that reached j-1 when it is
  the same user's and within the window — one subtraction against ``lim``, exactly as in
  ``_reached_sorted`` (the key layout with its spare bit makes the two the same test).
  It gives each entering user's level, first step-1 time and fastest chain: the counts,
  the time to convert, breakdowns and conversion over time all come from these.
- ``retention_cells``: a user's first start row gives the cohort day; their return rows
  (in day order) give the periods retained and the D1/D7/D30 hits.
- ``pack_keys``: a batch's short user ids and times into keys (``sortkeys``), in one pass
  instead of about fifteen NumPy ones; ``distinct_and_clashes`` counts the distinct sorted
  identities and those sharing a bucket, in one pass instead of five.

Numba compiles once per install (about 2.5 s, cached on disk) and then needs about
0.6 s per process to load the code: more than the passes save on one query (about
0.1 s on 5M rows). So callers use the passes only once loaded (``loaded``), which long-lived
processes arrange at start-up (``warm_in_background``: ``yunying serve`` does); a one-off
CLI query keeps the NumPy passes and does not even import Numba (about 0.15 s).
``compiled`` is None until ``warm`` has built it, and stays None without Numba.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np


def _funnel_users(
    key: np.ndarray, n: int, kb: int, shift: int, lim: np.uint64
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per user with a step-1 row, in key order: (bucket, highest step reached, time of
    the first step-1 row, the fastest complete chain's span or -1), times in key units,
    for keys sorted by (user bucket, time, step). Codes above ``n`` are exclusion events:
    a user with one in [first step-1 time, + window] is left out (``funnels._exclude``)."""
    size = key.size
    ub = np.empty(size, np.uint64)
    lvl = np.empty(size, np.int32)
    s0 = np.empty(size, np.int64)
    spans = np.empty(size, np.int64)
    m = 0
    best = np.zeros(n + 1, np.uint64)  # carried start of the last row reaching a level
    seen = np.zeros(n + 1, np.bool_)
    mask = np.uint64((1 << kb) - 1)
    tmask = np.uint64((1 << (shift - kb)) - 1)
    sh = np.uint64(shift)
    ub_ = np.uint64(kb)
    cur = np.uint64(0)
    top = 0  # the current user's highest level
    first = np.int64(-1)
    fastest = np.int64(-1)
    excluded = False
    wt = np.int64(lim >> ub_)  # the window in key time units
    for i in range(size + 1):
        b = key[i] >> sh if i < size else np.uint64(0)
        if i == size or i == 0 or b != cur:
            if i > 0 and top > 0 and not excluded:
                ub[m] = cur
                lvl[m] = top
                s0[m] = first
                spans[m] = fastest
                m += 1
            if i == size:
                break
            cur = b
            top = 0
            first = np.int64(-1)
            fastest = np.int64(-1)
            excluded = False
        k = key[i]
        c = int(k & mask)
        if c == 1:
            best[1] = k
            seen[1] = True
            if top < 1:
                top = 1
                first = np.int64((k >> ub_) & tmask)
        elif c > n:  # an exclusion event: the user is dropped when it falls in the window
            if first >= 0 and np.int64((k >> ub_) & tmask) - first <= wt:
                excluded = True
        elif 2 <= c <= n and seen[c - 1]:
            d = k - best[c - 1]  # across users this exceeds lim: see funnels._reached_sorted
            if d <= lim:
                best[c] = best[c - 1]
                seen[c] = True
                if top < c:
                    top = c
                if c == n:
                    s = np.int64(d >> ub_)
                    if fastest < 0 or s < fastest:
                        fastest = s
    return ub[:m].copy(), lvl[:m].copy(), s0[:m].copy(), spans[:m].copy()


def _retention_cells(
    key: np.ndarray, tb: int, shift: int, period_of: np.ndarray, periods: int,
    rolling: bool, last_rel: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cohort day of each cohort user, counts[cohort period - period_of[0], n], D1/D7/D30
    hits), for keys sorted by (user bucket, day, code); code bit 1 = start, bit 0 =
    return, day 0 = before the range.

    ``counts`` holds, for classic, users with a return in period n; for rolling, users
    whose last return is in period n (the caller sums from the right), with n capped at
    ``periods``. A hit needs day N to be observable: cohort day + N <= ``last_rel``.
    """
    size = key.size
    base = period_of[0]
    counts = np.zeros((period_of[period_of.size - 1] - base + 1, periods + 1), np.int64)
    days = np.empty(size, np.int32)
    hits = np.zeros(3, np.int64)
    sh = np.uint64(shift)
    dmask = np.uint64((1 << tb) - 1)
    m = 0
    i = 0
    while i < size:
        b = key[i] >> sh
        j = i + 1
        while j < size and (key[j] >> sh) == b:
            j += 1
        cd = np.int64(-1)
        for r in range(i, j):
            if key[r] & np.uint64(2):
                cd = np.int64((key[r] >> np.uint64(2)) & dmask)
                break
        if cd >= 1:
            days[m] = cd
            m += 1
            c = period_of[cd]
            last_n = -1
            h1 = h7 = h30 = False
            for r in range(i, j):
                k = key[r]
                if not k & np.uint64(1):
                    continue
                rd = np.int64((k >> np.uint64(2)) & dmask)
                n = period_of[rd] - c
                if n < 0:
                    continue
                dn = rd - cd
                if rolling:
                    last_n = n  # n never decreases along the rows
                    h1 = h1 or bool(dn >= 1)
                    h7 = h7 or bool(dn >= 7)
                    h30 = h30 or bool(dn >= 30)
                else:
                    if n <= periods and n != last_n:
                        counts[c - base, n] += 1
                        last_n = n
                    h1 = h1 or bool(dn == 1)
                    h7 = h7 or bool(dn == 7)
                    h30 = h30 or bool(dn == 30)
            if rolling and last_n >= 0:
                counts[c - base, min(last_n, periods)] += 1
            if h1 and cd + 1 <= last_rel:
                hits[0] += 1
            if h7 and cd + 7 <= last_rel:
                hits[1] += 1
            if h30 and cd + 30 <= last_rel:
                hits[2] += 1
        i = j
    return days[:m].copy(), counts, hits


MIX = np.uint64(0x9E3779B97F4A7C15)  # odd: multiplying modulo 2**64 is a bijection


def _pack_keys(
    offs: np.ndarray, at: np.ndarray, data: np.ndarray, tagged: bool, ts: np.ndarray,
    code: np.ndarray,
    t0: int, unit: int, exact: bool, cap: int, drop_code: int, end_us: int,
    code_bits: int, shift: int, key: np.ndarray, ident: np.ndarray,
) -> bool:
    """``sortkeys._pack`` and ``sortkeys.Low.numpy`` in one pass over a batch of short ids
    (at most 8 bytes, checked by the caller): writes ``ident`` and ``key``; False when
    ``exact`` and a time is not a whole number of ``unit``. ``at`` views ``data`` as
    8-byte words starting at every byte (``sortkeys.words``): one unaligned load per id,
    four times faster than reading its bytes one by one, which only the last ids do."""
    inv = 1.0 / unit
    sh = np.uint64(shift)
    cb = np.uint64(code_bits)
    for i in range(ts.size):
        s = offs[i]
        ln = offs[i + 1] - s
        if s < at.size:
            v = at[s] & ((np.uint64(1) << np.uint64(8 * ln)) - np.uint64(1)) if ln < 8 else at[s]
        else:
            v = np.uint64(0)
            for j in range(ln):
                v |= np.uint64(data[s + j]) << np.uint64(8 * j)
        if tagged:
            v |= np.uint64(ln) << np.uint64(56)
        h = v * MIX
        c = np.int64(code[i])
        if c == drop_code and ts[i] >= end_us:
            c = np.int64(0)
        t = np.int64(ts[i] - t0)
        q = np.int64(np.floor(t * inv))  # then corrected: exact integer division
        r = t - q * unit
        while r < 0:
            q -= 1
            r += unit
        while r >= unit:
            q += 1
            r -= unit
        if cap >= 0:
            q = np.int64(0) if t < 0 else np.minimum(q + 1, np.int64(cap))
        elif exact and r != 0:
            return False
        ident[i] = h
        key[i] = ((h >> sh) << sh) | (np.uint64(q) << cb) | np.uint64(c)
    return True


def _distinct_and_clashes(hs: np.ndarray, drop: int) -> tuple[int, int]:
    """For sorted identities: how many are distinct, and how many distinct neighbours
    share their bucket (``identity >> drop``); 0 means every bucket is one identity."""
    d = 0
    c = 0
    sh = np.uint64(drop)
    for i in range(hs.size):
        if i == 0 or hs[i] != hs[i - 1]:
            d += 1
            if i > 0 and (hs[i] >> sh) == (hs[i - 1] >> sh):
                c += 1
    return d, c


RADIX_BITS = 11  # 6 passes over 64 bits; 8 (8 passes) and 16 (cache misses) measured slower


def _radix_sort(a: np.ndarray, tmp: np.ndarray) -> bool:
    """LSD radix sort of ``uint64`` keys by 11-bit digits, ping-ponging between ``a`` and
    ``tmp`` (same size); True when the sorted keys ended in ``tmp``. One read pass builds
    every digit's histogram; a digit all keys share is skipped. Its speed is the memory's,
    not one SIMD kernel's (``keysort``)."""
    n = a.size
    bits = RADIX_BITS
    nd = (64 + bits - 1) // bits
    nb = 1 << bits
    mask = np.uint64(nb - 1)
    hist = np.zeros((nd, nb), np.int64)
    for i in range(n):
        v = a[i]
        for d in range(nd):
            hist[d, np.intp((v >> np.uint64(d * bits)) & mask)] += 1
    src = a
    dst = tmp
    in_tmp = False
    off = np.empty(nb, np.int64)
    for d in range(nd):
        h = hist[d]
        single = False
        for b in range(nb):
            if h[b] != 0:
                single = h[b] == n
                break
        if single or n < 2:
            continue
        total = 0
        for b in range(nb):
            off[b] = total
            total += h[b]
        sh = np.uint64(d * bits)
        for i in range(n):
            v = src[i]
            k = np.intp((v >> sh) & mask)
            dst[off[k]] = v
            off[k] += 1
        src, dst = dst, src
        in_tmp = not in_tmp
    return in_tmp


def readonly(a: np.ndarray) -> np.ndarray:
    """A read-only view: Arrow's zero-copy arrays are read-only, and Numba compiles
    read-only and writable inputs apart, so ``pack_keys`` always gets read-only ones (the
    kind ``warm`` loaded) instead of compiling again mid-query."""
    v = a.view()
    v.flags.writeable = False
    return v


def words(data: np.ndarray) -> np.ndarray:
    """The 8-byte little-endian words starting at each byte of ``data`` that has 7 more
    after it (a strided view, no copy). ``data`` must hold at least 9 bytes, so the view
    has two or more words and Numba types it as the one strided layout it compiled."""
    return np.ndarray((data.size - 7,), dtype="<u8", buffer=data, strides=(1,))


class Kernels(NamedTuple):
    """The passes, plain Python (``reference``) or compiled (``compiled``)."""

    funnel_users: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]
    retention_cells: Callable[..., tuple[np.ndarray, np.ndarray, np.ndarray]]
    pack_keys: Callable[..., bool]
    distinct_and_clashes: Callable[..., tuple[int, int]]
    radix_sort: Callable[[np.ndarray, np.ndarray], bool]


reference = Kernels(_funnel_users, _retention_cells, _pack_keys, _distinct_and_clashes, _radix_sort)  # for tests on small inputs
compiled: Kernels | None = None
_lock = threading.Lock()


def loaded() -> Kernels | None:
    """The compiled passes when they are loaded in this process (no load cost left)."""
    ks = compiled
    if ks is None or not all(getattr(f, "signatures", None) for f in ks):
        return None
    return ks


def ready() -> bool:
    """True when ``loaded`` has the compiled passes."""
    return loaded() is not None


def warm() -> None:
    """Build the passes (importing Numba) and load (or, once per install, compile) them
    now, on tiny inputs; nothing without Numba."""
    global compiled
    with _lock:
        if compiled is None:
            try:  # an optional speed-up: the NumPy passes give the same answers without it
                from numba import njit
            except ImportError:  # pragma: no cover - depends on the install
                return
            jit: Any = njit(cache=True, nogil=True)
            compiled = Kernels(*(jit(f) for f in reference))
        ks = compiled
    ks.funnel_users(np.zeros(1, np.uint64), 2, 2, 8, np.uint64(0))
    ks.retention_cells(np.zeros(1, np.uint64), 2, 4, np.zeros(4, np.int32), 1, False, 0)
    ks.distinct_and_clashes(np.zeros(2, np.uint64), 8)
    ks.radix_sort(np.arange(2, dtype=np.uint64), np.zeros(2, np.uint64))
    for code in (np.zeros(1, np.int32), np.zeros(1, np.int64)):  # funnel, retention codes
        data = readonly(np.zeros(9, np.uint8))
        ks.pack_keys(
            readonly(np.zeros(2, np.int32)), words(data), data, False,
            readonly(np.zeros(1, np.int64)), readonly(code),
            0, 1, False, -1, -1, 0, 2, 8, np.zeros(1, np.uint64), np.zeros(1, np.uint64),
        )


def warm_in_background() -> None:
    """``warm`` on a daemon thread, for processes that will answer many queries."""
    if not ready():
        threading.Thread(target=warm, name="yunying-kernels", daemon=True).start()
