"""Compute metrics on any engine: Ibis expressions over the contract tables, then pandas.

Simple metrics on the same table are batched into one grouped query with filtered
aggregates; ratios, derived formulas and cumulative windows are combined afterwards on
the small per-period frames, so ratios are always computed on sums (never averaged).
Results are cached on disk, keyed by the specs' hashes and ``Warehouse.data_version()``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Sequence
from typing import Any, Literal
from zoneinfo import ZoneInfo

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from pydantic import BaseModel

from yunying import clock
from yunying.errors import YunyingError
from yunying.i18n import get_language, t
from yunying.metrics.spec import (
    DimRef,
    MetricSpec,
    Registry,
    allowed_dims,
    eval_formula,
    parse_formula,
    resolve_dim,
)
from yunying.warehouse.contracts import CONTRACTS
from yunying.warehouse.engine import Warehouse

ComputeGrain = Literal["day", "week", "month", "total"]
GRAINS = ("day", "week", "month", "total")
P = "_p"  # period column
D = "_d"  # dimension column
V = "value"


class Point(BaseModel):
    period: dt.date
    dim: str | None = None
    value: float | None


class MetricSeries(BaseModel):
    name: str
    label: str
    unit: str
    format: str
    direction: str
    points: list[Point]

    def value_at(self, period: dt.date, dim: str | None = None) -> float | None:
        for p in self.points:
            if p.period == period and p.dim == dim:
                return p.value
        return None

    def total(self) -> float | None:
        """The single value of a ``total``-grain, no-breakdown result."""
        vals = [p.value for p in self.points if p.dim is None]
        return vals[0] if len(vals) == 1 else None


class ComputeResult(BaseModel):
    grain: str
    start: dt.date
    end: dt.date
    by: str | None
    engine: str
    data_version: str
    cached: bool = False
    series: list[MetricSeries]

    def get(self, name: str) -> MetricSeries:
        for s in self.series:
            if s.name == name:
                return s
        raise KeyError(name)

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        keys: dict[tuple[dt.date, str | None], dict[str, float | None]] = {}
        for s in self.series:
            for p in s.points:
                keys.setdefault((p.period, p.dim), {})[s.name] = p.value
        headers = [t("metrics.col.period")] + ([self.by] if self.by else []) + [s.label for s in self.series]
        rows = []
        for (period, dim), vals in sorted(keys.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
            row: list[Any] = [period.isoformat()] + ([dim] if self.by else [])
            for s in self.series:
                row.append(format_value(vals.get(s.name), s.format))
            rows.append(row)
        return headers, rows


def format_value(v: float | None, fmt: str) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if fmt == "percent":
        return f"{v * 100:.2f}%"
    if fmt == "integer":
        return f"{v:,.0f}"
    if fmt == "currency":
        return f"{v:,.2f}"
    return f"{v:,.4g}" if abs(v) < 1e6 else f"{v:,.0f}"


# -- time ------------------------------------------------------------------------------


def period_start(d: dt.date, grain: str, start: dt.date) -> dt.date:
    if grain == "day":
        return d
    if grain == "week":
        return d - dt.timedelta(days=d.weekday())
    if grain == "month":
        return d.replace(day=1)
    return start


def periods(start: dt.date, end: dt.date, grain: str) -> list[dt.date]:
    out: list[dt.date] = []
    cur = period_start(start, grain, start)
    while cur <= end:
        out.append(cur)
        if grain == "total":
            break
        cur = next_period(cur, grain)
    return out


def next_period(p: dt.date, grain: str) -> dt.date:
    if grain == "day":
        return p + dt.timedelta(days=1)
    if grain == "week":
        return p + dt.timedelta(days=7)
    if grain == "month":
        return (p.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    raise ValueError(grain)


def utc_bound(day: dt.date, tz: str) -> dt.datetime:
    """Local midnight of ``day`` as a naive UTC datetime."""
    local = dt.datetime.combine(day, dt.time(), tzinfo=ZoneInfo(tz))
    return local.astimezone(dt.UTC).replace(tzinfo=None)


def _offsets(tz: str, lo: dt.datetime, hi: dt.datetime) -> list[tuple[dt.datetime, int]]:
    """UTC instants where the zone's offset changes in [lo, hi], with the new offset."""
    zone = ZoneInfo(tz)

    def off(x: dt.datetime) -> int:
        o = x.replace(tzinfo=dt.UTC).astimezone(zone).utcoffset()
        return int(o.total_seconds()) if o else 0

    out = [(lo, off(lo))]
    cur = lo
    step = dt.timedelta(hours=6)
    while cur < hi:
        nxt = cur + step
        if off(nxt) != off(cur):
            a, b = cur, nxt
            while b - a > dt.timedelta(minutes=1):
                mid = a + (b - a) / 2
                if off(mid) == off(cur):
                    a = mid
                else:
                    b = mid
            b = b.replace(second=0, microsecond=0)
            out.append((b, off(nxt)))
        cur = nxt
    return out


def local_ts(ts: ir.TimestampValue, tz: str, lo: dt.datetime, hi: dt.datetime) -> ir.TimestampValue:
    """Naive UTC → naive local time, exact across DST changes inside the range."""
    offs = _offsets(tz, lo - dt.timedelta(days=2), hi + dt.timedelta(days=2))
    if len(offs) == 1:
        return ts + ibis.interval(seconds=offs[0][1])
    cases = [(ts >= ibis.literal(b), ts + ibis.interval(seconds=o)) for b, o in reversed(offs[1:])]
    return ibis.cases(*cases, else_=ts + ibis.interval(seconds=offs[0][1]))


def bucket(local: ir.TimestampValue, grain: str, start: dt.date) -> ir.DateValue:
    if grain == "day":
        return local.date()
    if grain == "week":
        return local.truncate("W").date()
    if grain == "month":
        return local.truncate("M").date()
    return ibis.literal(start)


# -- expressions -----------------------------------------------------------------------


@ibis.udf.scalar.builtin(name="json_extract_string")
def _duck_json(s: str, path: str) -> str: ...  # type: ignore[empty-body]


@ibis.udf.scalar.builtin(name="get_json_object")
def _spark_json(s: str, path: str) -> str: ...  # type: ignore[empty-body]


def json_prop(wh: Warehouse, col: ir.StringValue, key: str) -> ir.StringValue:
    """A JSON property as text: an explicit builtin per engine (Ibis's JSON ops need UDFs on Spark)."""
    path = "$." + key
    if wh.engine == "spark":
        return _spark_json(col, path)
    return _duck_json(col, path)


class Source:
    """A contract table with the joins a set of dimension references needs."""

    def __init__(self, wh: Warehouse, table: str, refs: Sequence[str]) -> None:
        self.wh = wh
        self.name = table
        self.dims: dict[str, DimRef] = {r: resolve_dim(table, r) for r in refs}
        base = wh.table(table)
        joins = sorted({d.join for d in self.dims.values() if d.join})
        self.t: ir.Table = base
        self.joined: dict[str, ir.Table] = {}
        for j in joins:
            link = "user_id" if j == "users" else "account_id"
            other = wh.table(j)
            cols = sorted({d.column if not d.json else "properties" for d in self.dims.values() if d.join == j})
            other = other.select(other[link].name(f"_j_{j}_key"), *[other[c].name(f"_j_{j}_{c}") for c in cols])
            self.t = self.t.left_join(other, self.t[link] == other[f"_j_{j}_key"])
        self.t = self.t.select(*self.t.columns)

    def col(self, ref: str) -> ir.Value:
        d = self.dims.get(ref) or resolve_dim(self.name, ref)
        if d.join:
            col = self.t[f"_j_{d.join}_properties" if d.json else f"_j_{d.join}_{d.column}"]
        elif d.json:
            col = self.t["properties"]
        else:
            return self.t[d.column]
        return json_prop(self.wh, col, d.column) if d.json else col


def where_expr(src: Source, where: dict[str, Any]) -> ir.BooleanValue | None:
    conds: list[ir.BooleanValue] = []
    for key, cond in where.items():
        if key not in src.dims:
            src.dims[key] = resolve_dim(src.name, key)
            if src.dims[key].join:
                raise YunyingError("metrics.filter_join", column=key)
        col = src.col(key)
        ops = cond if isinstance(cond, dict) else {"in": cond} if isinstance(cond, list) else {"eq": cond}
        for op, val in ops.items():
            if op == "eq":
                conds.append(col.isnull() if val is None else col == val)
            elif op == "ne":
                conds.append(col.notnull() if val is None else col != val)
            elif op == "in":
                conds.append(col.isin(list(val)))
            elif op == "not_in":
                conds.append(~col.isin(list(val)))
            elif op == "is_null":
                conds.append(col.isnull() if val else col.notnull())
            else:
                num = col.cast("float64") if src.dims[key].json else col
                conds.append({"gt": num > val, "gte": num >= val, "lt": num < val, "lte": num <= val}[op])
    if not conds:
        return None
    out = conds[0]
    for c in conds[1:]:
        out = out & c
    return out


def _numeric(src: Source, ref: str) -> ir.NumericValue:
    d = resolve_dim(src.name, ref)
    col = src.col(ref)
    if d.json:
        return col.try_cast("float64")
    return col.cast("float64")


def agg_expr(src: Source, m: MetricSpec) -> ir.Scalar:
    cond = where_expr(src, m.where)
    if m.agg == "count":
        return src.t.count(where=cond)
    assert m.column is not None
    if m.agg == "count_distinct":
        return src.col(m.column).nunique(where=cond)
    x = _numeric(src, m.column)
    if m.agg == "sum":
        return x.sum(where=cond)
    if m.agg == "avg":
        return x.mean(where=cond)
    if m.agg == "min":
        return x.min(where=cond)
    return x.max(where=cond)


# -- the computation -------------------------------------------------------------------


class _Ctx:
    def __init__(
        self, wh: Warehouse, reg: Registry, grain: str, start: dt.date, end: dt.date, by: str | None
    ) -> None:
        self.wh, self.reg, self.grain, self.start, self.end, self.by = wh, reg, grain, start, end, by
        self.tz = wh.settings.timezone
        self.lo = utc_bound(start, self.tz)
        self.hi = utc_bound(end + dt.timedelta(days=1), self.tz)
        self.frames: dict[str, pd.DataFrame] = {}
        self.periods = periods(start, end, grain)

    def keys(self) -> list[str]:
        return [P, D] if self.by else [P]

    def time_range(self, src: Source, time_col: str, lo: dt.datetime, hi: dt.datetime) -> tuple[ir.Table, ir.TimestampValue]:
        ts = src.t[time_col]
        if CONTRACTS[src.name].column(time_col).type == "date":
            tsx = ts.cast("timestamp")
            lo_d, hi_d = lo.date(), hi.date()
            tbl = src.t.filter((ts >= lo_d) & (ts < hi_d))
            return tbl, tsx
        tbl = src.t.filter((ts >= ibis.literal(lo)) & (ts < ibis.literal(hi)))
        return tbl, local_ts(tbl[time_col], self.tz, lo, hi)


def _fill(ctx: _Ctx, df: pd.DataFrame, zero: bool) -> pd.DataFrame:
    """Every period appears; additive measures get 0 where no row matched."""
    idx_p = pd.Index(ctx.periods, name=P)
    if ctx.by:
        dims = sorted({d for d in df[D].tolist()}, key=lambda x: "" if x is None else str(x)) or []
        full = pd.MultiIndex.from_product([idx_p, dims], names=[P, D]) if dims else None
        if full is None:
            return df.iloc[0:0]
        out = df.set_index([P, D]).reindex(full)
    else:
        out = df.set_index(P).reindex(idx_p)
    if zero:
        out = out.fillna(0.0)
    return out.reset_index()


def _simple_batch(ctx: _Ctx, table: str, specs: list[MetricSpec]) -> None:
    refs = ([ctx.by] if ctx.by else []) + sorted({k for m in specs for k in m.where})
    src = Source(ctx.wh, table, refs)
    time_col = CONTRACTS[table].time_column
    assert time_col is not None
    tbl, local = ctx.time_range(src, time_col, ctx.lo, ctx.hi)
    src.t = tbl
    per_day = [m for m in specs if m.per == "day"]
    plain = [m for m in specs if m.per != "day"]
    for group, grain in ((plain, ctx.grain), (per_day, "day")):
        if not group:
            continue
        src.t = tbl
        mut: dict[str, ir.Value] = {P: bucket(local, grain, ctx.start)}
        if ctx.by:
            mut[D] = src.col(ctx.by).cast("string")
        src.t = tbl.mutate(**mut)
        aggs = {f"m_{i}": agg_expr(src, m).cast("float64") for i, m in enumerate(group)}
        df = ctx.wh.execute(src.t.group_by(list(mut)).aggregate(**aggs))
        df[P] = pd.to_datetime(df[P]).dt.date
        if grain != ctx.grain:  # average of daily values over each period
            days = pd.Series(periods(ctx.start, ctx.end, "day"))
            df = _avg_daily(ctx, df, list(aggs), days)
        for i, m in enumerate(group):
            cols = ctx.keys() + [f"m_{i}"]
            one = df[cols].rename(columns={f"m_{i}": V})
            ctx.frames[m.name] = _fill(ctx, one, m.agg in ("count", "count_distinct", "sum") or m.per == "day")


def _avg_daily(ctx: _Ctx, df: pd.DataFrame, cols: list[str], days: pd.Series) -> pd.DataFrame:
    ndays = days.map(lambda d: period_start(d, ctx.grain, ctx.start)).value_counts()
    df = df.copy()
    df[P] = df[P].map(lambda d: period_start(d, ctx.grain, ctx.start))
    out = df.groupby(ctx.keys(), dropna=False)[cols].sum().reset_index()
    for c in cols:
        out[c] = out[c] / out[P].map(ndays).astype(float)
    return out


def _merge(ctx: _Ctx, frames: dict[str, pd.DataFrame]) -> pd.DataFrame:
    out: pd.DataFrame | None = None
    for name, f in frames.items():
        g = f[ctx.keys() + [V]].rename(columns={V: name})
        out = g if out is None else out.merge(g, on=ctx.keys(), how="outer")
    assert out is not None
    return out


def _div(a: Any, b: Any) -> Any:
    if isinstance(a, pd.Series) or isinstance(b, pd.Series):
        b2 = b.where(b != 0) if isinstance(b, pd.Series) else (np.nan if b == 0 else b)
        return a / b2
    return float("nan") if b == 0 else a / b


def _ratio(ctx: _Ctx, m: MetricSpec) -> None:
    assert m.numerator and m.denominator
    df = _merge(ctx, {"n": ctx.frames[m.numerator], "d": ctx.frames[m.denominator]})
    df[V] = _div(df["n"].astype(float), df["d"].astype(float))
    ctx.frames[m.name] = df[ctx.keys() + [V]]


def _derived(ctx: _Ctx, m: MetricSpec) -> None:
    assert m.formula
    tree = parse_formula(m.formula)
    deps = m.deps()
    if not deps:
        val = eval_formula(tree, {}, _div)
        ctx.frames[m.name] = pd.DataFrame({P: ctx.periods, V: [float(val)] * len(ctx.periods)})
        return
    df = _merge(ctx, {d: ctx.frames[d] for d in deps})
    df[V] = eval_formula(tree, {d: df[d].astype(float) for d in deps}, _div)
    ctx.frames[m.name] = df[ctx.keys() + [V]]


def _cumulative(ctx: _Ctx, m: MetricSpec) -> None:
    assert m.base and m.window
    base = ctx.frames[m.base].copy().sort_values(ctx.keys())
    keys = [D] if ctx.by else []
    if m.window == "running":
        prior = _prior_total(ctx, ctx.reg.get(m.base))
        base[V] = base.groupby(keys)[V].cumsum() if keys else base[V].cumsum()
        if ctx.by:
            base[V] = base[V] + base[D].map(prior).fillna(0.0)
        else:
            base[V] = base[V] + prior.get(None, 0.0)
    else:
        freq = {"wtd": "week", "mtd": "month", "ytd": "year"}[m.window]

        def reset(d: dt.date) -> dt.date:
            if freq == "year":
                return d.replace(month=1, day=1)
            return period_start(d, freq, ctx.start)

        base["_r"] = base[P].map(reset)
        base[V] = base.groupby(keys + ["_r"])[V].cumsum()
    ctx.frames[m.name] = base[ctx.keys() + [V]]


def _prior_total(ctx: _Ctx, base: MetricSpec) -> dict[Any, float]:
    """The base metric summed over all time before the range (a running total's start)."""
    assert base.table
    src = Source(ctx.wh, base.table, ([ctx.by] if ctx.by else []) + list(base.where))
    time_col = CONTRACTS[base.table].time_column
    assert time_col
    src.t = src.t.filter(src.t[time_col] < ibis.literal(ctx.lo))
    if ctx.by:
        src.t = src.t.mutate(**{D: src.col(ctx.by).cast("string")})
        df = ctx.wh.execute(src.t.group_by(D).aggregate(v=agg_expr(src, base).cast("float64")))
        return {r[D]: float(r["v"] or 0.0) for _, r in df.iterrows()}
    v = ctx.wh.execute(src.t.aggregate(v=agg_expr(src, base).cast("float64")))["v"].iloc[0]
    return {None: 0.0 if v is None or pd.isna(v) else float(v)}


def _entity(src: Source, refs: list[str]) -> ir.StringValue:
    cols = [src.col(r).cast("string") for r in refs]
    out = cols[0]
    for c in cols[1:]:
        out = out.concat("|", c)
    return out


def _conversion(ctx: _Ctx, m: MetricSpec) -> None:
    assert m.from_ and m.to and m.within_days is not None
    a_src = Source(ctx.wh, m.from_.table, ([ctx.by] if ctx.by else []) + list(m.from_.where))
    a_time = m.from_.time or CONTRACTS[m.from_.table].time_column
    assert a_time
    a_tbl, a_local = ctx.time_range(a_src, a_time, ctx.lo, ctx.hi)
    a_src.t = a_tbl
    a_cond = where_expr(a_src, m.from_.where)
    mut: dict[str, ir.Value] = {"_e": _entity(a_src, m.entities()), "_t": a_local, P: bucket(a_local, ctx.grain, ctx.start)}
    if ctx.by:
        mut[D] = a_src.col(ctx.by).cast("string")
    a = (a_tbl.filter(a_cond) if a_cond is not None else a_tbl).mutate(**mut)
    keys = ["_e", P] + ([D] if ctx.by else [])
    a = a.group_by(keys).aggregate(_t0=a._t.min())
    b_src = Source(ctx.wh, m.to.table, list(m.to.where))
    b_time = m.to.time or CONTRACTS[m.to.table].time_column
    assert b_time
    reach = max(m.within_days, float(m.on_day or 0) + 1)
    b_lo = ctx.lo + dt.timedelta(days=min(m.after_days, 0.0))
    b_hi = ctx.hi + dt.timedelta(days=reach + 1)
    b_tbl, b_local = ctx.time_range(b_src, b_time, b_lo, b_hi)
    b_src.t = b_tbl
    b_cond = where_expr(b_src, m.to.where)
    b = (b_tbl.filter(b_cond) if b_cond is not None else b_tbl).mutate(
        _be=_entity(b_src, m.entities()), _bt=b_local
    )
    b = b.select("_be", "_bt")
    if m.on_day is not None:
        day0 = a._t0.truncate("D")
        preds = [
            a._e == b._be,
            b._bt >= day0 + ibis.interval(days=m.on_day),
            b._bt < day0 + ibis.interval(days=m.on_day + 1),
        ]
    else:
        preds = [
            a._e == b._be,
            b._bt > a._t0 + ibis.interval(seconds=int(m.after_days * 86400)),
            b._bt <= a._t0 + ibis.interval(seconds=int(m.within_days * 86400)),
        ]
    conv = a.semi_join(b, preds)
    gk = [P] + ([D] if ctx.by else [])
    entered = ctx.wh.execute(a.group_by(gk).aggregate(n=a.count()))
    converted = ctx.wh.execute(conv.group_by(gk).aggregate(c=conv.count()))
    df = entered.merge(converted, on=gk, how="left")
    df[P] = pd.to_datetime(df[P]).dt.date
    df[V] = _div(df["c"].fillna(0).astype(float), df["n"].astype(float))
    ctx.frames[m.name] = _fill(ctx, df[ctx.keys() + [V]], zero=False)


def _snapshot_days(ctx: _Ctx) -> list[tuple[dt.date, dt.date, dt.date]]:
    """Per period: (period, day before it starts, its last day), clipped to the range."""
    out = []
    for p in ctx.periods:
        eff_start = max(p, ctx.start)
        last = ctx.end if ctx.grain == "total" else min(next_period(p, ctx.grain) - dt.timedelta(days=1), ctx.end)
        out.append((p, eff_start - dt.timedelta(days=1), last))
    return out


def _subscriptions(ctx: _Ctx) -> pd.DataFrame:
    """Per period and account: MRR at start and end, and whether it ever paid before."""
    key = ("_subs", ctx.by)
    if str(key) in ctx.frames:
        return ctx.frames[str(key)]
    snaps = _snapshot_days(ctx)
    days = sorted({d for _, a, b in snaps for d in (a, b)})
    src = Source(ctx.wh, "subscriptions", [ctx.by] if ctx.by else [])
    s = src.t
    if ctx.by:
        s = s.mutate(**{D: src.col(ctx.by).cast("string")})
    cal = ibis.memtable({"_day": days})
    j = s.cross_join(cal).filter(
        (s.start_date <= cal._day) & (s.end_date.isnull() | (s.end_date > cal._day))
    )
    gk = ["account_id", "_day"] + ([D] if ctx.by else [])
    snap = ctx.wh.execute(j.group_by(gk).aggregate(mrr=j.mrr.sum().cast("float64")))
    first = ctx.wh.execute(s.group_by("account_id").aggregate(first=s.start_date.min()))
    first_map = {r.account_id: pd.Timestamp(r.first).date() for r in first.itertuples()}
    snap["_day"] = pd.to_datetime(snap["_day"]).dt.date
    idx = ["account_id"] + ([D] if ctx.by else [])
    by_day = {d: g.set_index(idx)["mrr"] for d, g in snap.groupby("_day")}
    rows = []
    empty = pd.Series(dtype=float)
    for p, before, last in snaps:
        s0 = by_day.get(before, empty)
        s1 = by_day.get(last, empty)
        both = pd.concat([s0.rename("s"), s1.rename("e")], axis=1).fillna(0.0)
        both = both[(both["s"] > 0) | (both["e"] > 0)].reset_index()
        both[P] = p
        both["seen_before"] = both["account_id"].map(lambda a, b=before: first_map.get(a, b) <= b)
        rows.append(both)
    cols = idx + ["s", "e", P, "seen_before"]
    df = pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=cols)
    ctx.frames[str(key)] = df
    return df


def _subscription(ctx: _Ctx, m: MetricSpec) -> None:
    df = _subscriptions(ctx).copy()
    s, e = df["s"], df["e"]
    up = (s == 0) & (e > 0)
    vals = {
        "mrr": e,
        "mrr_start": s,
        "new_mrr": e.where(up & ~df["seen_before"], 0.0),
        "reactivation_mrr": e.where(up & df["seen_before"], 0.0),
        "expansion_mrr": (e - s).where((s > 0) & (e > s), 0.0),
        "contraction_mrr": (s - e).where((e > 0) & (e < s), 0.0),
        "churned_mrr": s.where((s > 0) & (e == 0), 0.0),
        "customers": (e > 0).astype(float),
        "customers_start": (s > 0).astype(float),
        "new_customers": (up & ~df["seen_before"]).astype(float),
        "churned_customers": ((s > 0) & (e == 0)).astype(float),
    }
    df[V] = vals[str(m.measure)].astype(float)
    out = df.groupby(ctx.keys())[V].sum().reset_index()
    ctx.frames[m.name] = _fill(ctx, out, zero=True)


def _lifecycle(ctx: _Ctx, m: MetricSpec) -> None:
    """Users by state at each period: new, active (old and seen), silent, churned."""
    key = f"_life:{m.churn_days}:{ctx.by}"
    if key not in ctx.frames:
        ctx.frames[key] = _lifecycle_counts(ctx, m.churn_days)
    df = ctx.frames[key]
    out = df[ctx.keys() + [str(m.state)]].rename(columns={str(m.state): V})
    ctx.frames[m.name] = _fill(ctx, out, zero=True)


def _lifecycle_counts(ctx: _Ctx, churn_days: int) -> pd.DataFrame:
    snaps = _snapshot_days(ctx)
    cal = ibis.memtable(
        {
            "_pp": [p for p, _, _ in snaps],
            "_ps": [b + dt.timedelta(days=1) for _, b, _ in snaps],
            "_pe": [e for _, _, e in snaps],
        }
    )
    first_lo = min(b for _, b, _ in snaps) - dt.timedelta(days=churn_days)
    lo = utc_bound(first_lo, ctx.tz)
    ev = ctx.wh.table("events")
    ev = ev.filter((ev.ts >= ibis.literal(lo)) & (ev.ts < ibis.literal(ctx.hi)))
    ud = ev.mutate(_day=local_ts(ev.ts, ctx.tz, lo, ctx.hi).date()).select("user_id", "_day").distinct()
    j = ud.join(cal, [ud._day <= cal._pe, ud._day > cal._pe - ibis.interval(days=churn_days)])
    act = j.group_by(["user_id", "_pp"]).aggregate(_inp=(j._day >= j._ps).max())
    src = Source(ctx.wh, "users", [ctx.by] if ctx.by else [])
    u = src.t.mutate(_fl=local_ts(src.t.first_seen, ctx.tz, lo, ctx.hi).date())
    if ctx.by:
        u = u.mutate(**{D: src.col(ctx.by).cast("string")})
    uc = u.cross_join(cal).filter(u._fl <= cal._pe)
    x = uc.left_join(act, [uc.user_id == act.user_id, uc._pp == act._pp])
    is_new = x._fl >= x._ps
    seen = x._inp.notnull()
    gk = ["_pp"] + ([D] if ctx.by else [])
    agg = x.group_by(gk).aggregate(
        total=x.count(),
        new=x.count(where=is_new),
        active=x.count(where=~is_new & seen & (x._inp == True)),  # noqa: E712
        silent=x.count(where=~is_new & seen & (x._inp == False)),  # noqa: E712
        churned=x.count(where=~is_new & ~seen),
    )
    df = ctx.wh.execute(agg).rename(columns={"_pp": P})
    df[P] = pd.to_datetime(df[P]).dt.date
    for c in ("total", "new", "active", "silent", "churned"):
        df[c] = df[c].astype(float)
    return df


def _run(ctx: _Ctx, order: list[str]) -> None:
    reg = ctx.reg
    simple: dict[str, list[MetricSpec]] = {}
    for n in order:
        m = reg.get(n)
        if m.type == "simple":
            assert m.table
            simple.setdefault(m.table, []).append(m)
    for table, specs in simple.items():
        _simple_batch(ctx, table, specs)
    for n in order:
        m = reg.get(n)
        if n in ctx.frames:
            continue
        if m.type == "ratio":
            _ratio(ctx, m)
        elif m.type == "derived":
            _derived(ctx, m)
        elif m.type == "cumulative":
            _cumulative(ctx, m)
        elif m.type == "conversion":
            _conversion(ctx, m)
        elif m.type == "subscription":
            _subscription(ctx, m)
        elif m.type == "lifecycle":
            _lifecycle(ctx, m)


def _to_series(ctx: _Ctx, m: MetricSpec, lang: str) -> MetricSeries:
    df = ctx.frames[m.name]
    pts = []
    for rd in df.to_dict("records"):
        v = rd.get(V)
        val = None if v is None or pd.isna(v) or (isinstance(v, float) and math.isinf(v)) else float(v)
        per = rd[P]
        dim = rd.get(D) if ctx.by else None
        pts.append(Point(period=per, dim=None if dim is None or pd.isna(dim) else str(dim), value=val))
    pts.sort(key=lambda p: (p.period, p.dim or ""))
    return MetricSeries(
        name=m.name, label=m.label_for(lang), unit=m.unit, format=m.format, direction=m.direction, points=pts
    )


def check_request(reg: Registry, names: Sequence[str], grain: str, start: dt.date, end: dt.date, by: str | None) -> None:
    if not names:
        raise YunyingError("metrics.no_names")
    for n in names:
        reg.get(n)
    if grain not in GRAINS:
        raise YunyingError("metrics.bad_grain", grain=grain, grains=", ".join(GRAINS))
    if end < start:
        raise YunyingError("metrics.bad_range", start=start.isoformat(), end=end.isoformat())
    if by:
        for n in names:
            if by not in allowed_dims(reg, n):
                raise YunyingError(
                    "metrics.dim_not_allowed", dim=by, name=n, dims=", ".join(sorted(allowed_dims(reg, n))) or "-"
                )


def cache_key(wh: Warehouse, reg: Registry, names: Sequence[str], grain: str, start: dt.date, end: dt.date, by: str | None, lang: str) -> str:
    body = json.dumps(
        {
            "specs": [reg.deep_hash(n) for n in names],
            "names": list(names),
            "grain": grain,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "by": by,
            "engine": wh.engine,
            "data": wh.data_version(),
            "tz": wh.settings.timezone,
            "lang": lang,
        },
        sort_keys=True,
    )
    return hashlib.sha256(body.encode()).hexdigest()[:32]


def compute(
    wh: Warehouse,
    registry: Registry,
    names: Sequence[str],
    grain: str = "day",
    start: dt.date | None = None,
    end: dt.date | None = None,
    by: str | None = None,
    use_cache: bool = True,
) -> ComputeResult:
    """Compute ``names`` per period (and per ``by`` value) between ``start`` and ``end`` inclusive."""
    end = end or clock.today(wh.settings.timezone)
    start = start or end - dt.timedelta(days=29)
    names = list(dict.fromkeys(names))
    check_request(registry, names, grain, start, end, by)
    lang = get_language()
    wh.refresh()
    key = cache_key(wh, registry, names, grain, start, end, by, lang)
    cache_file = wh.settings.data_dir / "cache" / "metrics" / f"{key}.json"
    if use_cache and cache_file.exists():
        res = ComputeResult.model_validate_json(cache_file.read_text(encoding="utf-8"))
        res.cached = True
        return res
    ctx = _Ctx(wh, registry, grain, start, end, by)
    _run(ctx, registry.closure(names))
    res = ComputeResult(
        grain=grain,
        start=start,
        end=end,
        by=by,
        engine=wh.engine,
        data_version=wh.data_version(),
        series=[_to_series(ctx, registry.get(n), lang) for n in names],
    )
    if use_cache:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache_file.with_suffix(".tmp")
        tmp.write_text(res.model_dump_json(), encoding="utf-8")
        tmp.replace(cache_file)
    return res


def compute_totals(
    wh: Warehouse, registry: Registry, names: Sequence[str], start: dt.date, end: dt.date, by: str | None = None
) -> dict[str, dict[str | None, float | None]]:
    """One value per metric (and per ``by`` value) over the whole range."""
    res = compute(wh, registry, names, "total", start, end, by)
    return {s.name: {p.dim: p.value for p in s.points} for s in res.series}
