"""Rule tree → one Ibis boolean expression over ``users`` (never string-built SQL).

Each condition becomes a predicate on ``users.user_id``: attribute tests directly, and
behaviour tests as ``user_id IN (subquery)``. A count condition that a user with no rows
would satisfy (``orders count lte 1``) is written as ``NOT IN (users failing it)`` so that
users without any events or orders are counted correctly. The same expression runs on
DuckDB and Spark.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
import pyarrow as pa

from yunying.analytics.common import compare_text
from yunying.errors import YunyingError
from yunying.segments.rules import (
    And,
    EventCond,
    FirstSeenCond,
    FunnelCond,
    LifecycleCond,
    Not,
    Or,
    OrdersCond,
    Period,
    PropertyCond,
    RfmCond,
    Rule,
    SegmentRef,
    TagCond,
)
from yunying.segments.timeutil import zone
from yunying.warehouse.engine import Warehouse

_OPS: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}
USER_COLUMNS = ("user_id", "channel")


@ibis.udf.scalar.builtin(name="json_extract_string")
def _seg_duck_json(doc: str, path: str) -> str:  # type: ignore[empty-body]
    """DuckDB: a JSON value as text (NULL when missing)."""


@ibis.udf.scalar.builtin(name="get_json_object")
def _seg_spark_json(doc: str, path: str) -> str:  # type: ignore[empty-body]
    """Spark: a JSON value as text, natively."""


@dataclass(frozen=True)
class SegmentInfo:
    """What the compiler needs of a referenced segment."""

    name: str
    kind: str
    rule: Rule | None
    members: Sequence[str] = ()


class Resolver(Protocol):
    """Looks up other segments and tags (they live in the app database)."""

    def segment(self, name: str) -> SegmentInfo | None: ...

    def tag_members(self, tag: str) -> list[str]: ...


@dataclass
class Compiler:
    """Compiles rules for one warehouse, one evaluation instant and one time zone."""

    wh: Warehouse
    as_of: datetime
    tz: str
    resolver: Resolver
    _users: ir.Table | None = field(default=None, init=False)

    @property
    def users(self) -> ir.Table:
        if self._users is None:
            self._users = self.wh.table("users")
        return self._users

    # -- entry points ---------------------------------------------------------------
    def members(self, rule: Rule) -> ir.Table:
        """Distinct ``user_id`` of the users matching ``rule``."""
        u = self.users
        return u.filter(self.predicate(rule)).select("user_id").distinct()

    def predicate(self, rule: Rule, path: str = "rule", stack: tuple[str, ...] = ()) -> ir.BooleanValue:
        if isinstance(rule, And | Or):
            key = "and" if isinstance(rule, And) else "or"
            parts = [self.predicate(r, f"{path}.{key}[{i}]", stack) for i, r in enumerate(rule.items)]
            out = parts[0]
            for p in parts[1:]:
                out = (out & p) if isinstance(rule, And) else (out | p)
            return out
        if isinstance(rule, Not):
            return ~self.predicate(rule.item, f"{path}.not", stack)
        if isinstance(rule, PropertyCond):
            return self._property(rule)
        if isinstance(rule, FirstSeenCond):
            lo, hi = rule.within.bounds(self.as_of, self.tz)
            return self._in_range(self.users.first_seen, lo, hi)
        if isinstance(rule, EventCond):
            return self._event(rule)
        if isinstance(rule, OrdersCond):
            return self._orders(rule)
        if isinstance(rule, RfmCond):
            return self._rfm(rule)
        if isinstance(rule, LifecycleCond):
            return self._lifecycle(rule)
        if isinstance(rule, FunnelCond):
            return self._funnel(rule)
        if isinstance(rule, SegmentRef):
            return self._segment(rule, f"{path}.segment", stack)
        if isinstance(rule, TagCond):
            return self._in_ids(self.resolver.tag_members(rule.tag))
        raise TypeError(type(rule))  # pragma: no cover - parse_rule builds only these

    # -- helpers ------------------------------------------------------------------------
    def _in(self, sub: ir.Table) -> ir.BooleanValue:
        """``users.user_id IN (sub.user_id)``; NULL ids are dropped so NOT IN stays exact."""
        sub = sub.filter(sub.user_id.notnull())
        return self.users.user_id.isin(sub.user_id)

    def _in_ids(self, ids: Sequence[str]) -> ir.BooleanValue:
        if not ids:
            return ibis.literal(False)
        mem = ibis.memtable(pa.table({"user_id": pa.array(sorted(set(ids)), pa.string())}))
        return self.users.user_id.isin(mem.user_id)

    @staticmethod
    def _in_range(col: ir.TimestampValue, lo: datetime | None, hi: datetime | None) -> ir.BooleanValue:
        cond: ir.BooleanValue = ibis.literal(True)
        if lo is not None:
            cond = cond & (col >= lo)
        if hi is not None:
            cond = cond & (col < hi)
        return cond

    def _filtered(self, table: str, within: Period | None) -> ir.Table:
        t = self.wh.table(table)
        if within is None:
            return t.filter(t.ts < self.as_of)
        lo, hi = within.bounds(self.as_of, self.tz)
        return t.filter(self._in_range(t.ts, lo, hi))

    def _count_pred(self, agg: ir.Table, op: str, value: Decimal, lit: ir.Scalar) -> ir.BooleanValue:
        """Compare a per-user aggregate ``v``; users absent from ``agg`` have the value 0."""
        cond = _OPS[op](agg.v, lit)
        if _OPS[op](Decimal(0), value):
            return ~self._in(agg.filter(~cond))
        return self._in(agg.filter(cond))

    # -- conditions -----------------------------------------------------------------------
    def _text(self, name: str) -> ir.StringValue:
        u = self.users
        key = name.removeprefix("properties.")
        if not name.startswith("properties.") and key in USER_COLUMNS:
            return u[key].cast("string")  # type: ignore[no-any-return]
        if self.wh.engine == "spark":
            return _seg_spark_json(u.properties, f"$.{key}")  # type: ignore[no-any-return]
        return _seg_duck_json(u.properties, f'$."{key}"')  # type: ignore[no-any-return]

    def _property(self, c: PropertyCond) -> ir.BooleanValue:
        return compare_text(self._text(c.field), c.op, c.value)

    def _event(self, c: EventCond) -> ir.BooleanValue:
        e = self._filtered("events", c.within)
        e = e.filter(e.event == c.name)
        agg = e.group_by("user_id").agg(n=e.count())
        did = self._in(agg.filter(agg.n >= c.times))
        return did if c.did else ~did

    def _orders(self, c: OrdersCond) -> ir.BooleanValue:
        o = self._filtered("orders", c.within)
        o = o.filter(o.status.isin(list(c.status)))
        if c.measure == "count":
            agg = o.group_by("user_id").agg(v=o.count())
            return self._count_pred(agg, c.op, c.value, ibis.literal(float(c.value), type="float64"))
        agg = o.group_by("user_id").agg(v=o.amount.sum())
        return self._count_pred(agg, c.op, c.value, ibis.literal(c.value, type=dt.Decimal(18, 2)))

    def local_day(self) -> date:
        """The evaluation instant's calendar day in the project time zone."""
        return self.as_of.replace(tzinfo=UTC).astimezone(zone(self.tz)).date()

    def _local_day_of(self, instant: datetime) -> date:
        return instant.replace(tzinfo=UTC).astimezone(zone(self.tz)).date()

    def _rfm(self, c: RfmCond) -> ir.BooleanValue:
        from yunying.analytics.rfm import RfmQuery, scored

        q = RfmQuery(as_of=self.local_day(), lookback_days=c.lookback_days, threshold=c.threshold)
        t, *_ = scored(self.wh, q)
        return self._in(t.filter(t.rfm_class == c.rfm_class))

    def lifecycle_table(self, period_days: int) -> ir.Table:
        """Per user (first seen before ``as_of``): the lifecycle stage."""
        p = timedelta(days=period_days)
        a = self.as_of
        e = self.wh.table("events")
        e = e.filter(e.ts < a)

        def seen(lo: datetime, hi: datetime) -> ir.IntegerValue:
            return ((e.ts >= lo) & (e.ts < hi)).ifelse(1, 0).max()  # type: ignore[no-any-return]

        act = e.group_by("user_id").agg(
            c=seen(a - p, a), p1=seen(a - 2 * p, a - p), p2=seen(a - 3 * p, a - 2 * p)
        )
        u = self.users.filter(self.users.first_seen < a).select("user_id", "first_seen")
        j = u.left_join(act, "user_id")
        cur, prev, prev2 = (j[x].fill_null(0) == 1 for x in ("c", "p1", "p2"))
        stage = ibis.cases(
            (j.first_seen >= a - p, "new"),
            (cur & prev, "active"),
            (cur & ~prev & prev2, "returning"),
            (cur, "resurrected"),
            (prev, "dormant"),
            else_="churned",
        )
        return j.select("user_id", stage=stage)

    def _lifecycle(self, c: LifecycleCond) -> ir.BooleanValue:
        if c.grain is None:
            t = self.lifecycle_table(c.period_days)
            return self._in(t.filter(t.stage == c.stage))
        from yunying.analytics.common import DateRange
        from yunying.analytics.lifecycle import LifecycleQuery, lifecycle_stages

        day = self.local_day()
        q = LifecycleQuery(grain=c.grain, dates=DateRange(**{"from": day, "to": day}))
        st = lifecycle_stages(self.wh, q)
        theirs = {"new": "new", "active": "returning", "resurrected": "resurrecting"}
        return self._in(st.filter(st.stage == theirs.get(c.stage, c.stage)))

    def _funnel(self, c: FunnelCond) -> ir.BooleanValue:
        from yunying.analytics.common import DateRange
        from yunying.analytics.funnels import FunnelQuery, FunnelStep, funnel_levels

        lo, hi = c.within.bounds(self.as_of, self.tz)
        first = self._local_day_of(lo) if lo is not None else date(2000, 1, 1)
        last = self._local_day_of((hi or self.as_of) - timedelta(microseconds=1))
        if last < first:
            return ibis.literal(False)
        q = FunnelQuery(
            steps=[FunnelStep(event=s) for s in c.steps],
            dates=DateRange(**{"from": first, "to": last}),
            window_days=c.window_days,
            time_to_convert=False,
        )
        lv = funnel_levels(self.wh, q)
        return self._in(lv.filter(lv.level == c.dropped_at - 1))

    def _segment(self, c: SegmentRef, path: str, stack: tuple[str, ...]) -> ir.BooleanValue:
        if c.name in stack:
            raise YunyingError("segment.cycle", path=path, chain=" → ".join([*stack, c.name]))
        info = self.resolver.segment(c.name)
        if info is None:
            raise YunyingError("segment.rule_invalid", path=path, reason=f"no segment named {c.name!r}")
        if info.kind == "dynamic" and info.rule is not None:
            return self.predicate(info.rule, f"{path}({c.name})", (*stack, c.name))
        return self._in_ids(info.members)
