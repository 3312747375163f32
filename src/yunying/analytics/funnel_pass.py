"""The ordered-funnel rule as one compiled pass over sorted 64-bit keys.

``funnels._reached_sorted`` applies the rule level by level with NumPy: about a dozen
full passes over the rows (masks, cumulative counts, gathers), the largest part of a
funnel's time after the query. Here the same rule runs once over the rows, compiled by
Numba: per level it keeps the start carried by the last row that reached that level;
a step-j row extends the chain of the last row that reached j-1 when it is the same
user's and within the window — one subtraction against ``lim``, exactly as in
``_reached_sorted`` (the key layout with its spare bit makes the two the same test).

Numba compiles once per install (about 1.5 s, cached on disk) and then needs about 0.35 s
per process to load that code: more than the pass saves on one funnel (about 45 ms on 5M
rows). So callers use it only once it is loaded (``loaded``), which long-lived processes
arrange at start-up (``warm_in_background``: ``yunying serve`` does); a one-off CLI
query keeps the NumPy pass and does not even import Numba (about 0.15 s). ``compiled``
is None until ``warm`` has built it, and stays None when Numba cannot be imported.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import numpy as np


def _levels(
    key: np.ndarray, n: int, kb: int, shift: int, lim: np.uint64
) -> tuple[np.ndarray, np.ndarray]:
    """(users reaching each step 1..n, the fastest complete chain's span per converted
    user in key time units), for keys sorted by (user bucket, time, step)."""
    users = np.zeros(n, np.int64)
    spans = np.empty(key.size, np.int64)
    m = 0
    best = np.zeros(n + 1, np.uint64)  # carried start of the last row reaching a level
    seen = np.zeros(n + 1, np.bool_)
    mask = np.uint64((1 << kb) - 1)
    sh = np.uint64(shift)
    ub = np.uint64(kb)
    cur = np.uint64(0)
    top = 0  # the current user's highest level
    fastest = -1
    for i in range(key.size):
        k = key[i]
        b = k >> sh
        if i == 0 or b != cur:
            for j in range(top):
                users[j] += 1
            if fastest >= 0:
                spans[m] = fastest
                m += 1
            cur = b
            top = 0
            fastest = -1
        c = int(k & mask)
        if c == 1:
            best[1] = k
            seen[1] = True
            if top < 1:
                top = 1
        elif 2 <= c <= n and seen[c - 1]:
            d = k - best[c - 1]
            if d <= lim:
                best[c] = best[c - 1]
                seen[c] = True
                if top < c:
                    top = c
                if c == n:
                    s = int(d >> ub)
                    if fastest < 0 or s < fastest:
                        fastest = s
    for j in range(top):
        users[j] += 1
    if fastest >= 0:
        spans[m] = fastest
        m += 1
    return users, spans[:m].copy()


compiled: Callable[..., tuple[np.ndarray, np.ndarray]] | None = None
_lock = threading.Lock()


def reference(
    key: np.ndarray, n: int, kb: int, shift: int, lim: np.uint64
) -> tuple[np.ndarray, np.ndarray]:
    """The same pass in plain Python (for tests on small inputs)."""
    return _levels(key, n, kb, shift, lim)


def loaded() -> Callable[..., tuple[np.ndarray, np.ndarray]] | None:
    """The compiled pass when it is loaded in this process (no load cost left), else None."""
    fn = compiled
    return fn if fn is not None and bool(getattr(fn, "signatures", None)) else None


def ready() -> bool:
    """True when ``loaded`` has the compiled pass."""
    return loaded() is not None


def warm() -> None:
    """Build the pass (importing Numba) and load (or, once per install, compile) it now,
    on a one-row input; nothing without Numba."""
    global compiled
    with _lock:
        if compiled is None:
            try:  # an optional speed-up: the NumPy pass gives the same answer without it
                from numba import njit
            except ImportError:  # pragma: no cover - depends on the install
                return
            compiled = njit(cache=True, nogil=True)(_levels)
        fn = compiled
    fn(np.zeros(1, np.uint64), 2, 2, 8, np.uint64(0))


def warm_in_background() -> None:
    """``warm`` on a daemon thread, for processes that will answer many queries."""
    if not ready():
        threading.Thread(target=warm, name="yunying-funnel-pass", daemon=True).start()
