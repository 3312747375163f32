"""Trends (趋势): an event measure per hour/day/week/month, optionally broken down.

Measures: event count (次数), unique users (人数), sum/avg/min/max/percentiles of a numeric
property (e.g. revenue), and DAU/WAU/MAU (日/周/月活跃用户: distinct users active on the
day, in the 7 or 30 days ending on it). Breakdowns keep the top N values by users and put
the rest into "(other)".
"""

from __future__ import annotations

from typing import Any, Literal

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, Field, model_validator

from yunying.analytics.common import (
    MAX_FILTERS,
    OTHER,
    QUERY_CONFIG,
    Breakdown,
    DateRange,
    EventName,
    Grain,
    PropertyFilter,
    apply_filters,
    breakdown_column,
    check_property,
    engine_of,
    events_in_range,
    period_index,
    period_label,
    period_of_date,
    prop_number,
    to_float,
)
from yunying.i18n import t as tr

Measure = Literal[
    "count", "users", "sum", "avg", "min", "max", "p50", "p90", "p95", "p99", "dau", "wau", "mau"
]
NUMERIC = ("sum", "avg", "min", "max", "p50", "p90", "p95", "p99")
ACTIVE = {"dau": 1, "wau": 7, "mau": 30}


class TrendsQuery(BaseModel):
    """``measure`` of ``event`` (None = any event) per ``grain`` over ``dates``."""

    model_config = QUERY_CONFIG

    event: EventName | None = None
    measure: Measure = "count"
    property: str | None = Field(default=None, max_length=64)  # numeric property for sum/avg/min/max/pNN
    grain: Grain = "day"
    dates: DateRange
    filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    breakdown: Breakdown | None = None

    @model_validator(mode="after")
    def _check(self) -> TrendsQuery:
        if self.measure in NUMERIC and not self.property:
            raise ValueError(f"measure '{self.measure}' needs a numeric property")
        if self.property is not None:
            check_property(self.property)
        if self.measure in ACTIVE and self.grain != "day":
            raise ValueError(f"measure '{self.measure}' is computed per day (grain 'day')")
        return self


class TrendPoint(BaseModel):
    period: str
    value: float | None


class TrendSeries(BaseModel):
    group: str
    points: list[TrendPoint]
    total: float | None  # over the whole range (same measure); None for DAU/WAU/MAU


class TrendsResult(BaseModel):
    measure: Measure
    grain: Grain
    series: list[TrendSeries]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [tr("trends.col.period")] + [s.group for s in self.series]
        periods = [p.period for p in self.series[0].points] if self.series else []
        rows: list[list[Any]] = []
        for i, p in enumerate(periods):
            rows.append([p] + [s.points[i].value for s in self.series])
        rows.append([tr("trends.total")] + [s.total for s in self.series])
        return headers, rows


def _agg(t: ir.Table, q: TrendsQuery, engine: str) -> ir.Value:
    m = q.measure
    if m == "count":
        return t.count()
    if m == "users":
        return t.user_id.nunique()
    assert q.property is not None
    x = t._x
    if m == "sum":
        return x.sum()
    if m == "avg":
        return x.mean()
    if m == "min":
        return x.min()
    if m == "max":
        return x.max()
    qv = {"p50": 0.5, "p90": 0.9, "p95": 0.95, "p99": 0.99}[m]
    return x.quantile(qv)


def run_trends(wh: Any, q: TrendsQuery) -> TrendsResult:
    """One series per breakdown value (or one "all" series), every period filled."""
    engine = engine_of(wh)
    tz = wh.settings.timezone
    if q.measure in ACTIVE:
        return _active(wh, q)
    t = events_in_range(wh, q.dates, q.filters)
    if q.event is not None:
        t = t.filter(t.event == q.event)
    if q.property:
        t = t.mutate(_x=prop_number(engine, t, q.property))
    groups: list[str] = [tr("trends.all")]
    if q.breakdown is not None:
        t, kept = breakdown_column(wh, t, q.breakdown)
        groups = kept + [OTHER]
    else:
        t = t.mutate(_bd=ibis.literal(groups[0]))
    t = t.mutate(_p=period_index(engine, t.ts, q.grain, tz))
    df = wh.execute(t.group_by(["_bd", "_p"]).aggregate(v=_agg(t, q, engine)))
    tot = wh.execute(t.group_by("_bd").aggregate(v=_agg(t, q, engine)))
    first, last = _bounds(q)
    vals: dict[tuple[str, int], float | None] = {
        (str(r._1), int(r._2)): to_float(r.v) for r in df.itertuples()
    }
    totals = {str(r._1): to_float(r.v) for r in tot.itertuples()}
    empty = 0.0 if q.measure in ("count", "users", "sum") else None
    series = []
    for g in groups:
        if g == OTHER and g not in totals:
            continue
        pts = [
            TrendPoint(period=period_label(p, q.grain), value=vals.get((g, p), empty))
            for p in range(first, last + 1)
        ]
        series.append(TrendSeries(group=g, points=pts, total=totals.get(g, empty)))
    return TrendsResult(measure=q.measure, grain=q.grain, series=series)


def _bounds(q: TrendsQuery) -> tuple[int, int]:
    if q.grain == "hour":
        return period_of_date(q.dates.from_, "hour"), period_of_date(q.dates.to, "hour") + 23
    return period_of_date(q.dates.from_, q.grain), period_of_date(q.dates.to, q.grain)


def _active(wh: Any, q: TrendsQuery) -> TrendsResult:
    """DAU/WAU/MAU: each active user-day counts for the N days ending at it."""
    engine = engine_of(wh)
    tz = wh.settings.timezone
    n = ACTIVE[q.measure]
    t = wh.table("events")
    start, end = q.dates.utc_bounds(tz)
    from datetime import timedelta

    t = t.filter(t.ts >= start - timedelta(days=n), t.ts < end)
    t = apply_filters(engine, t, q.filters)
    if q.event is not None:
        t = t.filter(t.event == q.event)
    groups = [tr("trends.all")]
    if q.breakdown is not None:
        t, kept = breakdown_column(wh, t, q.breakdown)
        groups = kept + [OTHER]
    else:
        t = t.mutate(_bd=ibis.literal(groups[0]))
    days = t.select("user_id", "_bd", d=period_index(engine, t.ts, "day", tz)).distinct()
    offs = ibis.memtable({"o": list(range(n))})
    x = days.cross_join(offs)
    x = x.mutate(day=x.d + x.o)
    first, last = _bounds(q)
    x = x.filter(x.day >= first, x.day <= last)
    df = wh.execute(x.group_by(["_bd", "day"]).aggregate(v=x.user_id.nunique()))
    vals = {(str(r._1), int(r.day)): float(r.v) for r in df.itertuples()}
    series = []
    for g in groups:
        if g == OTHER and not any(k[0] == OTHER for k in vals):
            continue
        pts = [
            TrendPoint(period=period_label(p, "day"), value=vals.get((g, p), 0.0))
            for p in range(first, last + 1)
        ]
        series.append(TrendSeries(group=g, points=pts, total=None))
    return TrendsResult(measure=q.measure, grain=q.grain, series=series)
