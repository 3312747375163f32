"""Query pieces every analysis shares: date ranges, property filters, breakdowns, time buckets.

Timestamps in the warehouse are naive UTC; operations people think in the project time
zone, so date ranges and day/week/month buckets are computed in ``settings.timezone``.
Everything here builds Ibis expressions; user values only ever become bound literals.
"""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import ibis
import ibis.expr.datatypes as dt
import ibis.expr.types as ir
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from yunying import csvsafe
from yunying.errors import YunyingError

Grain = Literal["hour", "day", "week", "month"]
Operator = Literal[
    "eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "is_set", "is_not_set"
]
Scalar = str | int | float | bool
OPERATORS: tuple[str, ...] = Operator.__args__  # type: ignore[attr-defined]
GRAINS: tuple[str, ...] = Grain.__args__  # type: ignore[attr-defined]

# Columns of ``events`` that a filter or breakdown may name directly; anything else is a
# key of the JSON ``properties`` column.
EVENT_COLUMNS = ("event", "user_id", "account_id", "session_id", "event_id")
_PROPERTY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")
_TRUNC = {"hour": "h", "day": "D", "week": "W", "month": "M"}
USER_PREFIX = "user."
USER_COLUMNS = ("channel", "user_id")
OTHER = "(other)"
NONE_LABEL = "(none)"


@ibis.udf.scalar.builtin(name="timezone")
def _duck_timezone(zone: str, ts: dt.Timestamp(timezone="UTC")) -> dt.Timestamp():  # type: ignore[valid-type]
    """DuckDB: wall-clock time of a UTC instant in ``zone``."""


@ibis.udf.scalar.builtin(name="from_utc_timestamp")
def _spark_from_utc(ts: dt.Timestamp(), zone: str) -> dt.Timestamp():  # type: ignore[valid-type]
    """Spark: wall-clock time of a UTC timestamp in ``zone``."""


@ibis.udf.scalar.builtin(name="json_extract_string")
def _duck_json_str(doc: str, path: str) -> str:  # type: ignore[empty-body]
    """DuckDB: a JSON value as text (NULL when missing or JSON null)."""


@ibis.udf.scalar.builtin(name="get_json_object")
def _spark_json_str(doc: str, path: str) -> str:  # type: ignore[empty-body]
    """Spark: a JSON value as text, natively (Ibis' JSON ops need Python UDFs on Spark)."""


# ---------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------

# Every date a query names lies in this span (docs/analytics.md): older or later days hold
# no data, and the year 1 or 9999 would overflow the engines' time arithmetic.
MIN_DATE = date(1970, 1, 1)
MAX_DATE = date(2199, 12, 31)
# Query models refuse unknown fields (a misspelt option must not be silently ignored)
# and NaN/Infinity in any number.
QUERY_CONFIG = ConfigDict(extra="forbid", allow_inf_nan=False)
MAX_FILTERS = 50
MAX_VALUES = 1000
NAME_MAX = 256


def _in_date_span(d: date) -> date:
    if not MIN_DATE <= d <= MAX_DATE:
        raise ValueError(f"date {d.isoformat()} is outside {MIN_DATE.isoformat()}..{MAX_DATE.isoformat()}")
    return d


QueryDate = Annotated[date, AfterValidator(_in_date_span)]
EventName = Annotated[str, Field(min_length=1, max_length=NAME_MAX)]


class DateRange(BaseModel):
    """Inclusive calendar dates in the project time zone (``from`` .. ``to``)."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    from_: QueryDate = Field(alias="from")
    to: QueryDate

    @model_validator(mode="after")
    def _ordered(self) -> DateRange:
        if self.from_ > self.to:
            raise ValueError(f"'from' ({self.from_}) is after 'to' ({self.to})")
        return self

    def utc_bounds(self, tz: str) -> tuple[datetime, datetime]:
        """Naive UTC [start, end) covering the local dates, so filters prune on raw ``ts``."""
        return local_midnight_utc(self.from_, tz), local_midnight_utc(self.to + timedelta(days=1), tz)

    @property
    def days(self) -> int:
        return (self.to - self.from_).days + 1


class PropertyFilter(BaseModel):
    """``property operator value``; the property is an event column or a JSON key."""

    model_config = QUERY_CONFIG

    property: str = Field(max_length=NAME_MAX)
    operator: Operator = "eq"
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _check(self) -> PropertyFilter:
        check_property(self.property)
        if self.operator in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"operator '{self.operator}' needs a non-empty list value")
            if len(self.value) > MAX_VALUES:
                raise ValueError(f"operator '{self.operator}' takes at most {MAX_VALUES} values")
        elif self.operator in ("is_set", "is_not_set"):
            pass
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"operator '{self.operator}' needs a single value")
        if self.operator in ("gt", "gte", "lt", "lte") and not _is_number(self.value):
            raise ValueError(f"operator '{self.operator}' needs a number")
        return self


class Breakdown(BaseModel):
    """Split results by a property: the ``limit`` most frequent values, the rest as other.

    ``user.<name>`` splits by a property of the user (``user.channel`` or a key of
    ``users.properties``) rather than of the event: acquisition channel is the split
    operations people ask for first.
    """

    model_config = QUERY_CONFIG

    property: str = Field(max_length=NAME_MAX)
    limit: int = Field(default=10, ge=1, le=100)

    @model_validator(mode="after")
    def _check(self) -> Breakdown:
        check_property(self.property.removeprefix(USER_PREFIX))
        return self


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_property(name: str) -> str:
    if not isinstance(name, str) or not _PROPERTY_RE.fullmatch(name):
        raise ValueError(f"invalid property name {name!r} (letters, digits, _ and - only)")
    return name


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise YunyingError("analytics.bad_timezone", timezone=tz) from None


def local_midnight_utc(d: date, tz: str) -> datetime:
    """UTC (naive) instant of local midnight starting ``d`` in ``tz``."""
    local = datetime.combine(d, time(0), tzinfo=zone(tz))
    return local.astimezone(ZoneInfo("UTC")).replace(tzinfo=None)


def engine_of(wh: Any) -> str:
    eng = str(getattr(wh, "engine", "duckdb"))
    if eng not in ("duckdb", "spark"):
        raise YunyingError("analytics.engine_unsupported", engine=eng)
    return eng


def local_ts(engine: str, ts: ir.TimestampValue, tz: str) -> ir.TimestampValue:
    """Naive UTC -> naive wall-clock time in ``tz`` (DST aware on both engines)."""
    zone(tz)
    if engine == "duckdb" and tz == "UTC":
        return ts  # already wall-clock UTC: no per-row conversion
    if engine == "spark":
        out = _spark_from_utc(ts, tz)
    else:
        out = _duck_timezone(tz, ts.cast(dt.Timestamp(timezone="UTC")))
    return out  # type: ignore[no-any-return]


def bucket(engine: str, ts: ir.TimestampValue, grain: str, tz: str) -> ir.TimestampValue:
    """Start of the hour/day/week (Monday)/month containing ``ts``, in local time."""
    if grain not in _TRUNC:
        raise YunyingError("analytics.bad_grain", grain=grain, grains=", ".join(GRAINS))
    return local_ts(engine, ts, tz).truncate(_TRUNC[grain])


def prop_text(engine: str, t: ir.Table, name: str) -> ir.StringValue:
    """An event column, or a JSON ``properties`` key as text (NULL when missing)."""
    check_property(name)
    if name in EVENT_COLUMNS and name in t.columns:
        return t[name].cast("string")  # type: ignore[no-any-return]
    path = f'$."{name}"' if engine == "duckdb" else f"$.{name}"
    fn = _duck_json_str if engine == "duckdb" else _spark_json_str
    return fn(t.properties, path)  # type: ignore[no-any-return]


def prop_number(engine: str, t: ir.Table, name: str) -> ir.FloatingValue:
    """A numeric property (NULL when missing or not a number)."""
    return prop_text(engine, t, name).try_cast("float64")  # type: ignore[return-value]


def _text(v: Scalar) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def filter_expr(engine: str, t: ir.Table, f: PropertyFilter) -> ir.BooleanValue:
    """The boolean expression of one filter; a missing property never matches a comparison."""
    return compare_text(prop_text(engine, t, f.property), f.operator, f.value)


def compare_text(
    s: ir.StringValue, op: str, v: Scalar | list[Scalar] | None
) -> ir.BooleanValue:
    """A property held as text compared with a value: numbers compare as numbers, the
    rest as text, and NULL (missing) never matches. Segments share these semantics."""
    if op == "is_set":
        return s.notnull()
    if op == "is_not_set":
        return s.isnull()
    if op in ("in", "not_in"):
        assert isinstance(v, list)
        cond = s.isin([_text(x) for x in v])
        return (cond if op == "in" else (~cond & s.notnull())).fill_null(False)
    assert v is not None and not isinstance(v, list)
    if op == "contains":
        return s.contains(str(v)).fill_null(False)
    if op in ("gt", "gte", "lt", "lte") or (op in ("eq", "ne") and _is_number(v)):
        n = s.try_cast("float64")
        x = ibis.literal(float(v), type="float64")  # type: ignore[arg-type]
        res = {
            "eq": n == x, "ne": n != x, "gt": n > x, "gte": n >= x, "lt": n < x, "lte": n <= x
        }[op]
        return res.fill_null(False)  # type: ignore[no-any-return]
    lit = ibis.literal(_text(v))
    return ((s == lit) if op == "eq" else (s != lit)).fill_null(False)  # type: ignore[no-any-return]


def apply_filters(engine: str, t: ir.Table, filters: list[PropertyFilter]) -> ir.Table:
    for f in filters:
        t = t.filter(filter_expr(engine, t, f))
    return t


def events_in_range(
    wh: Any, dates: DateRange | None, filters: list[PropertyFilter], pad_days: int = 0
) -> ir.Table:
    """``events`` restricted to the date range (plus ``pad_days`` after it) and filters."""
    engine = engine_of(wh)
    t = wh.table("events")
    if dates is not None:
        start, end = dates.utc_bounds(wh.settings.timezone)
        t = t.filter(t.ts >= start, t.ts < end + timedelta(days=pad_days))
    return apply_filters(engine, t, filters)


def breakdown_column(
    wh: Any, t: ir.Table, bd: Breakdown, weight: str = "user_id"
) -> tuple[ir.Table, list[str]]:
    """Add column ``_bd`` holding the value (top ``limit`` by distinct users, else other).

    Returns the table and the kept values, so results list groups in a stable order.
    """
    engine = engine_of(wh)
    if bd.property.startswith(USER_PREFIX):
        name = check_property(bd.property.removeprefix(USER_PREFIX))
        u = wh.table("users")
        if name in USER_COLUMNS:
            value = u[name].cast("string")
        else:
            path = f'$."{name}"' if engine == "duckdb" else f"$.{name}"
            fn = _duck_json_str if engine == "duckdb" else _spark_json_str
            value = fn(u.properties, path)
        vals = u.select(_bd_uid=u.user_id, _bd_val=value)
        cols = t.columns
        t = t.left_join(vals, t.user_id == vals._bd_uid).select(*cols, "_bd_val")
        t = t.mutate(_bd_raw=t._bd_val.fill_null(NONE_LABEL)).drop("_bd_val")
    else:
        t = t.mutate(_bd_raw=prop_text(engine, t, bd.property).fill_null(NONE_LABEL))
    top = (
        t.group_by("_bd_raw")
        .aggregate(_n=t[weight].nunique())
        .order_by([ibis.desc("_n"), "_bd_raw"])
        .limit(bd.limit)
    )
    kept = [str(x) for x in wh.execute(top)["_bd_raw"].tolist()]
    if not kept:
        return t.mutate(_bd=ibis.literal(OTHER)).drop("_bd_raw"), []
    t = t.mutate(_bd=ibis.ifelse(t._bd_raw.isin(kept), t._bd_raw, ibis.literal(OTHER)))
    return t.drop("_bd_raw"), kept


def export_users(wh: Any, user_ids_expr: ir.Table | ir.Column, path: str | Path) -> int:
    """Write the distinct user ids of an expression to a CSV (header ``user_id``) for targeting.

    ``user_ids_expr`` is a table with a ``user_id`` column or a column of ids. Returns the count.
    """
    col = user_ids_expr.user_id if isinstance(user_ids_expr, ir.Table) else user_ids_expr
    ids = col.name("user_id").as_table().distinct().order_by("user_id")
    df = wh.execute(ids)
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8", newline="") as fh:
            w = csvsafe.writer(fh)
            w.writerow(["user_id"])
            for uid in df["user_id"].tolist():
                if uid is not None:
                    w.writerow([uid])
    except OSError as e:
        raise YunyingError("analytics.export_failed", path=str(p), reason=str(e)) from e
    return int(df["user_id"].notna().sum())


def write_user_list(user_ids: list[str], path: str | Path) -> int:
    """Write already-computed ids (sorted, distinct) the same way as ``export_users``."""
    p = Path(path)
    ids = sorted({u for u in user_ids if u is not None})
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", encoding="utf-8", newline="") as fh:
            w = csvsafe.writer(fh)
            w.writerow(["user_id"])
            for uid in ids:
                w.writerow([uid])
    except OSError as e:
        raise YunyingError("analytics.export_failed", path=str(p), reason=str(e)) from e
    return len(ids)


def to_float(v: Any) -> float | None:
    """pandas scalar -> float or None (NaN/NA become None so results serialise to JSON)."""
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return None if f != f else f


_MONDAY_EPOCH = 345600  # 1970-01-05 00:00 is a Monday: weeks count from it


def period_index(engine: str, ts: ir.TimestampValue, grain: str, tz: str) -> ir.IntegerValue:
    """Integer number of the local hour/day/week/month containing ``ts``.

    Consecutive periods differ by 1 on every engine, so "previous period" and "N periods
    later" are plain integer arithmetic (wall-clock buckets make DST shifts harmless).
    """
    loc = bucket(engine, ts, grain, tz)
    if grain == "month":
        return (loc.year() * 12 + loc.month() - 1).cast("int64")  # type: ignore[no-any-return]
    secs = loc.epoch_seconds().cast("int64")
    if grain == "hour":
        return (secs // 3600).cast("int64")  # type: ignore[no-any-return]
    if grain == "day":
        return (secs // 86400).cast("int64")  # type: ignore[no-any-return]
    return ((secs - _MONDAY_EPOCH) // 604800).cast("int64")  # type: ignore[no-any-return]


def period_start(idx: int, grain: str) -> datetime:
    """Local start of the period numbered ``idx`` by ``period_index``."""
    if grain == "month":
        return datetime(idx // 12, idx % 12 + 1, 1)
    if grain == "hour":
        return datetime(1970, 1, 1) + timedelta(hours=idx)
    if grain == "day":
        return datetime(1970, 1, 1) + timedelta(days=idx)
    return datetime(1970, 1, 5) + timedelta(weeks=idx)


def period_label(idx: int, grain: str) -> str:
    s = period_start(idx, grain)
    return s.strftime("%Y-%m-%d %H:00") if grain == "hour" else s.date().isoformat()


def period_of_date(d: date, grain: str) -> int:
    """``period_index`` of a local calendar date (for date-range bounds)."""
    if grain == "month":
        return d.year * 12 + d.month - 1
    days = (d - date(1970, 1, 1)).days
    if grain == "hour":
        return days * 24
    if grain == "day":
        return days
    return (days - 4) // 7


class EventSpec(BaseModel):
    """An event name (None = any event) narrowed by property filters."""

    model_config = QUERY_CONFIG

    event: EventName | None = None
    filters: list[PropertyFilter] = Field(default_factory=list, max_length=MAX_FILTERS)


def event_cond(engine: str, t: ir.Table, spec: EventSpec) -> ir.BooleanValue:
    cond: ir.BooleanValue = ibis.literal(True)
    if spec.event is not None:
        cond = t.event == spec.event
    for f in spec.filters:
        cond = cond & filter_expr(engine, t, f)
    return cond
