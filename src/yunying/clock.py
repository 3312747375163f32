"""The one clock: everything that needs "now" asks here, so tests and demos can set it.

Production reads the system clock. Tests freeze or shift it in-process with
:func:`frozen` (or ``set_clock``); a whole process (a CLI subprocess, the server) can be run
under Debian's ``faketime`` instead, since this module reads the system clock only through
``datetime.now``. Nothing else in yunying calls ``datetime.now``/``date.today``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

_override: Callable[[], datetime] | None = None


def _system() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def now() -> datetime:
    """Naive UTC now, the warehouse's convention."""
    return _override() if _override is not None else _system()


def now_aware() -> datetime:
    return now().replace(tzinfo=UTC)


def today(tz: str = "UTC") -> date:
    """Today's date on the wall in ``tz`` (the project zone, usually)."""
    return now_aware().astimezone(ZoneInfo(tz)).date()


def set_clock(at: datetime | None, *, ticking: bool = False) -> None:
    """Fix the clock at ``at`` (naive UTC, or aware); ``None`` restores the system clock.

    ``ticking`` lets the set clock advance with real time from ``at`` on, for code that
    measures durations.
    """
    global _override
    if at is None:
        _override = None
        return
    fixed = at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at
    if ticking:
        offset = fixed - _system()
        _override = lambda: _system() + offset  # noqa: E731
    else:
        _override = lambda: fixed  # noqa: E731


@contextmanager
def frozen(at: datetime, *, ticking: bool = False) -> Iterator[None]:
    """``with frozen(datetime(2030, 1, 1)): …`` — the clock reads ``at`` inside the block."""
    global _override
    before = _override
    set_clock(at, ticking=ticking)
    try:
        yield
    finally:
        _override = before


def shifted(delta: timedelta) -> datetime:
    """Now plus ``delta``: a readable way to say "in 3 days" in code and tests."""
    return now() + delta
