"""Segments (用户分群) and tags (用户标签): rule language → engine filter, membership, history.

The functions other domains use: ``is_member(settings, segment, user_id)`` and
``members(settings, segment)``.
"""

from __future__ import annotations

from yunying.segments.service import (
    SegmentSpec,
    create_segment,
    export_members,
    history,
    is_member,
    list_segments,
    load_spec,
    members,
    preview,
    refresh,
    refresh_due,
)
from yunying.segments.tags import add_tag, has_tag, list_tags, remove_tag

__all__ = [
    "SegmentSpec",
    "add_tag",
    "create_segment",
    "export_members",
    "has_tag",
    "history",
    "is_member",
    "list_segments",
    "list_tags",
    "load_spec",
    "members",
    "preview",
    "refresh",
    "refresh_due",
    "remove_tag",
]
