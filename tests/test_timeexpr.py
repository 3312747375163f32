"""Relative dates, against hand-computed days (today fixed at a Sunday, 2027-02-28)."""

from __future__ import annotations

from datetime import date

import pytest

from yunying.errors import YunyingError
from yunying.timeexpr import last, parse_day, parse_range

T = date(2027, 2, 28)  # a Sunday, the last day of a non-leap February


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("2026-10-31", date(2026, 10, 31)),
        ("today", T),
        ("Yesterday", date(2027, 2, 27)),
        ("-0d", T),
        ("-30d", date(2027, 1, 29)),
        ("-2w", date(2027, 2, 14)),
        ("-1m", date(2027, 1, 28)),
        ("-12m", date(2026, 2, 28)),
        ("-1y", date(2026, 2, 28)),
    ],
)
def test_days(text: str, want: date) -> None:
    assert parse_day(text, T) == want


def test_month_back_clamps_to_the_month_end() -> None:
    assert parse_day("-1m", date(2027, 3, 31)) == date(2027, 2, 28)
    assert parse_day("-1y", date(2028, 2, 29)) == date(2027, 2, 28)


@pytest.mark.parametrize("bad", ["", "2026-13-01", "30d", "-d", "+3d", "-99999y", "last-month", "1/2/2026"])
def test_bad_days_name_themselves(bad: str) -> None:
    with pytest.raises(YunyingError) as e:
        parse_day(bad, T)
    assert e.value.key == "time.bad_day"


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("30d", (date(2027, 1, 30), T)),
        ("1d", (T, T)),
        ("1w", (date(2027, 2, 22), T)),
        ("3m", (date(2026, 11, 29), T)),
        ("last-7d", (date(2027, 2, 22), T)),
    ],
)
def test_last(text: str, want: tuple[date, date]) -> None:
    assert last(text, T) == want


@pytest.mark.parametrize("bad", ["0d", "-30d", "30", "month", "99999y"])
def test_bad_spans(bad: str) -> None:
    with pytest.raises(YunyingError):
        last(bad, T)


@pytest.mark.parametrize(
    ("text", "want"),
    [
        ("this-week", (date(2027, 2, 22), date(2027, 2, 28))),
        ("last-week", (date(2027, 2, 15), date(2027, 2, 21))),
        ("this-month", (date(2027, 2, 1), date(2027, 2, 28))),
        ("last-month", (date(2027, 1, 1), date(2027, 1, 31))),
        ("this-quarter", (date(2027, 1, 1), date(2027, 3, 31))),
        ("last-quarter", (date(2026, 10, 1), date(2026, 12, 31))),
        ("this-year", (date(2027, 1, 1), date(2027, 12, 31))),
        ("last-year", (date(2026, 1, 1), date(2026, 12, 31))),
        ("last-30d", (date(2027, 1, 30), T)),
        ("2024-02", (date(2024, 2, 1), date(2024, 2, 29))),
        ("2026-10-05", (date(2026, 10, 5), date(2026, 10, 5))),
        ("-56d..-29d", (date(2027, 1, 3), date(2027, 1, 30))),
        ("2026-10-01..yesterday", (date(2026, 10, 1), date(2027, 2, 27))),
    ],
)
def test_ranges(text: str, want: tuple[date, date]) -> None:
    assert parse_range(text, T) == want


def test_last_week_across_a_year() -> None:
    assert parse_range("last-week", date(2027, 1, 3)) == (date(2026, 12, 21), date(2026, 12, 27))
    assert parse_range("last-month", date(2027, 1, 15)) == (date(2026, 12, 1), date(2026, 12, 31))


@pytest.mark.parametrize("bad", ["next-month", "-1d..-5d", "2026-00", "a..b", "this-decade"])
def test_bad_ranges(bad: str) -> None:
    with pytest.raises(YunyingError) as e:
        parse_range(bad, T)
    assert e.value.key == "time.bad_range"
