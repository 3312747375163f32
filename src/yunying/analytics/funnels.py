"""Funnels (漏斗): how many users go through steps 1 → 2 → … within a conversion window.

``ordered`` (default) follows ClickHouse ``windowFunnel`` (default mode) exactly: an
attempt starts at a step-1 event, every later step must happen within the window of that
start (bound inclusive), steps at the same timestamp count in step order, a later step-1
event starts a new attempt and the user's best attempt wins. It is computed level by
level: for each step-k event, the latest start of a chain that reached step k-1 at or
before it (a running max over a window) — the same answer as ClickHouse's per-user state
machine because the start a chain carries only grows over time. The same Ibis
expressions run on DuckDB and Spark (``funnel_levels``, lazy: segments build on it).

``run_funnel`` on DuckDB answers an ``ordered`` funnel from sorted 64-bit keys
(``_funnel_sorted``, ``yunying.analytics.sortkeys``): one query returns the step rows
(user id, time, step), each row becomes ``(user bucket | time in the coarsest exact unit
| step)``, the integers are sorted and the same level-by-level rule runs over them (NumPy,
or compiled: ``yunying.analytics.kernels``) — no grouping on the VARCHAR user id, no
per-user lists. It yields each entering user's level, first step-1 time and fastest
chain, from which counts, time to convert, conversion over time and breakdowns follow.
Exclusion events ride along as one more code. When the key would not be exact the list
path (``_levels_ordered_duck``: one aggregate collects each user's step events as a sorted
list, NumPy runs the rule, the per-user result is registered back as a table) answers. Tests check every path against the generic expressions on generated data.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Literal, NamedTuple

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import BaseModel, Field

from yunying.analytics import kernels
from yunying.analytics.common import (
    MAX_FILTERS,
    OTHER,
    QUERY_CONFIG,
    Breakdown,
    DateRange,
    Grain,
    PropertyFilter,
    apply_filters,
    breakdown_column,
    bucket,
    engine_of,
    events_in_range,
    write_user_list,
    zone,
)
from yunying.analytics.sortkeys import (
    U64,
    Inexact,
    Low,
    fetch_rows,
    group_starts,
    halves,
    map_parts,
    row_keys,
    sort_keys,
)
from yunying.errors import YunyingError
from yunying.i18n import t as tr

FunnelMode = Literal["ordered", "strict", "unordered"]


MAX_WINDOW_DAYS = 366


class FunnelStep(BaseModel):
    """One step: an event name, optionally narrowed by property filters."""

    model_config = QUERY_CONFIG

    event: str = Field(min_length=1, max_length=256)
    filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    label: str | None = Field(default=None, max_length=256)

    @property
    def name(self) -> str:
        return self.label or self.event


class FunnelQuery(BaseModel):
    """A funnel: step-1 events fall in ``dates``; later steps may run ``window`` past ``to``."""

    model_config = QUERY_CONFIG

    steps: list[FunnelStep] = Field(min_length=2, max_length=20)
    dates: DateRange
    window_days: int = Field(default=14, ge=0, le=MAX_WINDOW_DAYS)
    # Overrides window_days when set (ClickHouse's window is in seconds); the same bound.
    window_seconds: int | None = Field(default=None, ge=0, le=MAX_WINDOW_DAYS * 86400)
    mode: FunnelMode = "ordered"
    filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    exclusions: list[FunnelStep] = Field(default_factory=list, max_length=20)
    breakdown: Breakdown | None = None
    interval: Grain | None = None
    time_to_convert: bool = True
    histogram_bins: int = Field(default=10, ge=1, le=100)

    @property
    def window(self) -> timedelta:
        if self.window_seconds is not None:
            return timedelta(seconds=self.window_seconds)
        return timedelta(days=self.window_days)


class StepCount(BaseModel):
    step: int
    name: str
    users: int
    conversion: float  # of step 1
    step_conversion: float  # of the previous step
    drop_off: int  # reached this step, not the next


class FunnelGroup(BaseModel):
    value: str
    steps: list[StepCount]


class HistogramBin(BaseModel):
    from_seconds: float
    to_seconds: float
    users: int


class TimeToConvert(BaseModel):
    users: int
    median_seconds: float | None
    p90_seconds: float | None
    histogram: list[HistogramBin]


class PeriodConversion(BaseModel):
    period: str
    entered: int
    converted: int
    rate: float


class FunnelResult(BaseModel):
    mode: FunnelMode
    window_seconds: int
    steps: list[StepCount]
    groups: list[FunnelGroup] = Field(default_factory=list)
    time_to_convert: TimeToConvert | None = None
    over_time: list[PeriodConversion] = Field(default_factory=list)

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [
            tr("funnel.col.group"), tr("funnel.col.step"), tr("funnel.col.name"),
            tr("funnel.col.users"), tr("funnel.col.conversion"),
            tr("funnel.col.step_conversion"), tr("funnel.col.drop_off"),
        ]
        rows: list[list[Any]] = []
        for g in [FunnelGroup(value=tr("funnel.all"), steps=self.steps), *self.groups]:
            for s in g.steps:
                rows.append([
                    g.value, s.step, s.name, s.users, f"{s.conversion:.2%}",
                    f"{s.step_conversion:.2%}", s.drop_off,
                ])
        return headers, rows


# ---------------------------------------------------------------------------------------
# per-user levels
# ---------------------------------------------------------------------------------------


def _iv(q: FunnelQuery) -> ir.IntervalScalar:
    """The window as an Ibis interval in seconds (a zero timedelta has no inferable unit)."""
    return ibis.interval(int(q.window.total_seconds()), unit="s")


def _step_cond(engine: str, t: ir.Table, step: FunnelStep) -> ir.BooleanValue:
    cond = t.event == step.event
    for f in step.filters:
        from yunying.analytics.common import filter_expr

        cond = cond & filter_expr(engine, t, f)
    return cond  # type: ignore[no-any-return]


def _base(wh: Any, q: FunnelQuery) -> ir.Table:
    """Events that can matter: in range (+window), globally filtered, of a step event."""
    engine = engine_of(wh)
    start, end = q.dates.utc_bounds(wh.settings.timezone)
    t = wh.table("events")
    t = t.filter(t.ts >= start, t.ts <= end + q.window)
    t = apply_filters(engine, t, q.filters)
    if q.mode != "strict":
        t = t.filter(t.event.isin(sorted({s.event for s in q.steps})))
    return t


def _entries(wh: Any, q: FunnelQuery, t: ir.Table) -> ir.Table:
    """One row per (event, matching step): user_id, ts, k (1-based), step-1 only in range."""
    engine = engine_of(wh)
    start, end = q.dates.utc_bounds(wh.settings.timezone)
    parts = []
    for k, step in enumerate(q.steps, start=1):
        cond = _step_cond(engine, t, step)
        if k == 1:
            cond = cond & (t.ts < end)
        parts.append(t.filter(cond).select("user_id", "ts", k=ibis.literal(k, type="int32")))
    return ibis.union(*parts, distinct=False)


def _entries_single(wh: Any, q: FunnelQuery, t: ir.Table) -> ir.Table | None:
    """``_entries`` in one scan when every event matches at most one step (distinct step
    events, no step filters); None otherwise."""
    events = [s.event for s in q.steps]
    if len(set(events)) != len(events) or any(s.filters for s in q.steps):
        return None
    _, end = q.dates.utc_bounds(wh.settings.timezone)
    k = ibis.cases(*[(t.event == ev, i) for i, ev in enumerate(events, start=1)])
    t = t.filter(t.event.isin(events), (t.event != events[0]) | (t.ts < end))
    return t.select("user_id", "ts", k=k.cast("int32"))


def _reaching(lvl: ir.Table, k: int, n: int) -> ir.Table:
    """Rows (``user_id``, ``ts``, ``start``) of chains reaching step k as (user_id, k, ttc):
    the time to convert only at the last step."""
    ttc = (lvl.ts.epoch_seconds() - lvl.start.epoch_seconds()).cast("float64")
    return lvl.select(
        "user_id",
        k=ibis.literal(k, type="int32"),
        ttc=ttc if k == n else ibis.null("float64"),
    )


def _best_level(per_level: list[ir.Table]) -> ir.Table:
    """Per user: the highest step reached and the fastest complete chain."""
    allk = ibis.union(*per_level, distinct=False)
    return allk.group_by("user_id").aggregate(level=allk.k.max(), ttc_seconds=allk.ttc.min())


def _levels_ordered(wh: Any, q: FunnelQuery, t: ir.Table) -> ir.Table:
    """Generic Ibis path: user_id, level, ttc_seconds (fastest complete chain), start."""
    e = _entries(wh, q, t)
    w = _iv(q)
    lvl = e.filter(e.k == 1).select("user_id", "ts", start=e.ts)
    n = len(q.steps)
    per_level = [_reaching(lvl, 1, n)]
    for k in range(2, n + 1):
        prev = lvl.select("user_id", "ts", "start", kind=ibis.literal(0, type="int8"))
        cand = e.filter(e.k == k).select(
            "user_id", "ts", start=ibis.null(e.ts.type()), kind=ibis.literal(1, type="int8")
        )
        u = ibis.union(prev, cand, distinct=False)
        win = ibis.window(
            group_by=u.user_id, order_by=[u.ts, u.kind], preceding=None, following=0
        )
        u = u.mutate(best=u.start.max().over(win))
        lvl = u.filter(u.kind == 1, u.best.notnull(), u.ts <= u.best + w).select(
            "user_id", "ts", start=u.best
        )
        per_level.append(_reaching(lvl, k, n))
    return _best_level(per_level)


@ibis.udf.scalar.builtin(name="epoch_us")
def _epoch_us(ts: dt.Timestamp()) -> dt.Int64():  # type: ignore[valid-type, empty-body]
    """DuckDB ``epoch_us``: microseconds since 1970 (exact, unlike a float epoch)."""


@ibis.udf.scalar.builtin(name="list_position")
def _list_position(items: dt.Array(dt.string), x: str) -> dt.Int64():  # type: ignore[valid-type, empty-body]
    """DuckDB ``list_position``: 1-based position of ``x`` in ``items``, NULL if absent."""


_K_BITS = 5  # step index packed in the low bits: up to 31 steps (FunnelQuery allows 20)


def _levels_ordered_duck(wh: Any, q: FunnelQuery, t: ir.Table) -> ir.Table:
    """DuckDB path of ``_levels_ordered`` (same answer): one aggregate + NumPy, see module doc.

    Executes now (one query) and returns the per-user result as an in-memory table.
    """
    e = _entries_single(wh, q, t)
    if e is None:
        e = _entries(wh, q, t)
    e = e.select("user_id", x=_epoch_us(e.ts) * (1 << _K_BITS) + e.k.cast("int64"))
    per = e.group_by("user_id").aggregate(xs=e.x.collect())
    per = per.select("user_id", xs=per.xs.sort())
    tab = wh.to_pyarrow(per)
    schema = pa.schema(
        [("user_id", tab.schema.field("user_id").type), ("level", pa.int32()),
         ("ttc_seconds", pa.float64())]
    )
    if tab.num_rows == 0:
        return ibis.memtable(schema.empty_table())
    lists = tab.column("xs").combine_chunks()
    x = lists.flatten().to_numpy(zero_copy_only=False).astype(np.int64, copy=False)
    off = lists.offsets.to_numpy().astype(np.int64)
    off = off - off[0]
    k = x & ((1 << _K_BITS) - 1)
    ts = x >> _K_BITS
    seg = np.repeat(off[:-1], np.diff(off))  # first position of each row's user
    n = len(q.steps)
    w = int(q.window.total_seconds()) * 1_000_000
    level = np.where(k == 1, 1, 0).astype(np.int32)
    ttc = np.full(x.size, np.inf)
    carry = np.where(k == 1, np.arange(x.size), -1)  # position of the chain's start
    for j in range(2, n + 1):
        best = np.maximum.accumulate(carry)  # latest start reaching step j-1 so far
        ok = (k == j) & (best >= seg)
        idx = np.flatnonzero(ok)
        good = ts[idx] <= ts[best[idx]] + w
        idx = idx[good]
        level[idx] = j
        if j == n:
            ttc[idx] = (ts[idx] - ts[best[idx]]) / 1_000_000
        carry = np.full(x.size, -1)
        carry[idx] = best[idx]
    starts = off[:-1]
    nonempty = np.diff(off) > 0
    ulevel = np.zeros(len(starts), np.int32)
    uttc = np.full(len(starts), np.inf)
    ulevel[nonempty] = np.maximum.reduceat(level, starts[nonempty])
    uttc[nonempty] = np.minimum.reduceat(ttc, starts[nonempty])
    keep = ulevel >= 1
    out = pa.table(
        {
            "user_id": tab.column("user_id").filter(pa.array(keep)),
            "level": pa.array(ulevel[keep], pa.int32()),
            "ttc_seconds": pa.array(
                np.where(np.isinf(uttc[keep]), np.nan, uttc[keep]), pa.float64(),
                from_pandas=True,
            ),
        },
        schema=schema,
    )
    return ibis.memtable(out)


def _ts_us(d: datetime) -> int:
    """Microseconds since 1970 of a naive UTC datetime (exact integer arithmetic)."""
    return (d - _EPOCH) // timedelta(microseconds=1)


_EPOCH = datetime(1970, 1, 1)
_MIN_BUCKET_BITS = 24  # fewer bucket bits (µs times over weeks): use the list path
_UNITS = (1_000_000, 1_000, 1)  # seconds, milliseconds, microseconds


def _sorted_rows_sql(wh: Any, q: FunnelQuery) -> str:
    """SQL of the funnel rows: ``user_id``, ``ts``, ``k`` (1-based step).

    When each event matches at most one step, ``k`` is the event's position in the step
    list (``list_position``, NULL for other events) and rows are kept where it is set:
    DuckDB plans an ``IN`` list as a join, and a CASE costs a fifth more than the lookup.
    Exclusion events come as rows with code ``n + 1``. Step-1 rows past the range lose
    their step later, while packing keys
    (``sortkeys.Low.drop_code``): a filter ``k <> 1 OR ts < end`` here makes DuckDB copy
    every column of the 5M rows out of their vectors, which costs more than the scan.
    """
    engine = engine_of(wh)
    start, end = q.dates.utc_bounds(wh.settings.timezone)
    t = wh.table("events")
    t = apply_filters(engine, t.filter(t.ts >= start, t.ts <= end + q.window), q.filters)
    events = [s.event for s in q.steps]
    if len(set(events)) != len(events) or any(s.filters for s in q.steps):
        r = _entries(wh, q, _base(wh, q))
    else:
        k = _list_position(ibis.literal(events, type="array<string>"), t.event)
        r = t.select("user_id", "ts", k=k.cast("int32"))
        r = r.filter(r.k.notnull())
    if q.exclusions:  # their rows carry code n + 1 (``kernels.funnel_users``)
        cond = ibis.or_(*[_step_cond(engine, t, x) for x in q.exclusions])
        x = t.filter(cond).select("user_id", "ts", k=ibis.literal(len(q.steps) + 1, type="int32"))
        r = ibis.union(r, x, distinct=False)
    return str(wh.con.compile(r))


def _reached_sorted(
    key: np.ndarray, n: int, kb: int, w: int
) -> tuple[list[np.ndarray], np.ndarray]:
    """The ordered-funnel level pass over sorted keys (the ``_levels_ordered`` rule):
    for each step j, the keys of the rows where a chain reaches j (as chains, in row
    order); and for the last step, each chain's time from its start (key time units).

    A row reaching step j-1 carries its chain's start key; the carried keys never
    decrease along the rows (within a user the latest start only grows, and users are
    sorted), so the latest start before a step-j row is the carried key of the last
    carrier before it, found by a cumulative count. With one spare bit above the time,
    ``row key - start key <= (w << kb) + (2**kb - 1)`` holds exactly when both rows are
    the same user's and within the window (bound inclusive).
    """
    code = key.view(np.uint8)[::8] if sys.byteorder == "little" else key
    code = (code & code.dtype.type((1 << kb) - 1)).astype(np.uint8)
    lim = U64((w << kb) | ((1 << kb) - 1))
    rows = np.flatnonzero(code == 1)
    start = key[rows]
    reached = [start]
    span = np.zeros(0, np.int64)
    itype = np.int32 if key.size < 2**31 else np.int64
    marker = np.zeros(key.size, bool)  # reused: fresh pages per level cost page faults
    count = np.empty(key.size, itype)
    for j in range(2, n + 1):
        cand = np.flatnonzero(code == j)
        if rows.size == 0 or cand.size == 0:
            rows, start = cand[:0], start[:0]
            reached.append(start)
            continue
        marker.fill(False)
        marker[rows] = True
        np.cumsum(marker, dtype=itype, out=count)
        i: np.ndarray = count[cand] - 1  # the last carrier before each row
        has = i >= 0
        cand, ks = cand[has], start[i[has]]
        d = key[cand] - ks
        ok = d <= lim
        rows, start = cand[ok], ks[ok]
        reached.append(key[rows])
        if j == n:
            span = (d[ok] >> U64(kb)).astype(np.int64)
    return reached, span


def _users_sorted(
    key: np.ndarray, n: int, kb: int, shift: int, w: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``kernels.funnel_users`` with NumPy (from ``_reached_sorted``): per user with a
    step-1 row, (bucket, level, first step-1 time, fastest complete chain or -1)."""
    reached, span = _reached_sorted(key, n, kb, w)
    firsts = reached[0]
    if not firsts.size:
        z = np.zeros(0, np.int64)
        return np.zeros(0, U64), z.astype(np.int32), z, z
    sh = U64(shift)
    at = group_starts(firsts, shift)
    ub = firsts[at] >> sh
    s0 = ((firsts[at] >> U64(kb)) & U64((1 << (shift - kb)) - 1)).astype(np.int64)
    lvl = np.ones(ub.size, np.int32)
    for j in range(2, n + 1):
        r = reached[j - 1]
        if r.size:
            lvl[np.searchsorted(ub, r[group_starts(r, shift)] >> sh)] = j
    fastest = np.full(ub.size, -1, np.int64)
    last = reached[-1]
    if last.size:
        at = group_starts(last, shift)
        fastest[np.searchsorted(ub, last[at] >> sh)] = np.minimum.reduceat(span, at)
    xk = key[(key & U64((1 << kb) - 1)) > U64(n)]  # exclusion rows (code n + 1)
    if xk.size:  # drop users with one in [first step-1 time, + window]
        pos = np.minimum(np.searchsorted(ub, xk >> sh), ub.size - 1)
        xt = ((xk >> U64(kb)) & U64((1 << (shift - kb)) - 1)).astype(np.int64)
        hit = (ub[pos] == xk >> sh) & (xt >= s0[pos]) & (xt - s0[pos] <= w)
        keep = np.ones(ub.size, bool)
        keep[pos[hit]] = False
        return ub[keep], lvl[keep], s0[keep], fastest[keep]
    return ub, lvl, s0, fastest


class _PerUser(NamedTuple):
    """The sorted path's answer: one entry per user with a step-1 event in range."""

    bucket: np.ndarray  # sorted
    level: np.ndarray
    first_us: np.ndarray  # their first step-1 time, µs since 1970 (UTC)
    secs: np.ndarray  # fastest complete chain in seconds (NaN: not converted)
    bucket_of: Callable[[pa.ChunkedArray], np.ndarray | None]  # user ids -> buckets


def _funnel_sorted(wh: Any, q: FunnelQuery) -> _PerUser | None:
    """DuckDB, ordered mode: each entering user's level, first step-1 time and fastest
    complete chain, from one query and sorted 64-bit keys (``yunying.analytics.sortkeys``).
    None when the keys cannot be exact here (the time needs too many bits, or two long
    user ids share a 64-bit hash): the caller falls back.
    """
    start, end = q.dates.utc_bounds(wh.settings.timezone)
    n = len(q.steps)
    kb = (n + 1 if q.exclusions else n).bit_length()
    t0 = _ts_us(start)
    t_max = _ts_us(end + q.window) - t0  # rows have start <= ts <= end + window
    wsec = int(q.window.total_seconds())
    tab, check = fetch_rows(wh, _sorted_rows_sql(wh, q))
    end_us = _ts_us(end)
    for unit in _UNITS:  # the coarsest unit in which every time is a whole number
        tb = max(t_max // unit, 1).bit_length() + 1  # a spare bit: see _reached_sorted
        if 64 - tb - kb < _MIN_BUCKET_BITS:
            return None
        try:
            low = Low("ts", "k", t0, unit, kb, exact=True, drop_code=1, end_us=end_us)
            rk = row_keys(wh, tab, tb + kb, low, check)
            break
        except Inexact:
            continue
    else:  # pragma: no cover - microseconds are always whole
        return None
    shift = tb + kb
    del tab
    moved: list[np.ndarray] = []
    key, distinct = sort_keys(rk.key, rk.ident, 64 - shift, shift, moved)
    rk = rk._replace(key=np.zeros(0, U64), ident=np.zeros(0, U64))  # free them now
    if distinct < 0:
        return None
    w = wsec * (1_000_000 // unit)

    def part(k: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        ks = kernels.loaded()
        if ks is not None:  # the same rule in one compiled pass
            lim = U64((w << kb) | ((1 << kb) - 1))
            return ks.funnel_users(k, n, kb, shift, lim)  # type: ignore[no-any-return]
        return _users_sorted(k, n, kb, shift, w)

    done = map_parts(part, halves(key, shift))
    del key
    if rk.check is not None and rk.check.result() != distinct:
        return None  # two user ids share a 64-bit hash
    ub, lvl, s0, fastest = (np.concatenate([p[i] for p in done]) for i in range(4))
    secs = np.where(fastest >= 0, fastest * (unit / 1_000_000), np.nan)
    return _PerUser(
        ub, lvl, t0 + s0 * unit, secs,
        lambda ids: rk.buckets(wh, ids, shift, moved),
    )


def _levels_strict(wh: Any, q: FunnelQuery, t: ir.Table) -> ir.Table:
    """Strict: consecutive steps must be consecutive events of the user (no other between).

    Positions come from the user's whole (filtered) stream ordered by (ts, event_id).
    """
    engine = engine_of(wh)
    _, end = q.dates.utc_bounds(wh.settings.timezone)
    t = t.mutate(
        pos=ibis.row_number().over(
            ibis.window(group_by=t.user_id, order_by=[t.ts, t.event_id])
        )
    )
    w = _iv(q)
    first = t.filter(_step_cond(engine, t, q.steps[0]) & (t.ts < end))
    lvl = first.select("user_id", "pos", "ts", start=first.ts)
    n = len(q.steps)
    per_level = [_reaching(lvl, 1, n)]
    for k in range(2, n + 1):
        cand = t.filter(_step_cond(engine, t, q.steps[k - 1])).select(
            c_user="user_id", c_pos="pos", c_ts="ts"
        )
        j = lvl.join(
            cand,
            [lvl.user_id == cand.c_user, cand.c_pos == lvl.pos + 1],
        )
        j = j.filter(j.c_ts <= j.start + w)
        lvl = j.select(user_id=j.c_user, pos=j.c_pos, ts=j.c_ts, start=j.start)
        per_level.append(_reaching(lvl, k, n))
    return _best_level(per_level)


def _levels_unordered(wh: Any, q: FunnelQuery, t: ir.Table) -> ir.Table:
    """Any order: from an anchor step event, how many distinct steps occur within the window.

    The anchor must be in the date range; level = best anchor's count of distinct steps.
    """
    engine = engine_of(wh)
    _, end = q.dates.utc_bounds(wh.settings.timezone)
    w = _iv(q)
    win = ibis.range_window(group_by=t.user_id, order_by=t.ts, preceding=0, following=None)
    cols: dict[str, ir.Value] = {}
    any_step: ir.BooleanValue | None = None
    for k, step in enumerate(q.steps, start=1):
        c = _step_cond(engine, t, step)
        any_step = c if any_step is None else (any_step | c)
        cols[f"n{k}"] = ibis.ifelse(c, t.ts, ibis.null(t.ts.type())).min().over(win)
    assert any_step is not None
    m = t.filter(any_step).mutate(**cols)
    within = [ibis.ifelse(m[f"n{k}"] <= m.ts + w, 1, 0) for k in range(1, len(q.steps) + 1)]
    last = ibis.greatest(*[m[f"n{k}"] for k in range(1, len(q.steps) + 1)])
    score = sum(within[1:], within[0])
    m = m.filter(m.ts < end).mutate(score=score, span=(last.epoch_seconds() - m.ts.epoch_seconds()))
    n = len(q.steps)
    return m.group_by("user_id").aggregate(
        level=m.score.max(),
        ttc_seconds=ibis.ifelse(m.score == n, m.span, ibis.null("int64")).min().cast("float64"),
    )


def _exclude(wh: Any, q: FunnelQuery, t: ir.Table, levels: ir.Table) -> ir.Table:
    """Drop users with an exclusion event within the window after their first step-1 event."""
    if not q.exclusions:
        return levels
    engine = engine_of(wh)
    start, end = q.dates.utc_bounds(wh.settings.timezone)
    ev = wh.table("events")
    ev = apply_filters(engine, ev.filter(ev.ts >= start, ev.ts <= end + q.window), q.filters)
    s1 = ev.filter(_step_cond(engine, ev, q.steps[0]) & (ev.ts < end))
    first = s1.group_by("user_id").aggregate(s0=s1.ts.min())
    cond: ir.BooleanValue | None = None
    for x in q.exclusions:
        c = _step_cond(engine, ev, x)
        cond = c if cond is None else (cond | c)
    ex = ev.filter(cond).select(x_user="user_id", x_ts="ts")
    j = first.join(ex, first.user_id == ex.x_user)
    bad = j.filter(j.x_ts >= j.s0, j.x_ts <= j.s0 + _iv(q)).select("user_id").distinct()
    return levels.anti_join(bad, "user_id")


def funnel_levels(wh: Any, q: FunnelQuery, fast: bool = False) -> ir.Table:
    """Per user: ``level`` (last step reached, 1..n) and ``ttc_seconds`` (if completed).

    Lazy (an expression over the warehouse) unless ``fast`` on DuckDB in ``ordered``
    mode: then it runs the query now and returns an in-memory per-user table.
    """
    engine = engine_of(wh)
    t = _base(wh, q)
    if q.mode == "strict":
        levels = _levels_strict(wh, q, t)
    elif q.mode == "unordered":
        levels = _levels_unordered(wh, q, t)
    elif fast and engine == "duckdb":
        levels = _levels_ordered_duck(wh, q, t)
    else:
        levels = _levels_ordered(wh, q, t)
    return _exclude(wh, q, t, levels)


# ---------------------------------------------------------------------------------------
# runner
# ---------------------------------------------------------------------------------------


def _step_counts(q: FunnelQuery, level_counts: dict[int, int]) -> list[StepCount]:
    n = len(q.steps)
    reached = [sum(c for lv, c in level_counts.items() if lv >= k) for k in range(1, n + 1)]
    out = []
    for i, step in enumerate(q.steps):
        users = reached[i]
        first = reached[0]
        prev = reached[i - 1] if i else users
        nxt = reached[i + 1] if i + 1 < n else users
        out.append(
            StepCount(
                step=i + 1,
                name=step.name,
                users=users,
                conversion=users / first if first else 0.0,
                step_conversion=users / prev if prev else 0.0,
                drop_off=users - nxt,
            )
        )
    return out


def _user_breakdown(wh: Any, q: FunnelQuery, bd: Breakdown) -> ir.Table:
    """Each user's breakdown value: the value on their first step-1 event in range."""
    engine = engine_of(wh)
    t = events_in_range(wh, q.dates, q.filters)
    t = t.filter(_step_cond(engine, t, q.steps[0]))
    t, _ = breakdown_column(wh, t, bd)
    t = t.select("user_id", "ts", "event_id", "_bd")  # the window need not carry the rest
    if engine == "duckdb":  # one ordered aggregate: a third cheaper than the window
        first = t._bd.argmin(ibis.struct({"ts": t.ts, "id": t.event_id}))
        return t.group_by("user_id").aggregate(_bd=first)
    ranked = t.mutate(
        _rn=ibis.row_number().over(ibis.window(group_by=t.user_id, order_by=[t.ts, t.event_id]))
    )
    return ranked.filter(ranked._rn == 0).select("user_id", "_bd")


def _first_start(wh: Any, q: FunnelQuery, grain: str) -> ir.Table:
    engine = engine_of(wh)
    t = events_in_range(wh, q.dates, q.filters)
    t = t.filter(_step_cond(engine, t, q.steps[0]))
    f = t.group_by("user_id").aggregate(s0=t.ts.min())
    return f.select("user_id", period=bucket(engine, f.s0, grain, wh.settings.timezone))


def _sorted_applies(wh: Any, q: FunnelQuery) -> bool:
    """The sorted-key path answers ordered funnels on DuckDB, with their exclusions,
    breakdowns and conversion over time."""
    return engine_of(wh) == "duckdb" and q.mode == "ordered"


def run_funnel(wh: Any, q: FunnelQuery) -> FunnelResult:
    """Run a funnel on the warehouse (DuckDB or Spark) and return counts per step."""
    if _sorted_applies(wh, q):
        got = _funnel_sorted(wh, q)
        res = _from_users(wh, q, got) if got is not None else None
        if res is not None:
            return res
    levels = funnel_levels(wh, q, fast=True)
    counts_df = wh.execute(levels.group_by("level").aggregate(users=levels.count()))
    counts = {int(r.level): int(r.users) for r in counts_df.itertuples()}
    res = FunnelResult(
        mode=q.mode,
        window_seconds=int(q.window.total_seconds()),
        steps=_step_counts(q, counts),
    )
    if q.breakdown is not None:
        ub = _user_breakdown(wh, q, q.breakdown)
        j = levels.join(ub, "user_id")
        df = wh.execute(j.group_by(["_bd", "level"]).aggregate(users=j.count()))
        groups: dict[str, dict[int, int]] = {}
        for r in df.itertuples():
            groups.setdefault(str(r._1), {})[int(r.level)] = int(r.users)
        res.groups = _groups(q, groups)
    if q.time_to_convert:
        done = levels.filter(levels.level == len(q.steps))
        secs = wh.execute(done.select("ttc_seconds"))["ttc_seconds"].dropna().to_numpy(float)
        res.time_to_convert = _ttc(secs, q.histogram_bins)
    if q.interval is not None:
        import pandas as pd  # only conversion over time needs it (CLI start-up)

        fs = _first_start(wh, q, q.interval)
        j = fs.join(levels, "user_id")
        df = wh.execute(
            j.group_by("period").aggregate(
                entered=j.count(),
                converted=(j.level == len(q.steps)).cast("int64").sum(),
            ).order_by("period")
        )
        res.over_time = [
            _period_row(pd.Timestamp(r.period).isoformat(), int(r.entered), int(r.converted))
            for r in df.itertuples()
        ]
    return res


def _groups(q: FunnelQuery, groups: dict[str, dict[int, int]]) -> list[FunnelGroup]:
    """Breakdown groups (users by exact level per value), largest first, other last."""
    ordered = sorted(
        groups.items(),
        key=lambda kv: (kv[0] == OTHER, -sum(kv[1].values()), kv[0]),
    )
    return [FunnelGroup(value=v, steps=_step_counts(q, c)) for v, c in ordered]


def _period_row(period: str, entered: int, converted: int) -> PeriodConversion:
    return PeriodConversion(
        period=period, entered=entered, converted=converted,
        rate=converted / entered if entered else 0.0,
    )


def _by_level(level: np.ndarray) -> dict[int, int]:
    """Users by exact level (their highest step)."""
    c = np.bincount(level)
    return {int(k): int(c[k]) for k in np.flatnonzero(c)}


def _from_users(wh: Any, q: FunnelQuery, got: _PerUser) -> FunnelResult | None:
    """The result from the sorted path's per-user arrays; None when a breakdown's user
    ids cannot be matched to them (the caller takes the list path)."""
    n = len(q.steps)
    res = FunnelResult(
        mode=q.mode,
        window_seconds=int(q.window.total_seconds()),
        steps=_step_counts(q, _by_level(got.level)),
    )
    if q.time_to_convert:
        res.time_to_convert = _ttc(got.secs[got.level == n], q.histogram_bins)
    if q.interval is not None:
        import pandas as pd  # only conversion over time needs it (CLI start-up)

        local = (
            pd.to_datetime(got.first_us, unit="us", utc=True)
            .tz_convert(zone(wh.settings.timezone))
            .tz_localize(None)
            .to_numpy()
        )
        period = _truncate(local, q.interval)
        keys, inv = np.unique(period, return_inverse=True)
        entered = np.bincount(inv, minlength=keys.size)
        converted = np.bincount(inv, weights=got.level == n, minlength=keys.size)
        res.over_time = [
            _period_row(pd.Timestamp(p).isoformat(), int(e), int(c))
            for p, e, c in zip(keys, entered, converted, strict=True)
        ]
    if q.breakdown is not None:
        vals = wh.con.to_pyarrow(_user_breakdown(wh, q, q.breakdown))
        b = got.bucket_of(vals.column("user_id"))
        if b is None:
            return None
        at = np.minimum(np.searchsorted(got.bucket, b), max(got.bucket.size - 1, 0))
        if b.size and (got.bucket.size == 0 or not np.array_equal(got.bucket[at], b)):
            return None  # a value for a user the keys do not hold: do not guess
        enc = pc.dictionary_encode(vals.column("_bd")).combine_chunks()
        code = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
        cells = np.bincount(code * (n + 1) + got.level[at], minlength=len(enc.dictionary) * (n + 1))
        res.groups = _groups(q, {
            str(v): {k: int(c) for k, c in enumerate(row) if c}
            for v, row in zip(enc.dictionary.to_pylist(), cells.reshape(-1, n + 1), strict=True)
            if row.any()
        })
    return res


def _truncate(local: np.ndarray, grain: str) -> np.ndarray:
    """Start of the hour/day/week (Monday)/month of naive local times (``bucket``)."""
    if grain == "hour":
        return local.astype("datetime64[h]").astype("datetime64[us]")
    if grain == "month":
        return local.astype("datetime64[M]").astype("datetime64[us]")
    days = local.astype("datetime64[D]")
    if grain == "week":  # 1970-01-01 was a Thursday: Monday is 3 days before it
        d = days.astype(np.int64)
        days = (d - (d + 3) % 7).astype("datetime64[D]")
    return days.astype("datetime64[us]")


def _ttc(secs: np.ndarray, bins: int) -> TimeToConvert:
    if secs.size == 0:
        return TimeToConvert(users=0, median_seconds=None, p90_seconds=None, histogram=[])
    hi = float(secs.max())
    edges = np.linspace(0.0, hi if hi > 0 else 1.0, bins + 1)
    hist, _ = np.histogram(secs, bins=edges)
    return TimeToConvert(
        users=int(secs.size),
        median_seconds=float(np.median(secs)),
        p90_seconds=float(np.quantile(secs, 0.9)),
        histogram=[
            HistogramBin(from_seconds=float(edges[i]), to_seconds=float(edges[i + 1]), users=int(h))
            for i, h in enumerate(hist)
        ],
    )


def funnel_users(wh: Any, q: FunnelQuery, step: int, converted: bool = False) -> ir.Table:
    """Users who reached ``step`` and dropped off before the next (or, ``converted``, all
    who reached it) — for ``export_users``."""
    if not 1 <= step <= len(q.steps):
        raise YunyingError("funnel.bad_step", step=step, steps=len(q.steps))
    lv = funnel_levels(wh, q)
    cond = lv.level >= step if converted else lv.level == step
    return lv.filter(cond).select("user_id")


def export_funnel_users(
    wh: Any, q: FunnelQuery, step: int, path: str, converted: bool = False
) -> int:
    ids = wh.execute(funnel_users(wh, q, step, converted))["user_id"].tolist()
    return write_user_list([str(x) for x in ids], path)
