"""The segment rule language (分群规则): a declarative tree parsed from YAML/JSON.

A rule is a one-key mapping whose key names the node: ``and`` / ``or`` (a list of rules),
``not`` (a rule), or one condition (``property``, ``first_seen``, ``event``, ``orders``,
``rfm``, ``lifecycle``, ``funnel``, ``segment``, ``tag``). Parsing is hand-walked so that
an error names the exact part, e.g. ``rule.and[1].event.times``: operations people edit
these files by hand and need to know where to look.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from yunying.errors import YunyingError

Scalar = str | int | float | bool

PROPERTY_OPS = ("eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "is_set", "is_not_set")
COMPARE_OPS = ("eq", "ne", "gt", "gte", "lt", "lte")
RFM_CLASSES = (
    "important_value",
    "important_development",
    "important_retention",
    "important_winback",
    "general_value",
    "general_development",
    "general_retention",
    "general_winback",
)
LIFECYCLE_STAGES = ("new", "active", "returning", "resurrected", "dormant", "churned")
_NAME_RE = re.compile(r"^[A-Za-z0-9_\-\u4e00-\u9fff][A-Za-z0-9_.\-\u4e00-\u9fff]{0,63}$")
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$")


def check_name(value: str, what: str = "name") -> str:
    """Segment and tag names: short, no spaces or quotes (they appear in files and URLs)."""
    if not _NAME_RE.match(value):
        raise ValueError(f"invalid {what} {value!r}: letters, digits, Chinese, _ - . (max 64)")
    return value


class _Node(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Period(_Node):
    """Relative (``last_days``) or absolute (``start``/``end`` dates, inclusive, local time)."""

    last_days: int | None = Field(default=None, ge=1, le=3650)
    start: date | None = None
    end: date | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Period:
        if self.last_days is None and self.start is None and self.end is None:
            raise ValueError("give last_days, or start and/or end")
        if self.last_days is not None and (self.start or self.end):
            raise ValueError("last_days cannot be combined with start/end")
        if self.start and self.end and self.start > self.end:
            raise ValueError(f"start ({self.start}) is after end ({self.end})")
        return self

    def bounds(self, as_of: datetime, tz: str) -> tuple[datetime | None, datetime | None]:
        """UTC (naive) half-open bounds [lo, hi); ``None`` means unbounded on that side."""
        if self.last_days is not None:
            return as_of - timedelta(days=self.last_days), as_of
        from yunying.segments.timeutil import local_midnight_utc

        lo = local_midnight_utc(self.start, tz) if self.start else None
        hi = local_midnight_utc(self.end + timedelta(days=1), tz) if self.end else None
        return lo, hi


class PropertyCond(_Node):
    """A user attribute: ``channel``, ``user_id`` or a key of ``users.properties``."""

    field: str
    op: Literal[
        "eq", "ne", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "is_set", "is_not_set"
    ] = "eq"
    value: Scalar | list[Scalar] | None = None

    @model_validator(mode="after")
    def _check(self) -> PropertyCond:
        key = self.field.removeprefix("properties.")
        if not _KEY_RE.match(key):
            raise ValueError(f"invalid field {self.field!r} (letters, digits, _ and -)")
        if self.op in ("in", "not_in"):
            if not isinstance(self.value, list) or not self.value:
                raise ValueError(f"op '{self.op}' needs a non-empty list value")
        elif self.op in ("is_set", "is_not_set"):
            if self.value is not None:
                raise ValueError(f"op '{self.op}' takes no value")
        elif self.value is None or isinstance(self.value, list):
            raise ValueError(f"op '{self.op}' needs a single value")
        if self.op in ("gt", "gte", "lt", "lte") and not _is_number(self.value):
            raise ValueError(f"op '{self.op}' needs a number")
        return self


class EventCond(_Node):
    """Did (or did not) do ``name`` at least ``times`` times within the period."""

    name: str = Field(min_length=1, max_length=256)
    times: int = Field(default=1, ge=1)
    within: Period | None = None
    did: bool = True


OrderStatus = Literal["paid", "refunded", "cancelled", "pending"]


def _paid() -> list[OrderStatus]:
    return ["paid"]


class OrdersCond(_Node):
    """An order aggregate compared to a value: count of orders, or sum of paid amount."""

    measure: Literal["count", "paid_amount"] = "count"
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte"] = "gte"
    value: Decimal
    status: list[OrderStatus] = Field(default_factory=_paid, min_length=1)
    within: Period | None = None


class RfmCond(_Node):
    """One of the 8 RFM classes, as ``yunying rfm`` computes them (paid orders, local days).

    The window is the ``lookback_days`` local days ending on the evaluation day; R, F and
    M are high when above (R: more recent than) the ``threshold`` of paying users.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    rfm_class: Literal[
        "important_value",
        "important_development",
        "important_retention",
        "important_winback",
        "general_value",
        "general_development",
        "general_retention",
        "general_winback",
    ] = Field(alias="class")
    lookback_days: int = Field(default=365, ge=1, le=36500)
    threshold: Literal["mean", "median"] = "mean"


class LifecycleCond(_Node):
    """Lifecycle stage as of evaluation time.

    Without ``grain``: rolling periods of ``period_days`` (all six stages). With ``grain``
    (day/week/month): the calendar period containing the evaluation time, as the lifecycle
    chart (``yunying lifecycle``) shows it: new, active (active the previous period too),
    resurrected (回流) or dormant (沉默).
    """

    stage: Literal["new", "active", "returning", "resurrected", "dormant", "churned"]
    period_days: int = Field(default=30, ge=1, le=365)
    grain: Literal["day", "week", "month"] | None = None

    @model_validator(mode="after")
    def _check(self) -> LifecycleCond:
        if self.grain is not None and self.stage in ("returning", "churned"):
            raise ValueError(
                f"stage '{self.stage}' needs rolling periods (period_days), not grain; "
                "with grain use new, active, resurrected or dormant"
            )
        return self


class FunnelCond(_Node):
    """Reached step ``dropped_at - 1`` of the funnel but not step ``dropped_at``.

    Computed by ``yunying funnel`` (ordered, ClickHouse windowFunnel semantics): step 1
    on the local days of ``within``, later steps within ``window_days`` of it.
    """

    steps: list[str] = Field(min_length=2, max_length=10)
    dropped_at: int = Field(ge=2)
    within: Period = Field(default_factory=lambda: Period(last_days=30))
    window_days: int = Field(default=7, ge=1, le=365)

    @model_validator(mode="after")
    def _check(self) -> FunnelCond:
        if self.dropped_at > len(self.steps):
            raise ValueError(f"dropped_at must be between 2 and {len(self.steps)}")
        return self


class SegmentRef(_Node):
    name: str

    @model_validator(mode="after")
    def _check(self) -> SegmentRef:
        check_name(self.name, "segment name")
        return self


class TagCond(_Node):
    tag: str

    @model_validator(mode="after")
    def _check(self) -> TagCond:
        check_name(self.tag, "tag")
        return self


class FirstSeenCond(_Node):
    within: Period


Condition = (
    PropertyCond
    | FirstSeenCond
    | EventCond
    | OrdersCond
    | RfmCond
    | LifecycleCond
    | FunnelCond
    | SegmentRef
    | TagCond
)


class And(_Node):
    items: tuple[Rule, ...]


class Or(_Node):
    items: tuple[Rule, ...]


class Not(_Node):
    item: Rule


Rule = And | Or | Not | Condition

LEAVES: dict[str, type[_Node]] = {
    "property": PropertyCond,
    "first_seen": FirstSeenCond,
    "event": EventCond,
    "orders": OrdersCond,
    "rfm": RfmCond,
    "lifecycle": LifecycleCond,
    "funnel": FunnelCond,
    "segment": SegmentRef,
    "tag": TagCond,
}
NODE_KEYS = ("and", "or", "not", *LEAVES)


def _is_number(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def _bad(path: str, reason: str) -> YunyingError:
    return YunyingError("segment.rule_invalid", path=path, reason=reason)


def parse_rule(data: Any, path: str = "rule") -> Rule:
    """Validate a rule tree; errors name the failing part (``rule.and[1].event.times``)."""
    if not isinstance(data, dict) or len(data) != 1:
        raise _bad(path, f"expected a mapping with exactly one of: {', '.join(NODE_KEYS)}")
    key, body = next(iter(data.items()))
    here = f"{path}.{key}"
    if key in ("and", "or"):
        if not isinstance(body, list) or not body:
            raise _bad(here, "expected a non-empty list of rules")
        items = tuple(parse_rule(x, f"{here}[{i}]") for i, x in enumerate(body))
        return And(items=items) if key == "and" else Or(items=items)
    if key == "not":
        return Not(item=parse_rule(body, here))
    model = LEAVES.get(str(key))
    if model is None:
        raise _bad(path, f"unknown node {key!r}; expected one of: {', '.join(NODE_KEYS)}")
    if key == "segment" and isinstance(body, str):
        body = {"name": body}
    if key == "tag" and isinstance(body, str):
        body = {"tag": body}
    if key == "first_seen" and isinstance(body, dict) and "within" not in body:
        body = {"within": body}
    if not isinstance(body, dict):
        raise _bad(here, "expected a mapping of options")
    try:
        return model.model_validate(body)  # type: ignore[return-value]
    except ValidationError as e:
        err = e.errors()[0]
        loc = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in err["loc"])
        msg = err["msg"].removeprefix("Value error, ")
        raise _bad(here + loc, msg) from None


def dump_rule(rule: Rule) -> dict[str, Any]:
    """The inverse of ``parse_rule``: the JSON/YAML form stored and shown."""
    if isinstance(rule, And | Or):
        return {"and" if isinstance(rule, And) else "or": [dump_rule(r) for r in rule.items]}
    if isinstance(rule, Not):
        return {"not": dump_rule(rule.item)}
    for key, model in LEAVES.items():
        if type(rule) is model:
            return {key: rule.model_dump(mode="json", by_alias=True, exclude_none=True)}
    raise TypeError(type(rule))  # pragma: no cover - every node type is listed


def walk(rule: Rule) -> list[Rule]:
    """Every node of the tree, depth first."""
    out: list[Rule] = [rule]
    if isinstance(rule, And | Or):
        for r in rule.items:
            out.extend(walk(r))
    elif isinstance(rule, Not):
        out.extend(walk(rule.item))
    return out


def load_text(text: str, source: str = "rule") -> Any:
    """YAML or JSON text (JSON is YAML) into Python data; a syntax error names the source."""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise YunyingError("segment.bad_file", path=source, reason=str(e).splitlines()[0]) from None


def parse_rule_text(text: str) -> Rule:
    data = load_text(text)
    if isinstance(data, dict) and set(data) == {"rule"}:
        data = data["rule"]
    return parse_rule(data)


def rule_json(rule: Rule) -> str:
    return json.dumps(dump_rule(rule), ensure_ascii=False, sort_keys=True)


And.model_rebuild()
Or.model_rebuild()
Not.model_rebuild()
