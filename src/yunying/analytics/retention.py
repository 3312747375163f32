"""Retention (留存): of the users who started in a period, how many came back N periods later.

Cohorts (同期群) are formed by a start event: a user's first-ever start event, their first
start event in the date range, or every start event (recurring: a user joins one cohort per
period in which they did it). ``classic`` counts users with a return event *in* period N;
``rolling`` (unbounded) counts users with a return event in period N *or later*.
Periods are local days/weeks/months of the project time zone.

On DuckDB, cohorts of one per user (``first_ever``, ``first_in_range``) are computed from
sorted 64-bit keys (``_retention_sorted``, ``yunying.analytics.sortkeys``): one query
returns the start and return rows (user id, local time, flags), NumPy sorts ``(user
bucket | day | flags)`` and cohort, matrix and D1/D7/D30 are read from each user's rows in
day order (NumPy, or one compiled pass: ``yunying.analytics.kernels``). ``recurring``
cohorts, breakdowns and Spark use the cohort/return join.

A breakdown splits every cohort by a property of the event that put the user in it (their
first start event; for ``recurring``, their first start event of that period), as PostHog
does: each cohort membership has exactly one value, so the values add up to all users.
Breakdowns take the generic join (the sorted path reads no properties).
"""

from __future__ import annotations

import sys
from datetime import UTC
from typing import Any, Literal

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from yunying.analytics import kernels
from yunying.analytics.common import (
    MAX_FILTERS,
    OTHER,
    QUERY_CONFIG,
    Breakdown,
    DateRange,
    EventName,
    EventSpec,
    PropertyFilter,
    apply_filters,
    breakdown_column,
    engine_of,
    event_cond,
    local_ts,
    period_index,
    period_label,
    period_of_date,
    write_user_list,
    zone,
)
from yunying.analytics.sortkeys import (
    U64,
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

CohortBy = Literal["first_ever", "first_in_range", "recurring"]
RetentionPeriod = Literal["day", "week", "month"]
SUMMARY_DAYS = (1, 7, 30)


class RetentionQuery(BaseModel):
    """Cohorts start in ``dates``; return events are counted up to ``periods`` later."""

    model_config = QUERY_CONFIG

    start_event: EventName
    start_filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    return_event: EventName | None = None  # None = any event
    return_filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    cohort: CohortBy = "first_ever"
    period: RetentionPeriod = "day"
    periods: int = Field(default=7, ge=1, le=400)
    method: Literal["classic", "rolling"] = "classic"
    dates: DateRange
    filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    breakdown: Breakdown | None = None  # property of the start event that formed the cohort


class RetentionCohort(BaseModel):
    cohort: str  # local start of the cohort period
    size: int
    retained: list[int]  # index N = users retained in period N (0..periods)
    rates: list[float | None]  # retained / size; None where period N is not over yet


class RetentionSummary(BaseModel):
    day: int
    users: int  # cohort users for whom day N is observable
    retained: int
    rate: float | None


class RetentionBreakdown(BaseModel):
    """The cohorts of one breakdown value (the top values, then ``(other)``)."""

    value: str
    cohorts: list[RetentionCohort]
    total: RetentionCohort
    summary: list[RetentionSummary]


class RetentionResult(BaseModel):
    period: RetentionPeriod
    method: Literal["classic", "rolling"]
    cohorts: list[RetentionCohort]
    total: RetentionCohort  # all cohorts together, weighted by size
    summary: list[RetentionSummary]
    breakdowns: list[RetentionBreakdown] = Field(default_factory=list)  # empty: no breakdown

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        """Cohort rows then the total; with a breakdown, a leading group column and the
        all-users block first, then each value's block."""
        n = len(self.total.retained)
        headers = [tr("retention.col.cohort"), tr("retention.col.size")] + [
            f"{tr('retention.col.period_' + self.period)} {i}" for i in range(n)
        ]
        blocks = [(tr("retention.group_all"), self.cohorts, self.total)] + [
            (b.value, b.cohorts, b.total) for b in self.breakdowns
        ]
        rows: list[list[Any]] = []
        for value, cohorts, total in blocks if self.breakdowns else blocks[:1]:
            rows.extend(
                ([value] if self.breakdowns else [])
                + [c.cohort, c.size]
                + [("" if r is None else f"{r:.1%}") for r in c.rates]
                for c in [*cohorts, total]
            )
        if self.breakdowns:
            headers = [tr("retention.col.group"), *headers]
        return headers, rows


def _cohorts(wh: Any, q: RetentionQuery) -> ir.Table:
    """(user_id, c: cohort period index, cday: cohort local day index)."""
    engine = engine_of(wh)
    tz = wh.settings.timezone
    t = apply_filters(engine, wh.table("events"), q.filters)
    start, end = q.dates.utc_bounds(tz)
    s = t.filter(event_cond(engine, t, EventSpec(event=q.start_event, filters=q.start_filters)))
    if q.cohort == "first_ever":
        s = s.filter(s.ts < end)
        f = s.group_by("user_id").aggregate(ts=s.ts.min())
        f = f.filter(f.ts >= start)
    elif q.cohort == "first_in_range":
        s = s.filter(s.ts >= start, s.ts < end)
        f = s.group_by("user_id").aggregate(ts=s.ts.min())
    else:
        f = s.filter(s.ts >= start, s.ts < end).select("user_id", "ts")
    f = f.mutate(
        c=period_index(engine, f.ts, q.period, tz), cday=period_index(engine, f.ts, "day", tz)
    )
    if q.cohort == "recurring":
        # one cohort per user and period: the first start event in it
        f = f.group_by(["user_id", "c"]).aggregate(cday=f.cday.min())
    return f.select("user_id", "c", "cday")


def _returns(wh: Any, q: RetentionQuery) -> ir.Table:
    engine = engine_of(wh)
    tz = wh.settings.timezone
    t = apply_filters(engine, wh.table("events"), q.filters)
    start, _ = q.dates.utc_bounds(tz)
    r = t.filter(
        event_cond(engine, t, EventSpec(event=q.return_event, filters=q.return_filters)),
        t.ts >= start,
    )
    r = r.select(
        "user_id", p=period_index(engine, r.ts, q.period, tz), d=period_index(engine, r.ts, "day", tz)
    )
    return r.distinct()


def _matched(wh: Any, q: RetentionQuery) -> tuple[ir.Table, ir.Table]:
    c = _cohorts(wh, q)
    r = _returns(wh, q).rename(r_user="user_id")
    j = c.join(r, [c.user_id == r.r_user, r.p >= c.c])
    j = j.select("user_id", "c", "cday", n=j.p - j.c, dn=j.d - j.cday)
    return c, j


def run_retention(wh: Any, q: RetentionQuery) -> RetentionResult:
    """Cohort matrix, the all-cohorts row and D1/D7/D30 on the warehouse."""
    engine = engine_of(wh)
    # last observable period: the latest event in the warehouse bounds what can be seen
    ev = wh.table("events")
    mx = wh.execute(ev.ts.max())
    tz = wh.settings.timezone
    last_day: int | None = None
    last_p: int | None = None
    if mx is not None and str(mx) != "NaT":
        local = pd.Timestamp(mx).to_pydatetime().replace(tzinfo=UTC).astimezone(zone(tz)).date()
        last_p, last_day = period_of_date(local, q.period), period_of_date(local, "day")
    if q.breakdown is not None:  # the generic join, grouped by value (no sorted path)
        return _retention_by(wh, q, q.breakdown, last_p, last_day)
    fast = _retention_sorted(wh, q, last_day) if _sorted_applies(wh, q) else None
    j: ir.Table | None = None
    hits: dict[int, int] | None = None
    if fast is not None:
        sizes, cells_df, hits = fast
    else:
        c, j = _matched(wh, q)
        # cohort sizes by cohort day: the matrix rows and the D1/D7/D30 bases
        sizes = wh.execute(c.group_by(["c", "cday"]).aggregate(size=c.count()))
        if engine == "duckdb" and (q.method == "rolling" or q.periods < _MASK_BITS):
            cells_df, hits = _cells_and_hits(wh, q, j, last_day)
        else:
            cells_df = wh.execute(_cells(q, j))
    cohorts, total = _matrix(q, sizes, cells_df, last_p)
    summary = _summary(wh, q, sizes, j, last_day, hits)
    return RetentionResult(
        period=q.period, method=q.method, cohorts=cohorts, total=total, summary=summary
    )


def _matrix(
    q: RetentionQuery, sizes: pd.DataFrame, cells_df: pd.DataFrame, last_p: int | None
) -> tuple[list[RetentionCohort], RetentionCohort]:
    """Cohort rows and the all-cohorts row from sizes (c, cday, size) and cells (c, n, users).

    A rate is given only where the cohort's period N is already in the data (else None);
    the all-cohorts row weights each period by the cohorts that reached it.
    """
    size: dict[int, int] = {}
    for r in sizes.itertuples():
        size[int(r.c)] = size.get(int(r.c), 0) + int(r.size)
    grid: dict[int, list[int]] = {k: [0] * (q.periods + 1) for k in size}
    for r in cells_df.itertuples():
        if int(r.c) in grid and 0 <= int(r.n) <= q.periods:
            grid[int(r.c)][int(r.n)] = int(r.users)
    cohorts = []
    tot_size = 0
    tot_ret = [0] * (q.periods + 1)
    tot_base = [0] * (q.periods + 1)
    for k in sorted(grid):
        rates: list[float | None] = []
        for n in range(q.periods + 1):
            seen = last_p is not None and k + n <= last_p
            rates.append(grid[k][n] / size[k] if seen and size[k] else None)
            if seen:
                tot_ret[n] += grid[k][n]
                tot_base[n] += size[k]
        tot_size += size[k]
        cohorts.append(
            RetentionCohort(cohort=period_label(k, q.period), size=size[k], retained=grid[k], rates=rates)
        )
    total = RetentionCohort(
        cohort=tr("retention.all"),
        size=tot_size,
        retained=tot_ret,
        rates=[tot_ret[n] / tot_base[n] if tot_base[n] else None for n in range(q.periods + 1)],
    )
    return cohorts, total


_CODE_BITS = 2  # bit 1: a start row, bit 0: a return row
_DAY_US = 86_400_000_000
_NO_DAY = np.int32(2**31 - 1)


def _sorted_applies(wh: Any, q: RetentionQuery) -> bool:
    """The sorted-key path (DuckDB) covers one cohort per user: first_ever, first_in_range."""
    return engine_of(wh) == "duckdb" and q.cohort in ("first_ever", "first_in_range")


def _periods_of_days(days: np.ndarray, period: str) -> np.ndarray:
    """``period_index`` of local day numbers (days since 1970-01-01), vectorised."""
    if period == "day":
        return days
    if period == "week":
        return (days - 4) // 7  # 1970-01-05 is a Monday, as in period_of_date
    months = days.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64)
    return months + 1970 * 12


def _retention_sorted(
    wh: Any, q: RetentionQuery, last_day: int | None
) -> tuple[pd.DataFrame, pd.DataFrame, dict[int, int]] | None:
    """DuckDB: cohort sizes (c, cday, size), matrix cells (c, n, users) and D1/D7/D30 hits
    from one query of sorted 64-bit keys (``yunying.analytics.sortkeys``) instead of the
    cohort/return join. Each row is a start or return event: (user bucket, local day since
    the range start, code); after one NumPy sort a user's rows are contiguous and in day
    order. None when two user ids fall in one bucket (checked exactly): the caller takes
    the generic path.
    """
    engine = engine_of(wh)
    tz = wh.settings.timezone
    start, end = q.dates.utc_bounds(tz)
    day0 = period_of_date(q.dates.from_, "day")
    last_rel = q.dates.days  # relative day of the range's last date
    cap = last_rel + q.periods * 31 + 32  # later days change no cell and no D1/D7/D30
    t = apply_filters(engine, wh.table("events"), q.filters)
    is_s = event_cond(engine, t, EventSpec(event=q.start_event, filters=q.start_filters))
    is_s = is_s & (t.ts < end)
    if q.cohort == "first_in_range":
        is_s = is_s & (t.ts >= start)
    is_r = event_cond(engine, t, EventSpec(event=q.return_event, filters=q.return_filters))
    is_r = is_r & (t.ts >= start)
    rows = t.filter(is_s | is_r).select(
        "user_id",
        lts=local_ts(engine, t.ts, tz),
        code=is_s.cast("int64") * 2 + is_r.cast("int64"),
    )
    tb = cap.bit_length()
    shift = tb + _CODE_BITS
    tab, check = fetch_rows(wh, str(wh.con.compile(rows)))
    low = Low("lts", "code", day0 * _DAY_US, _DAY_US, _CODE_BITS, cap=cap)
    rk = row_keys(wh, tab, shift, low, check)
    del tab
    key, distinct = sort_keys(rk.key, rk.ident, 64 - shift, shift)
    check = rk.check
    del rk
    if distinct < 0:
        return None
    done = map_parts(lambda k: _retention_part(k, q, tb, day0, last_day), halves(key, shift))
    del key
    if check is not None and check.result() != distinct:
        return None  # two long user ids share a 64-bit hash: not exact here
    days, size = np.unique(np.concatenate([p[0] for p in done]), return_counts=True)
    sizes = pd.DataFrame({"c": _periods_of_days(days, q.period), "cday": days, "size": size})
    cells = pd.concat([p[1] for p in done]).groupby(["c", "n"], as_index=False)["users"].sum()
    hits = {day: sum(p[2][day] for p in done) for day in SUMMARY_DAYS}
    return sizes, cells, hits


def _retention_part(
    key: np.ndarray, q: RetentionQuery, tb: int, day0: int, last_day: int | None
) -> tuple[np.ndarray, pd.DataFrame, dict[int, int]]:
    """One part of the users (``halves``): their cohort days, cells and D1/D7/D30 hits.

    Days stay relative to the range (int32) and their periods come from a small lookup
    table, so each pass moves half the bytes and no row needs a division.
    """
    shift = tb + _CODE_BITS
    period_of = _periods_of_days(np.arange(1 << tb, dtype=np.int64) + (day0 - 1), q.period)
    period_of = period_of.astype(np.int32)
    ld = -(2**62) if last_day is None else last_day - (day0 - 1)  # relative, like cd
    ks = kernels.loaded()
    if ks is not None:  # the same rules in one compiled pass
        days, counts, hit = ks.retention_cells(
            key, tb, shift, period_of, q.periods, q.method == "rolling", ld
        )
        if q.method == "rolling":  # counts by last period: retained at n = on or after n
            counts = counts[:, ::-1].cumsum(axis=1)[:, ::-1]
        ci, ni = np.nonzero(counts)
        cells = pd.DataFrame({"c": ci + int(period_of[0]), "n": ni, "users": counts[ci, ni]})
        return (
            days.astype(np.int64) + (day0 - 1),
            cells,
            {day: int(h) for day, h in zip(SUMMARY_DAYS, hit, strict=True)},
        )
    starts = group_starts(key, shift)
    users = starts.size
    code = _low_byte(key) & np.uint8(3)
    d = ((key >> U64(_CODE_BITS)) & U64((1 << tb) - 1)).astype(np.int32)
    del key
    uid = np.repeat(np.arange(users, dtype=np.int32), np.diff(np.append(starts, d.size)))
    cd = np.full(users, _NO_DAY, np.int32)  # each user's first start day (rows in day order)
    srows = np.flatnonzero(code >= 2)
    su = uid[srows]
    firsts = np.flatnonzero(np.r_[True, su[1:] != su[:-1]]) if su.size else su
    cd[su[firsts]] = d[srows[firsts]]
    member = (cd >= 1) & (cd < _NO_DAY)  # first start in the range (first_ever: not before)
    c_user = period_of[np.where(member, cd, 0)]
    ret = np.flatnonzero((code & 1).astype(bool) & member[uid])
    ru = uid[ret]
    rd = d[ret]
    n = period_of[rd] - c_user[ru]
    dn = rd - cd[ru]
    keep = n >= 0  # a return in the cohort's period or later (the generic join's p >= c)
    ru, n, dn = ru[keep], n[keep], dn[keep]
    mu = np.flatnonzero(member)
    width = q.periods + 1
    base = int(c_user[mu].min()) if mu.size else 0
    ncoh = (int(c_user[mu].max()) - base + 1) if mu.size else 0
    if q.method == "classic":
        sel = n <= q.periods
        su, sn = ru[sel], n[sel]
        first = np.ones(su.size, bool)
        first[1:] = (su[1:] != su[:-1]) | (sn[1:] != sn[:-1])  # rows sorted by user, day
        cnt = np.bincount(
            (c_user[su[first]] - base) * width + sn[first], minlength=ncoh * width
        ).reshape(ncoh, width)
    else:
        mx = np.full(users, -1, np.int32)
        _max_by_sorted(mx, ru, n)
        has = mx >= 0
        hist = np.bincount(
            (c_user[has] - base) * (width + 1) + np.minimum(mx[has], q.periods),
            minlength=ncoh * (width + 1),
        ).reshape(ncoh, width + 1)
        cnt = hist[:, ::-1].cumsum(axis=1)[:, ::-1][:, :width]
    ci, ni = np.nonzero(cnt)
    cells = pd.DataFrame({"c": ci + base, "n": ni, "users": cnt[ci, ni]})
    hits: dict[int, int] = {}
    for day in SUMMARY_DAYS:
        hit = ru[(dn == day) if q.method == "classic" else (dn >= day)]  # sorted users
        hu = hit[np.r_[True, hit[1:] != hit[:-1]]] if hit.size else hit
        hits[day] = int(np.count_nonzero(cd[hu].astype(np.int64) + day <= ld))
    return cd[mu].astype(np.int64) + (day0 - 1), cells, hits


def _low_byte(key: np.ndarray) -> np.ndarray:
    """The lowest byte of each 64-bit key (a strided view on little-endian machines)."""
    if sys.byteorder == "little":
        return key.view(np.uint8)[::8]
    return (key & U64(0xFF)).astype(np.uint8)


def _max_by_sorted(out: np.ndarray, idx: np.ndarray, val: np.ndarray) -> None:
    """``out[i] = max(val where idx == i)`` for ``idx`` sorted ascending."""
    if idx.size == 0:
        return
    st = np.flatnonzero(np.r_[True, idx[1:] != idx[:-1]])
    out[idx[st]] = np.maximum.reduceat(val, st)


def _cells(q: RetentionQuery, j: ir.Table, by: tuple[str, ...] = ()) -> ir.Table:
    """(*by, c, n, users): users of cohort c retained in period n (generic: any engine).

    ``by`` adds grouping columns of ``j`` (the breakdown value) that are constant per
    user and cohort."""
    jj = j.filter(j.n <= q.periods)
    if q.method == "classic":
        return (
            jj.select("user_id", *by, "c", "n").distinct().group_by([*by, "c", "n"]).aggregate(users=ibis._.count())
        )
    last = j.group_by(["user_id", *by, "c"]).aggregate(mx=j.n.max())
    # rolling: retained at N when any return at N or later; expand via N <= max
    nums = ibis.memtable({"n": list(range(q.periods + 1))})
    x = last.cross_join(nums)
    x = x.filter(x.n <= x.mx)
    return x.group_by([*by, "c", "n"]).aggregate(users=x.count())


_MASK_BITS = 63  # classic periods 0..62 fit one BIGINT bit mask per user and cohort


def _hit_flags(q: RetentionQuery, j: ir.Table) -> dict[str, ir.Value]:
    return {
        f"h{dn}": ((j.dn >= dn) if q.method == "rolling" else (j.dn == dn)).cast("int64").max()
        for dn in SUMMARY_DAYS
    }


def _cells_and_hits(
    wh: Any,
    q: RetentionQuery, j: ir.Table, last_day: int | None
) -> tuple[pd.DataFrame, dict[int, int]]:
    """DuckDB: the matrix cells and the D1/D7/D30 hits in one pass over the matched rows."""
    cells, hits = _counts_by(wh, q, j, last_day)
    return cells, {dn: int(hits[f"h{dn}"].sum()) for dn in SUMMARY_DAYS}


def _counts_by(
    wh: Any, q: RetentionQuery, j: ir.Table, last_day: int | None, by: tuple[str, ...] = ()
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """DuckDB: cells (*by, c, n, users) and hits (*by, h1, h7, h30, one row per cohort) in
    one pass over the matched rows.

    One row per (user, cohort): a bit mask of the periods with a return (classic) or the
    last such period (rolling), and the day-N flags; then one aggregate per cohort (and
    ``by`` group: the breakdown value, constant per user and cohort).
    """
    inr = j.n <= q.periods
    if q.method == "classic":
        bit = ibis.ifelse(inr, ibis.literal(1, type="int64") << j.n.cast("int64"), 0)
        per = j.group_by(["user_id", *by, "c", "cday"]).aggregate(
            m=bit.cast("int64").bit_or(), **_hit_flags(q, j)
        )
        cols = {f"r{n}": ((per.m >> n) & 1).sum() for n in range(q.periods + 1)}
    else:
        per = j.group_by(["user_id", *by, "c", "cday"]).aggregate(mx=j.n.max(), **_hit_flags(q, j))
        cols = {f"r{n}": (per.mx >= n).cast("int64").sum() for n in range(q.periods + 1)}
    ld = -(2**62) if last_day is None else last_day
    for dn in SUMMARY_DAYS:
        cols[f"h{dn}"] = ibis.ifelse(per.cday + dn <= ld, per[f"h{dn}"], 0).sum()
    out = wh.execute(per.group_by([*by, "c"]).aggregate(**cols))
    rows = [
        (*(r[b] for b in by), int(r["c"]), n, int(r[f"r{n}"] or 0))
        for r in out.to_dict("records")
        for n in range(q.periods + 1)
    ]
    hits = out[[*by, *(f"h{dn}" for dn in SUMMARY_DAYS)]].fillna(0)
    return pd.DataFrame(rows, columns=[*by, "c", "n", "users"]), hits


def _summary(
    wh: Any,
    q: RetentionQuery,
    sizes: pd.DataFrame,
    j: ir.Table | None,
    last_day: int | None,
    known: dict[int, int] | None = None,
) -> list[RetentionSummary]:
    """D1/D7/D30 over cohort users for whom day N is already observable (one query, or
    none when ``known`` hits came with the matrix)."""
    if last_day is None:
        return [RetentionSummary(day=dn, users=0, retained=0, rate=None) for dn in SUMMARY_DAYS]
    elig = {
        dn: int(sizes["size"][sizes["cday"].astype("int64") + dn <= last_day].sum())
        for dn in SUMMARY_DAYS
    }
    if known is None:
        assert j is not None, "the generic path passes its matched rows"
        per = j.filter(j.cday + SUMMARY_DAYS[0] <= last_day).group_by(
            ["user_id", "c", "cday"]
        ).aggregate(**_hit_flags(q, j))
        hdf = wh.execute(
            per.aggregate(
                **{
                    f"h{dn}": ibis.ifelse(per.cday + dn <= last_day, per[f"h{dn}"], 0).sum()
                    for dn in SUMMARY_DAYS
                }
            )
        )
        known = {
            dn: int(hdf[f"h{dn}"].iloc[0] or 0) if len(hdf) else 0 for dn in SUMMARY_DAYS
        }
    out = []
    for dn in SUMMARY_DAYS:
        users = elig[dn]
        ret = known[dn]
        out.append(
            RetentionSummary(day=dn, users=users, retained=ret, rate=ret / users if users else None)
        )
    return out


def _cohort_values(wh: Any, q: RetentionQuery, bd: Breakdown) -> tuple[ir.Table, list[str]]:
    """(user_id, c, cday, bd): each cohort membership and the breakdown value of the start
    event that formed it (the earliest; ties go to the lower event id), plus the kept
    values (top ``limit`` by cohort users, as ``breakdown_column`` ranks them)."""
    engine = engine_of(wh)
    tz = wh.settings.timezone
    t = apply_filters(engine, wh.table("events"), q.filters)
    start, end = q.dates.utc_bounds(tz)
    s = t.filter(
        event_cond(engine, t, EventSpec(event=q.start_event, filters=q.start_filters)), t.ts < end
    )
    if q.cohort != "first_ever":
        s = s.filter(s.ts >= start)
    s = s.mutate(c=period_index(engine, s.ts, q.period, tz))
    part = [s.user_id, s.c] if q.cohort == "recurring" else [s.user_id]
    ranked = s.mutate(
        _rn=ibis.row_number().over(ibis.window(group_by=part, order_by=[s.ts, s.event_id]))
    )
    f = ranked.filter(ranked._rn == 0)
    if q.cohort == "first_ever":
        f = f.filter(f.ts >= start)  # first ever, and inside the range
    f, kept = breakdown_column(wh, f, bd)
    return f.select("user_id", "c", bd=f._bd, cday=period_index(engine, f.ts, "day", tz)), kept


def _retention_by(
    wh: Any, q: RetentionQuery, bd: Breakdown, last_p: int | None, last_day: int | None
) -> RetentionResult:
    """The cohort matrix, total and D1/D7/D30 of each breakdown value, and of all users as
    their sums (exact: a cohort membership has one value), from one grouped generic join.
    """
    engine = engine_of(wh)
    c, kept = _cohort_values(wh, q, bd)
    r = _returns(wh, q).rename(r_user="user_id")
    j = c.join(r, [c.user_id == r.r_user, r.p >= c.c])
    j = j.select("user_id", "bd", "c", "cday", n=j.p - j.c, dn=j.d - j.cday)
    sizes = wh.execute(c.group_by(["bd", "c", "cday"]).aggregate(size=c.count()))
    if engine == "duckdb" and (q.method == "rolling" or q.periods < _MASK_BITS):
        cells, hits = _counts_by(wh, q, j, last_day, by=("bd",))
    else:
        cells = wh.execute(_cells(q, j, by=("bd",)))
        hits = _hits_by(wh, q, j, last_day)
    for df in (sizes, cells, hits):
        df["bd"] = df["bd"].astype(str)

    def block(
        sz: pd.DataFrame, ce: pd.DataFrame, hi: pd.DataFrame
    ) -> tuple[list[RetentionCohort], RetentionCohort, list[RetentionSummary]]:
        cohorts, total = _matrix(q, sz, ce, last_p)
        known = {dn: int(hi[f"h{dn}"].sum()) for dn in SUMMARY_DAYS}
        return cohorts, total, _summary(wh, q, sz, None, last_day, known)

    cohorts, total, summary = block(
        sizes.groupby(["c", "cday"], as_index=False)["size"].sum(),
        cells.groupby(["c", "n"], as_index=False)["users"].sum(),
        hits,
    )
    present = set(sizes["bd"])
    breakdowns = []
    for value in dict.fromkeys([*kept, OTHER]):
        if value in present:
            vc, vt, vs = block(
                sizes[sizes["bd"] == value], cells[cells["bd"] == value], hits[hits["bd"] == value]
            )
            breakdowns.append(RetentionBreakdown(value=value, cohorts=vc, total=vt, summary=vs))
    return RetentionResult(
        period=q.period, method=q.method, cohorts=cohorts, total=total, summary=summary,
        breakdowns=breakdowns,
    )


def _hits_by(wh: Any, q: RetentionQuery, j: ir.Table, last_day: int | None) -> pd.DataFrame:
    """Generic: D1/D7/D30 hits per breakdown value (bd, h1, h7, h30) over the users for
    whom the day is already in the data."""
    if last_day is None:
        return pd.DataFrame(columns=["bd", *(f"h{dn}" for dn in SUMMARY_DAYS)])
    per = j.filter(j.cday + SUMMARY_DAYS[0] <= last_day).group_by(
        ["user_id", "bd", "c", "cday"]
    ).aggregate(**_hit_flags(q, j))
    hdf = wh.execute(
        per.group_by("bd").aggregate(
            **{
                f"h{dn}": ibis.ifelse(per.cday + dn <= last_day, per[f"h{dn}"], 0).sum()
                for dn in SUMMARY_DAYS
            }
        )
    )
    return hdf.fillna(0)  # type: ignore[no-any-return]


def retained_users(wh: Any, q: RetentionQuery, cohort: str, n: int, retained: bool) -> list[str]:
    """Users of one cohort (its label) retained (or not) in period ``n`` — for targeting."""
    if not 0 <= n <= q.periods:
        raise YunyingError("retention.bad_period", n=n, periods=q.periods)
    c, j = _matched(wh, q)
    cdf = wh.execute(c.select("user_id", "c"))
    members = {str(r.user_id) for r in cdf.itertuples() if period_label(int(r.c), q.period) == cohort}
    if not members:
        raise YunyingError("retention.bad_cohort", cohort=cohort)
    hit_expr = j.filter(j.n == n) if q.method == "classic" else j.filter(j.n >= n)
    hdf = wh.execute(hit_expr.select("user_id", "c").distinct())
    hits = {str(r.user_id) for r in hdf.itertuples() if period_label(int(r.c), q.period) == cohort}
    return sorted(hits if retained else members - hits)


def export_retention_users(
    wh: Any, q: RetentionQuery, cohort: str, n: int, path: str, retained: bool = True
) -> int:
    return write_user_list(retained_users(wh, q, cohort, n, retained), path)
