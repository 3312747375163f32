"""Stickiness (粘性): on how many days of each week or month were users active?

For every (user, week|month) with at least one active day in the range, count the user's
distinct active local days in it; the result is the distribution (1 day, 2 days, …) summed
over the periods, plus one row per period. Only whole periods inside the range are counted,
so a 7-day user really was active every day of that week. DAU/MAU as a ratio is in trends.

A breakdown counts, per value, the days on which a user did the event with that value
(PostHog's rule): a user whose events carry two values in one period counts under both,
so the values can add up to more than all users.
"""

from __future__ import annotations

from calendar import monthrange
from typing import Any, Literal

import ibis.expr.types as ir
import pandas as pd
from pydantic import BaseModel, Field

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
    period_index,
    period_label,
    period_of_date,
    period_start,
)
from yunying.errors import YunyingError
from yunying.i18n import t as tr


class StickinessQuery(BaseModel):
    model_config = QUERY_CONFIG

    event: EventName | None = None
    event_filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    period: Literal["week", "month"] = "week"
    dates: DateRange
    filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    breakdown: Breakdown | None = None  # property of the active events


class StickinessPeriod(BaseModel):
    period: str
    days: int  # days in the period
    users: list[int]  # index i = users active on i+1 days
    average_days: float | None


class StickinessBreakdown(BaseModel):
    """The distribution of one breakdown value (the top values, then ``(other)``)."""

    value: str
    distribution: list[int]
    share: list[float]
    average_days: float | None
    periods: list[StickinessPeriod]


class StickinessResult(BaseModel):
    period: Literal["week", "month"]
    max_days: int
    distribution: list[int]  # index i = user-periods with i+1 active days
    share: list[float]
    average_days: float | None
    periods: list[StickinessPeriod]
    breakdowns: list[StickinessBreakdown] = Field(default_factory=list)  # empty: no breakdown

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        """One row per number of active days; with a breakdown, a leading group column and
        the all-users rows first, then each value's rows."""
        headers = [tr("stickiness.col.days"), tr("stickiness.col.users"), tr("stickiness.col.share")]
        blocks = [(tr("stickiness.group_all"), self.distribution, self.share)] + [
            (b.value, b.distribution, b.share) for b in self.breakdowns
        ]
        rows: list[list[Any]] = []
        for value, dist, share in blocks if self.breakdowns else blocks[:1]:
            rows.extend(
                ([value] if self.breakdowns else []) + [i + 1, n, f"{s:.1%}"]
                for i, (n, s) in enumerate(zip(dist, share, strict=True))
            )
        if self.breakdowns:
            headers = [tr("stickiness.col.group"), *headers]
        return headers, rows


def _period_days(idx: int, period: str) -> int:
    if period == "week":
        return 7
    s = period_start(idx, "month")
    return monthrange(s.year, s.month)[1]


def run_stickiness(wh: Any, q: StickinessQuery) -> StickinessResult:
    engine = engine_of(wh)
    tz = wh.settings.timezone
    first = period_of_date(q.dates.from_, q.period)
    last = period_of_date(q.dates.to, q.period)
    # only whole periods inside the range
    if period_of_date(q.dates.from_, "day") != period_of_date(
        period_start(first, q.period).date(), "day"
    ):
        first += 1
    if period_of_date(q.dates.to, "day") != period_of_date(
        period_start(last, q.period).date(), "day"
    ) + _period_days(last, q.period) - 1:
        last -= 1
    if first > last:
        raise YunyingError("stickiness.no_whole_period", period=q.period)
    start, end = q.dates.utc_bounds(tz)
    t = apply_filters(engine, wh.table("events"), q.filters)
    t = t.filter(
        t.ts >= start, t.ts < end, event_cond(engine, t, EventSpec(event=q.event, filters=q.event_filters))
    )
    days = t.select(
        "user_id", p=period_index(engine, t.ts, q.period, tz), d=period_index(engine, t.ts, "day", tz)
    ).distinct()
    days = days.filter(days.p >= first, days.p <= last)
    per_user = days.group_by(["user_id", "p"]).aggregate(n=days.count())
    df = wh.execute(per_user.group_by(["p", "n"]).aggregate(users=per_user.count()))
    dist, per = _tally(df, q.period, first, last)
    breakdowns = [] if q.breakdown is None else _breakdowns(wh, q, q.breakdown, t, first, last)
    return StickinessResult(
        period=q.period,
        max_days=_max_days(q.period),
        distribution=dist,
        share=_share(dist),
        average_days=_avg(dist),
        periods=_periods(per, q.period),
        breakdowns=breakdowns,
    )


def _max_days(period: str) -> int:
    return 7 if period == "week" else 31


def _avg(xs: list[int]) -> float | None:
    s = sum(xs)
    return sum((i + 1) * v for i, v in enumerate(xs)) / s if s else None


def _share(dist: list[int]) -> list[float]:
    total = sum(dist)
    return [v / total if total else 0.0 for v in dist]


def _tally(
    df: pd.DataFrame, period: str, first: int, last: int
) -> tuple[list[int], dict[int, list[int]]]:
    """(p, n, users) rows -> the overall distribution and one per period."""
    dist = [0] * _max_days(period)
    per: dict[int, list[int]] = {p: [0] * _period_days(p, period) for p in range(first, last + 1)}
    for r in df.itertuples():
        p, n, u = int(r.p), int(r.n), int(r.users)
        dist[n - 1] += u
        per[p][n - 1] += u
    return dist, per


def _periods(per: dict[int, list[int]], period: str) -> list[StickinessPeriod]:
    return [
        StickinessPeriod(period=period_label(p, period), days=len(v), users=v, average_days=_avg(v))
        for p, v in per.items()
    ]


def _breakdowns(
    wh: Any, q: StickinessQuery, bd: Breakdown, t: ir.Table, first: int, last: int
) -> list[StickinessBreakdown]:
    """Per value: the user's active days among their events carrying that value.

    The top values are ranked by distinct users over the events of the whole periods
    counted, so a value seen only in a cut-off partial week does not take a slot.
    """
    engine = engine_of(wh)
    tz = wh.settings.timezone
    t = t.mutate(p=period_index(engine, t.ts, q.period, tz))
    t = t.filter(t.p >= first, t.p <= last)
    t, kept = breakdown_column(wh, t, bd)
    days = t.select("user_id", "p", bd=t._bd, d=period_index(engine, t.ts, "day", tz)).distinct()
    per_user = days.group_by(["user_id", "bd", "p"]).aggregate(n=days.count())
    df = wh.execute(per_user.group_by(["bd", "p", "n"]).aggregate(users=per_user.count()))
    values = df["bd"].astype(str)
    out = []
    for value in dict.fromkeys([*kept, OTHER]):
        if not (values == value).any():
            continue
        dist, per = _tally(df[values == value], q.period, first, last)
        out.append(
            StickinessBreakdown(
                value=value, distribution=dist, share=_share(dist), average_days=_avg(dist),
                periods=_periods(per, q.period),
            )
        )
    return out
