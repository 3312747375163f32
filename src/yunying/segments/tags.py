"""User tags (用户标签): free labels on users, added by hand or in bulk from a CSV.

Tags live in the app database; a segment rule can test them (``tag: vip``).
"""

from __future__ import annotations

import csv
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from pydantic import BaseModel

from yunying import csvsafe
from yunying.appdb import session_scope
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.i18n import t
from yunying.segments.models import UserTag
from yunying.segments.rules import check_name
from yunying.segments.service import CHUNK, appdb_url
from yunying.segments.timeutil import utcnow


class TagChange(BaseModel):
    tag: str
    requested: int
    changed: int

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return [t("tag.col.tag"), t("tag.col.requested"), t("tag.col.changed")], [
            [self.tag, self.requested, self.changed]
        ]


class TagRow(BaseModel):
    tag: str
    user_id: str
    added_at: datetime
    added_by: str


class TagCount(BaseModel):
    tag: str
    users: int


class TagList(BaseModel):
    """Either tag counts (no filter) or the tag rows of one tag or one user."""

    counts: list[TagCount] = []
    rows: list[TagRow] = []

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        if self.rows:
            return [
                t("tag.col.tag"), t("tag.col.user_id"), t("tag.col.added_at"), t("tag.col.added_by")
            ], [
                [r.tag, r.user_id, r.added_at.isoformat(sep=" ", timespec="seconds"), r.added_by]
                for r in self.rows
            ]
        return [t("tag.col.tag"), t("tag.col.users")], [[c.tag, c.users] for c in self.counts]


def _tag(tag: str) -> str:
    try:
        return check_name(tag, "tag")
    except ValueError:
        raise YunyingError("tag.bad_name", tag=tag) from None


def _ids(user_ids: list[str]) -> list[str]:
    out = sorted({u.strip() for u in user_ids if u and u.strip()})
    for u in out:
        if len(u) > 256:
            raise YunyingError("tag.bad_user_id", user_id=u[:40] + "…")
    return out


def read_user_csv(path: str | Path) -> list[str]:
    """User ids from a CSV: the ``user_id`` column, or the first column without a header."""
    p = Path(path)
    try:
        with p.open(newline="", encoding="utf-8-sig") as f:
            rows = list(csv.reader(f))
    except OSError as e:
        raise YunyingError("tag.read_failed", path=str(p), reason=e.strerror or str(e)) from None
    except UnicodeDecodeError:
        raise YunyingError("tag.read_failed", path=str(p), reason="not UTF-8 text") from None
    if not rows:
        return []
    header = [h.strip().lower() for h in rows[0]]
    # A list yunying exported wrote formula-like ids with a leading quote (csvsafe).
    if "user_id" in header:
        i = header.index("user_id")
        return [csvsafe.unquote(r[i]) for r in rows[1:] if len(r) > i]
    return [csvsafe.unquote(r[0]) for r in rows if r]


def add_tag(settings: Settings, tag: str, user_ids: list[str], by: str = "") -> TagChange:
    """Tag users; users who already have the tag are left as they are."""
    tag, ids = _tag(tag), _ids(user_ids)
    at = utcnow()
    with session_scope(appdb_url(settings)) as s:
        have: set[str] = set()
        for i in range(0, len(ids), CHUNK):
            chunk = ids[i : i + CHUNK]
            have |= set(
                s.scalars(
                    sa.select(UserTag.user_id).where(UserTag.tag == tag, UserTag.user_id.in_(chunk))
                ).all()
            )
        new = [u for u in ids if u not in have]
        if new:
            s.execute(
                sa.insert(UserTag),
                [{"tag": tag, "user_id": u, "added_at": at, "added_by": by} for u in new],
            )
    return TagChange(tag=tag, requested=len(ids), changed=len(new))


def remove_tag(settings: Settings, tag: str, user_ids: list[str]) -> TagChange:
    tag, ids = _tag(tag), _ids(user_ids)
    removed = 0
    with session_scope(appdb_url(settings)) as s:
        for i in range(0, len(ids), CHUNK):
            res = s.execute(
                sa.delete(UserTag).where(UserTag.tag == tag, UserTag.user_id.in_(ids[i : i + CHUNK]))
            )
            removed += int(res.rowcount or 0)  # type: ignore[attr-defined]
    return TagChange(tag=tag, requested=len(ids), changed=removed)


def list_tags(settings: Settings, tag: str | None = None, user_id: str | None = None) -> TagList:
    """Counts per tag, or the users of one tag, or the tags of one user."""
    with session_scope(appdb_url(settings)) as s:
        if tag is None and user_id is None:
            q = sa.select(UserTag.tag, sa.func.count()).group_by(UserTag.tag).order_by(UserTag.tag)
            return TagList(counts=[TagCount(tag=a, users=int(b)) for a, b in s.execute(q).all()])
        rq = sa.select(UserTag)
        if tag is not None:
            rq = rq.where(UserTag.tag == _tag(tag))
        if user_id is not None:
            rq = rq.where(UserTag.user_id == user_id)
        rows = s.scalars(rq.order_by(UserTag.tag, UserTag.user_id)).all()
        return TagList(
            rows=[
                TagRow(tag=r.tag, user_id=r.user_id, added_at=r.added_at, added_by=r.added_by)
                for r in rows
            ]
        )


def has_tag(settings: Settings, user_id: str, tag: str) -> bool:
    with session_scope(appdb_url(settings)) as s:
        return (
            s.scalar(sa.select(UserTag.user_id).where(UserTag.tag == tag, UserTag.user_id == user_id))
            is not None
        )
