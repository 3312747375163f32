"""Lifecycle (用户生命周期) per period: new, returning, resurrecting, dormant.

For each hour/day/week/month in the range, every user active in it is exactly one of:
new (新增: first-ever active period), returning (留存/持续活跃: also active the previous
period) or resurrecting (回流: active before, but not the previous period). Dormant (沉默)
users were active the previous period and not this one; they are shown as a negative
number, the usual lifecycle chart. "Active" is doing the chosen event (any event by default).
"""

from __future__ import annotations

from typing import Any, Literal

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, Field

from yunying.analytics.common import (
    MAX_FILTERS,
    QUERY_CONFIG,
    DateRange,
    EventName,
    EventSpec,
    Grain,
    PropertyFilter,
    apply_filters,
    engine_of,
    event_cond,
    period_index,
    period_label,
    period_of_date,
    write_user_list,
)
from yunying.errors import YunyingError
from yunying.i18n import t as tr

Stage = Literal["new", "returning", "resurrecting", "dormant"]
STAGES: tuple[Stage, ...] = ("new", "returning", "resurrecting", "dormant")


class LifecycleQuery(BaseModel):
    model_config = QUERY_CONFIG

    event: EventName | None = None  # None = any event
    event_filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)
    grain: Grain = "week"
    dates: DateRange
    filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)


class LifecyclePeriod(BaseModel):
    period: str
    new: int
    returning: int
    resurrecting: int
    dormant: int  # negative: users lost since the previous period
    active: int


class LifecycleResult(BaseModel):
    grain: Grain
    periods: list[LifecyclePeriod]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [tr("lifecycle.col.period")] + [tr(f"lifecycle.stage.{s}") for s in STAGES] + [
            tr("lifecycle.col.active")
        ]
        rows = [
            [p.period, p.new, p.returning, p.resurrecting, p.dormant, p.active] for p in self.periods
        ]
        return headers, rows


def _range(q: LifecycleQuery) -> tuple[int, int]:
    if q.grain == "hour":
        return period_of_date(q.dates.from_, "hour"), period_of_date(q.dates.to, "hour") + 23
    return period_of_date(q.dates.from_, q.grain), period_of_date(q.dates.to, q.grain)


def lifecycle_stages(wh: Any, q: LifecycleQuery) -> ir.Table:
    """One row per (user_id, p, stage) for the periods of the range."""
    engine = engine_of(wh)
    tz = wh.settings.timezone
    _, end = q.dates.utc_bounds(tz)
    t = apply_filters(engine, wh.table("events"), q.filters)
    t = t.filter(event_cond(engine, t, EventSpec(event=q.event, filters=q.event_filters)), t.ts < end)
    act = t.select("user_id", p=period_index(engine, t.ts, q.grain, tz)).distinct()
    first_p, last_p = _range(q)
    first = act.group_by("user_id").aggregate(f=act.p.min())
    prev = act.select(pu="user_id", pp=act.p + 1)
    cur = act.filter(act.p >= first_p, act.p <= last_p)
    a = cur.join(first, "user_id").left_join(prev, [cur.user_id == prev.pu, cur.p == prev.pp])
    stage = ibis.cases(
        (a.p == a.f, "new"),
        (a.pp.notnull(), "returning"),
        else_="resurrecting",
    )
    active = a.select("user_id", "p", stage=stage)
    # dormant: active in p-1, not in p
    nxt = act.select(nu="user_id", np_=act.p - 1)
    prevs = act.filter(act.p >= first_p - 1, act.p <= last_p - 1)
    d = prevs.left_join(nxt, [prevs.user_id == nxt.nu, prevs.p == nxt.np_])
    dormant = d.filter(d.nu.isnull()).select("user_id", p=d.p + 1, stage=ibis.literal("dormant"))
    return ibis.union(active, dormant, distinct=False)


def run_lifecycle(wh: Any, q: LifecycleQuery) -> LifecycleResult:
    st = lifecycle_stages(wh, q)
    df = wh.execute(st.group_by(["p", "stage"]).aggregate(users=st.count()))
    cnt = {(int(r.p), str(r.stage)): int(r.users) for r in df.itertuples()}
    first_p, last_p = _range(q)
    periods = []
    for p in range(first_p, last_p + 1):
        n, r, s = (cnt.get((p, k), 0) for k in ("new", "returning", "resurrecting"))
        periods.append(
            LifecyclePeriod(
                period=period_label(p, q.grain),
                new=n,
                returning=r,
                resurrecting=s,
                dormant=-cnt.get((p, "dormant"), 0),
                active=n + r + s,
            )
        )
    return LifecycleResult(grain=q.grain, periods=periods)


def export_lifecycle_users(wh: Any, q: LifecycleQuery, period: str, stage: str, path: str) -> int:
    """Users in one stage of one period (its label, e.g. 2024-03-04) — for targeting."""
    if stage not in STAGES:
        raise YunyingError("lifecycle.bad_stage", stage=stage, stages=", ".join(STAGES))
    st = lifecycle_stages(wh, q)
    df = wh.execute(st.filter(st.stage == stage).select("user_id", "p"))
    labels = {period_label(p, q.grain) for p in range(*_range(q))} | {
        period_label(_range(q)[1], q.grain)
    }
    if period not in labels:
        raise YunyingError("lifecycle.bad_period", period=period)
    ids = [str(r.user_id) for r in df.itertuples() if period_label(int(r.p), q.grain) == period]
    return write_user_list(ids, path)
