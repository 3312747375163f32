"""Eligibility answers for the incentive tools (``yunying.engage.service.Eligibility``).

The tools ask two things when a user claims or redeems: is the user in segment X, and
when was the user first seen (new-user-only offers). Membership is the segment's last
refresh (a key lookup); first-seen comes from the warehouse's ``users`` table.
"""

from __future__ import annotations

from datetime import datetime

import ibis

from yunying.config import Settings
from yunying.segments.service import is_member
from yunying.warehouse.engine import Warehouse


class SegmentEligibility:
    """Implements ``is_member(segment, user_id)`` and ``first_seen(user_id)``."""

    def __init__(self, settings: Settings, wh: Warehouse | None = None) -> None:
        self.settings = settings
        self._wh = wh
        self._first_seen: dict[str, datetime | None] = {}

    @property
    def wh(self) -> Warehouse:
        if self._wh is None:
            self._wh = Warehouse(self.settings)
        return self._wh

    def is_member(self, segment: str, user_id: str) -> bool:
        return is_member(self.settings, segment, user_id)

    def first_seen(self, user_id: str) -> datetime | None:
        if user_id not in self._first_seen:
            u = self.wh.table("users")
            expr = u.filter(u.user_id == ibis.literal(user_id)).first_seen.min()
            value = self.wh.execute(expr)
            self._first_seen[user_id] = None if value is None or value != value else _naive(value)
        return self._first_seen[user_id]


def _naive(value: object) -> datetime:
    if hasattr(value, "to_pydatetime"):
        value = value.to_pydatetime()
    assert isinstance(value, datetime)
    return value.replace(tzinfo=None)
