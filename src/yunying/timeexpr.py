"""Dates as operations people say them: ``yesterday``, ``-30d``, ``last-month``, ``--last 8w``.

Absolute dates go stale in scripts, cron jobs and tours; relative ones read the project's
"today" from :mod:`yunying.clock`, so the same command means the same thing every day.
Every parser takes ``today`` explicitly, which keeps them pure and testable.

Day expressions: ``YYYY-MM-DD``, ``today``, ``yesterday``, ``-N{d,w,m,y}`` (N days, weeks,
calendar months or years before today).
Ranges: a day expression (one day), ``YYYY-MM`` (a month), ``A..B`` (two day expressions,
inclusive), ``last-Nd``/``last-Nw``/``last-Nm`` (ending today), and ``this-``/``last-`` with
``week`` (Monday first), ``month``, ``quarter`` or ``year``.
"""

from __future__ import annotations

import calendar
import re
from datetime import date, timedelta

from yunying.errors import YunyingError

_REL = re.compile(r"-(\d{1,5})([dwmy])")
_LAST = re.compile(r"(?:last-)?(\d{1,5})([dwmy])")
_MONTH = re.compile(r"(\d{4})-(\d{2})")
_NAMED = re.compile(r"(this|last)-(week|month|quarter|year)")


def _months_back(d: date, n: int) -> date:
    y, m = divmod(d.year * 12 + d.month - 1 - n, 12)
    m += 1
    return date(y, m, min(d.day, calendar.monthrange(y, m)[1]))


def _back(today: date, n: int, unit: str) -> date:
    if unit == "d":
        return today - timedelta(days=n)
    if unit == "w":
        return today - timedelta(weeks=n)
    return _months_back(today, n * (12 if unit == "y" else 1))


def parse_day(text: str, today: date) -> date:
    """One day: ISO, ``today``, ``yesterday`` or ``-Nd``/``-Nw``/``-Nm``/``-Ny``."""
    s = text.strip().lower()
    try:
        if s == "today":
            return today
        if s == "yesterday":
            return today - timedelta(days=1)
        m = _REL.fullmatch(s)
        if m:
            return _back(today, int(m.group(1)), m.group(2))
        return date.fromisoformat(s)
    except (ValueError, OverflowError):
        pass
    raise YunyingError("time.bad_day", value=text)


def last(text: str, today: date) -> tuple[date, date]:
    """``--last 30d``: the 30 days ending today; ``8w``, ``3m``, ``1y`` alike."""
    m = _LAST.fullmatch(text.strip().lower())
    if not m or int(m.group(1)) < 1:
        raise YunyingError("time.bad_last", value=text)
    n, unit = int(m.group(1)), m.group(2)
    try:
        start = _back(today, n, unit) + timedelta(days=1)
    except (ValueError, OverflowError):
        raise YunyingError("time.bad_last", value=text) from None
    return start, today


def _named(which: str, unit: str, today: date) -> tuple[date, date]:
    if unit == "week":
        start = today - timedelta(days=today.weekday())
        if which == "last":
            start -= timedelta(weeks=1)
        return start, start + timedelta(days=6)
    if unit == "month":
        start = today.replace(day=1)
        if which == "last":
            start = _months_back(start, 1)
        return start, start.replace(day=calendar.monthrange(start.year, start.month)[1])
    if unit == "quarter":
        start = date(today.year, 3 * ((today.month - 1) // 3) + 1, 1)
        if which == "last":
            start = _months_back(start, 3)
        end = _months_back(start, -2)
        return start, end.replace(day=calendar.monthrange(end.year, end.month)[1])
    year = today.year - (1 if which == "last" else 0)
    return date(year, 1, 1), date(year, 12, 31)


def parse_range(text: str, today: date) -> tuple[date, date]:
    """A date range, first and last day inclusive (see the module docstring for forms)."""
    s = text.strip().lower()
    try:
        m = _NAMED.fullmatch(s)
        if m:
            return _named(m.group(1), m.group(2), today)
        if s.startswith("last-") and _LAST.fullmatch(s):
            return last(s, today)
        m = _MONTH.fullmatch(s)
        if m:
            y, mo = int(m.group(1)), int(m.group(2))
            return date(y, mo, 1), date(y, mo, calendar.monthrange(y, mo)[1])
        if ".." in s:
            a, b = s.split("..", 1)
            lo, hi = parse_day(a, today), parse_day(b, today)
        else:
            lo = hi = parse_day(s, today)
    except (ValueError, YunyingError):
        raise YunyingError("time.bad_range", value=text) from None
    if hi < lo:
        raise YunyingError("time.bad_range", value=text)
    return lo, hi
