"""Stickiness (粘性): on how many days of each week or month were users active?

For every (user, week|month) with at least one active day in the range, count the user's
distinct active local days in it; the result is the distribution (1 day, 2 days, …) summed
over the periods, plus one row per period. Only whole periods inside the range are counted,
so a 7-day user really was active every day of that week. DAU/MAU as a ratio is in trends.
"""

from __future__ import annotations

from calendar import monthrange
from typing import Any, Literal

from pydantic import BaseModel, Field

from yunying.analytics.common import (
    DateRange,
    EventSpec,
    PropertyFilter,
    apply_filters,
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
    event: str | None = None
    event_filters: list[PropertyFilter] = Field(default_factory=list)
    period: Literal["week", "month"] = "week"
    dates: DateRange
    filters: list[PropertyFilter] = Field(default_factory=list)


class StickinessPeriod(BaseModel):
    period: str
    days: int  # days in the period
    users: list[int]  # index i = users active on i+1 days
    average_days: float | None


class StickinessResult(BaseModel):
    period: Literal["week", "month"]
    max_days: int
    distribution: list[int]  # index i = user-periods with i+1 active days
    share: list[float]
    average_days: float | None
    periods: list[StickinessPeriod]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [tr("stickiness.col.days"), tr("stickiness.col.users"), tr("stickiness.col.share")]
        rows: list[list[Any]] = [
            [i + 1, n, f"{s:.1%}"] for i, (n, s) in enumerate(zip(self.distribution, self.share, strict=True))
        ]
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
    max_days = 7 if q.period == "week" else 31
    dist = [0] * max_days
    per: dict[int, list[int]] = {p: [0] * _period_days(p, q.period) for p in range(first, last + 1)}
    for r in df.itertuples():
        p, n, u = int(r.p), int(r.n), int(r.users)
        dist[n - 1] += u
        per[p][n - 1] += u
    total = sum(dist)

    def avg(xs: list[int]) -> float | None:
        s = sum(xs)
        return sum((i + 1) * v for i, v in enumerate(xs)) / s if s else None

    return StickinessResult(
        period=q.period,
        max_days=max_days,
        distribution=dist,
        share=[v / total if total else 0.0 for v in dist],
        average_days=avg(dist),
        periods=[
            StickinessPeriod(
                period=period_label(p, q.period), days=len(v), users=v, average_days=avg(v)
            )
            for p, v in per.items()
        ],
    )
