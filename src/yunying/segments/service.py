"""Segments (用户分群): create, preview, refresh (now or when due), export, membership.

Dynamic segments (动态分群) re-evaluate their rule on each refresh and record who joined
and who left; static segments (静态分群) freeze the members found when created. Members
are stored in the app database so ``is_member`` is cheap for the tools and the web app.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from yunying import csvsafe
from yunying.appdb import migrate, session_scope
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.i18n import t
from yunying.segments.compile import Compiler, SegmentInfo
from yunying.segments.models import MembershipChange, SegmentMember, SegmentRow, UserTag
from yunying.segments.rules import (
    Rule,
    SegmentRef,
    check_name,
    dump_rule,
    load_text,
    parse_rule,
    rule_json,
    walk,
)
from yunying.segments.timeutil import utcnow
from yunying.warehouse.engine import Warehouse

_migrated: set[str] = set()
CHUNK = 500


def appdb_url(settings: Settings) -> str:
    """Migrate once per process and database, then hand out the URL."""
    url = settings.appdb_url
    if url not in _migrated:
        migrate(url)
        _migrated.add(url)
    return url


# -- typed inputs and results ---------------------------------------------------------------


class SegmentSpec(BaseModel):
    """A segment definition as written in YAML/JSON files."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    kind: Literal["dynamic", "static"] = "dynamic"
    refresh_every_minutes: int | None = Field(default=None, ge=1, le=525_600)
    rule: dict[str, Any]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        return check_name(v, "segment name")

    def parsed(self) -> Rule:
        return parse_rule(self.rule)


def load_spec(text: str, source: str = "segment") -> SegmentSpec:
    """Parse a segment file; errors name the field (``name``, ``rule.and[0].event``…)."""
    data = load_text(text, source)
    if not isinstance(data, dict):
        raise YunyingError("segment.bad_file", path=source, reason="expected a mapping")
    try:
        spec = SegmentSpec.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        loc = ".".join(str(p) for p in err["loc"]) or "segment"
        raise YunyingError(
            "segment.rule_invalid", path=loc, reason=err["msg"].removeprefix("Value error, ")
        ) from None
    spec.parsed()
    return spec


class SegmentSummary(BaseModel):
    name: str
    description: str
    kind: str
    size: int
    refresh_every_minutes: int | None
    last_refreshed_at: datetime | None
    created_at: datetime
    rule: dict[str, Any]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return SegmentList(segments=[self]).to_rows()


class SegmentList(BaseModel):
    segments: list[SegmentSummary]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [
            t("segment.col.name"),
            t("segment.col.kind"),
            t("segment.col.size"),
            t("segment.col.refresh_every"),
            t("segment.col.last_refreshed"),
            t("segment.col.description"),
        ]
        rows = [
            [
                s.name,
                t(f"segment.kind.{s.kind}"),
                s.size,
                s.refresh_every_minutes,
                s.last_refreshed_at.isoformat(sep=" ", timespec="seconds")
                if s.last_refreshed_at
                else None,
                s.description,
            ]
            for s in self.segments
        ]
        return headers, rows


class PreviewResult(BaseModel):
    """Size of a rule's audience now, with a few example user ids."""

    as_of: datetime
    size: int
    sample: list[str]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return [t("segment.col.size"), t("segment.col.sample"), t("segment.col.as_of")], [
            [self.size, ", ".join(self.sample), self.as_of.isoformat(sep=" ", timespec="seconds")]
        ]


class RefreshResult(BaseModel):
    name: str
    size: int
    joined: int
    left: int
    at: datetime

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return RefreshBatch(results=[self]).to_rows()


class RefreshBatch(BaseModel):
    results: list[RefreshResult]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [
            t("segment.col.name"),
            t("segment.col.size"),
            t("segment.col.joined"),
            t("segment.col.left"),
            t("segment.col.at"),
        ]
        rows = [
            [r.name, r.size, r.joined, r.left, r.at.isoformat(sep=" ", timespec="seconds")]
            for r in self.results
        ]
        return headers, rows


class HistoryEntry(BaseModel):
    user_id: str
    change: Literal["joined", "left"]
    at: datetime


class MembershipHistory(BaseModel):
    name: str
    entries: list[HistoryEntry]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [t("segment.col.user_id"), t("segment.col.change"), t("segment.col.at")]
        rows = [
            [e.user_id, t(f"segment.change.{e.change}"), e.at.isoformat(sep=" ", timespec="seconds")]
            for e in self.entries
        ]
        return headers, rows


# -- resolver over the app database ---------------------------------------------------------


class DbResolver:
    """Other segments and tags as the compiler sees them."""

    def __init__(self, url: str) -> None:
        self.url = url

    def segment(self, name: str) -> SegmentInfo | None:
        with session_scope(self.url) as s:
            row = s.scalar(sa.select(SegmentRow).where(SegmentRow.name == name))
            if row is None:
                return None
            if row.kind == "dynamic":
                return SegmentInfo(name, "dynamic", parse_rule(_json_load(row.rule)))
            ids = s.scalars(
                sa.select(SegmentMember.user_id).where(SegmentMember.segment_id == row.id)
            ).all()
            return SegmentInfo(name, "static", None, list(ids))

    def tag_members(self, tag: str) -> list[str]:
        with session_scope(self.url) as s:
            return list(s.scalars(sa.select(UserTag.user_id).where(UserTag.tag == tag)).all())


def _json_load(text: str) -> Any:
    import json

    return json.loads(text)


def compiler(settings: Settings, wh: Warehouse, as_of: datetime | None = None) -> Compiler:
    return Compiler(wh, as_of or utcnow(), settings.timezone, DbResolver(appdb_url(settings)))


def evaluate(settings: Settings, wh: Warehouse, rule: Rule, as_of: datetime | None = None) -> list[str]:
    """Sorted ids of the users matching ``rule`` now (or at ``as_of``)."""
    wh.refresh()
    expr = compiler(settings, wh, as_of).members(rule)
    df = wh.execute(expr)
    return sorted(str(x) for x in df["user_id"].tolist())


# -- operations -----------------------------------------------------------------------------


def _row(s: sa.orm.Session, name: str, lock: bool = False) -> SegmentRow:
    q = sa.select(SegmentRow).where(SegmentRow.name == name)
    row = s.scalar(q.with_for_update() if lock else q)
    if row is None:
        raise YunyingError("segment.not_found", name=name)
    return row


def _summary(row: SegmentRow) -> SegmentSummary:
    return SegmentSummary(
        name=row.name,
        description=row.description,
        kind=row.kind,
        size=row.size,
        refresh_every_minutes=row.refresh_minutes,
        last_refreshed_at=row.last_refreshed_at,
        created_at=row.created_at,
        rule=_json_load(row.rule),
    )


def preview(
    settings: Settings, wh: Warehouse, rule: Rule, as_of: datetime | None = None, sample: int = 10
) -> PreviewResult:
    """Audience size of a rule without saving anything (size before you commit)."""
    at = as_of or utcnow()
    wh.refresh()
    expr = compiler(settings, wh, at).members(rule)
    size = int(wh.execute(expr.count()))
    ids = wh.execute(expr.order_by("user_id").limit(sample))["user_id"].tolist() if sample else []
    return PreviewResult(as_of=at, size=size, sample=[str(x) for x in ids])


def create_segment(
    settings: Settings,
    wh: Warehouse,
    spec: SegmentSpec,
    as_of: datetime | None = None,
    by: str = "",
    now: datetime | None = None,
) -> RefreshResult:
    """Save a segment and compute its members (a static one keeps them for good)."""
    url = appdb_url(settings)
    rule = spec.parsed()
    if spec.kind == "static" and spec.refresh_every_minutes:
        raise YunyingError("segment.static_schedule", name=spec.name)
    for node in walk(rule):
        if isinstance(node, SegmentRef) and node.name == spec.name:
            raise YunyingError("segment.cycle", path="rule", chain=f"{spec.name} → {spec.name}")
    ids = evaluate(settings, wh, rule, as_of)
    at = now or utcnow()
    with session_scope(url) as s:
        if s.scalar(sa.select(SegmentRow.id).where(SegmentRow.name == spec.name)) is not None:
            raise YunyingError("segment.exists", name=spec.name)
        row = SegmentRow(
            name=spec.name,
            description=spec.description,
            kind=spec.kind,
            rule=rule_json(rule),
            refresh_minutes=spec.refresh_every_minutes,
            size=0,
            created_at=at,
            created_by=by,
        )
        s.add(row)
        s.flush()
        joined, left = _apply(s, row, ids, at)
    return RefreshResult(name=spec.name, size=len(ids), joined=joined, left=left, at=at)


def _apply(s: sa.orm.Session, row: SegmentRow, ids: list[str], at: datetime) -> tuple[int, int]:
    """Replace the members of ``row`` by ``ids``, logging who joined and who left."""
    old = set(
        s.scalars(sa.select(SegmentMember.user_id).where(SegmentMember.segment_id == row.id)).all()
    )
    new = set(ids)
    joined = sorted(new - old)
    left = sorted(old - new)
    for chunk in _chunks(left):
        s.execute(
            sa.delete(SegmentMember).where(
                SegmentMember.segment_id == row.id, SegmentMember.user_id.in_(chunk)
            )
        )
    if joined:
        s.execute(
            sa.insert(SegmentMember),
            [{"segment_id": row.id, "user_id": u, "joined_at": at} for u in joined],
        )
    changes = [{"segment_id": row.id, "user_id": u, "change": "joined", "at": at} for u in joined]
    changes += [{"segment_id": row.id, "user_id": u, "change": "left", "at": at} for u in left]
    if changes:
        s.execute(sa.insert(MembershipChange), changes)
    row.size = len(new)
    row.last_refreshed_at = at
    return len(joined), len(left)


def _chunks(items: list[str]) -> Iterable[list[str]]:
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def refresh(
    settings: Settings,
    wh: Warehouse,
    name: str,
    as_of: datetime | None = None,
    now: datetime | None = None,
) -> RefreshResult:
    """Re-evaluate a dynamic segment and record joins and leaves."""
    url = appdb_url(settings)
    with session_scope(url) as s:
        row = _row(s, name)
        if row.kind == "static":
            raise YunyingError("segment.static_frozen", name=name)
        rule = parse_rule(_json_load(row.rule))
    ids = evaluate(settings, wh, rule, as_of)
    at = now or utcnow()
    with session_scope(url) as s:
        # Locked (PostgreSQL) so two concurrent refreshes apply one after the other.
        row = _row(s, name, lock=True)
        joined, left = _apply(s, row, ids, at)
    return RefreshResult(name=name, size=len(ids), joined=joined, left=left, at=at)


def due_segments(settings: Settings, now: datetime | None = None) -> list[str]:
    """Dynamic segments with a schedule whose interval has passed since the last refresh."""
    at = now or utcnow()
    with session_scope(appdb_url(settings)) as s:
        rows = s.scalars(
            sa.select(SegmentRow)
            .where(SegmentRow.kind == "dynamic", SegmentRow.refresh_minutes.is_not(None))
            .order_by(SegmentRow.name)
        ).all()
        return [
            r.name
            for r in rows
            if r.last_refreshed_at is None
            or r.last_refreshed_at + timedelta(minutes=r.refresh_minutes or 0) <= at
        ]


def refresh_due(
    settings: Settings, wh: Warehouse, now: datetime | None = None, as_of: datetime | None = None
) -> RefreshBatch:
    """For cron: refresh every segment that is due, and nothing else."""
    at = now or utcnow()
    return RefreshBatch(
        results=[refresh(settings, wh, n, as_of=as_of, now=at) for n in due_segments(settings, at)]
    )


def list_segments(settings: Settings) -> SegmentList:
    with session_scope(appdb_url(settings)) as s:
        rows = s.scalars(sa.select(SegmentRow).order_by(SegmentRow.name)).all()
        return SegmentList(segments=[_summary(r) for r in rows])


def get_segment(settings: Settings, name: str) -> SegmentSummary:
    with session_scope(appdb_url(settings)) as s:
        return _summary(_row(s, name))


def members(settings: Settings, segment: str) -> list[str]:
    """Current members (as of the last refresh), sorted."""
    with session_scope(appdb_url(settings)) as s:
        row = _row(s, segment)
        return list(
            s.scalars(
                sa.select(SegmentMember.user_id)
                .where(SegmentMember.segment_id == row.id)
                .order_by(SegmentMember.user_id)
            ).all()
        )


def is_member(settings: Settings, segment: str, user_id: str) -> bool:
    """Whether ``user_id`` is in ``segment`` as of its last refresh (a key lookup)."""
    with session_scope(appdb_url(settings)) as s:
        row = _row(s, segment)
        hit = s.scalar(
            sa.select(SegmentMember.user_id).where(
                SegmentMember.segment_id == row.id, SegmentMember.user_id == user_id
            )
        )
        return hit is not None


def history(settings: Settings, segment: str, user_id: str | None = None) -> MembershipHistory:
    """Who joined and left, oldest first."""
    with session_scope(appdb_url(settings)) as s:
        row = _row(s, segment)
        q = sa.select(MembershipChange).where(MembershipChange.segment_id == row.id)
        if user_id is not None:
            q = q.where(MembershipChange.user_id == user_id)
        q = q.order_by(MembershipChange.at, MembershipChange.id)
        entries = [
            HistoryEntry(user_id=c.user_id, change=c.change, at=c.at)  # type: ignore[arg-type]
            for c in s.scalars(q).all()
        ]
        return MembershipHistory(name=segment, entries=entries)


class MemberRow(BaseModel):
    user_id: str
    joined_at: datetime


class MemberPage(BaseModel):
    """One page of a segment's current members, by user id."""

    name: str
    total: int
    offset: int
    limit: int
    members: list[MemberRow]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return ["user_id", "joined_at"], [[m.user_id, m.joined_at] for m in self.members]


def member_page(settings: Settings, segment: str, offset: int = 0, limit: int = 100) -> MemberPage:
    """Current members ``offset … offset+limit`` (sorted by user id) and the total."""
    with session_scope(appdb_url(settings)) as s:
        row = _row(s, segment)
        rows = s.execute(
            sa.select(SegmentMember.user_id, SegmentMember.joined_at)
            .where(SegmentMember.segment_id == row.id)
            .order_by(SegmentMember.user_id)
            .offset(offset)
            .limit(limit)
        ).all()
        return MemberPage(
            name=segment, total=row.size, offset=offset, limit=limit,
            members=[MemberRow(user_id=u, joined_at=j) for u, j in rows],
        )


def member_rows(settings: Settings, segment: str) -> list[tuple[str, datetime]]:
    """``(user_id, joined_at)`` of every current member, sorted by user id."""
    with session_scope(appdb_url(settings)) as s:
        row = _row(s, segment)
        return [
            (u, j)
            for u, j in s.execute(
                sa.select(SegmentMember.user_id, SegmentMember.joined_at)
                .where(SegmentMember.segment_id == row.id)
                .order_by(SegmentMember.user_id)
            ).all()
        ]


def write_members_csv(rows: Iterable[tuple[str, datetime]], f: Any) -> None:
    """``user_id,joined_at`` rows to an open text file, formula-neutralised (``csvsafe``)."""
    w = csvsafe.writer(f)
    w.writerow(["user_id", "joined_at"])
    for uid, joined in rows:
        w.writerow([uid, joined.isoformat(sep=" ", timespec="seconds")])


def export_members(settings: Settings, segment: str, path: str | Path) -> int:
    """Write ``user_id,joined_at`` of current members to a CSV file; returns the count."""
    rows = member_rows(settings, segment)
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        with p.open("w", newline="", encoding="utf-8") as f:
            write_members_csv(rows, f)
    except OSError as e:
        raise YunyingError("segment.write_failed", path=str(p), reason=e.strerror or str(e)) from None
    return len(rows)


def rule_of(settings: Settings, segment: str) -> dict[str, Any]:
    with session_scope(appdb_url(settings)) as s:
        return dump_rule(parse_rule(_json_load(_row(s, segment).rule)))
