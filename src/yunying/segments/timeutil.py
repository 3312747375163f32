"""Time helpers: the warehouse stores naive UTC; people give dates in the project zone."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from yunying import clock
from yunying.errors import YunyingError


def zone(tz: str) -> ZoneInfo:
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError):
        raise YunyingError("segment.bad_timezone", timezone=tz) from None


def local_midnight_utc(d: date, tz: str) -> datetime:
    """Naive UTC instant of local midnight starting ``d`` in ``tz``."""
    local = datetime.combine(d, time(0), tzinfo=zone(tz))
    return local.astimezone(UTC).replace(tzinfo=None)


def utcnow() -> datetime:
    """Naive UTC now, the warehouse's convention."""
    return clock.now()


def to_utc_naive(value: datetime, tz: str) -> datetime:
    """An aware time, or a naive one read as wall-clock time in ``tz``, as naive UTC."""
    aware = value if value.tzinfo else value.replace(tzinfo=zone(tz))
    return aware.astimezone(UTC).replace(tzinfo=None)
