"""CSV that is safe to open in a spreadsheet (OWASP "CSV injection").

Every CSV yunying writes goes through :func:`writer`: a text cell that begins with ``=``,
``+``, ``-``, ``@``, a tab or a carriage return would be read by Excel, WPS or LibreOffice
as a formula (``=HYPERLINK("http://evil.example","click")`` arrives through capture as
easily as any event name), so it is written with a leading single quote, which the
spreadsheet shows as text. Numbers are left alone: cells of a numeric type, and text that
is nothing but a number (``-5``, ``+3.2e4``, ``-1,234.50``), which no spreadsheet runs.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from typing import Any

TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def cell(value: Any) -> Any:
    """The value to write: a formula-like text cell gets a leading ``'``; anything else as is."""
    if isinstance(value, str) and value.startswith(TRIGGERS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def row(values: Iterable[Any]) -> list[Any]:
    return [cell(v) for v in values]


class SafeWriter:
    """``csv.writer`` whose every cell passes through :func:`cell`."""

    def __init__(self, fh: Any, **kwargs: Any) -> None:
        self._w = csv.writer(fh, **kwargs)

    def writerow(self, values: Iterable[Any]) -> Any:
        return self._w.writerow(row(values))

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for r in rows:
            self.writerow(r)


def writer(fh: Any, **kwargs: Any) -> SafeWriter:
    return SafeWriter(fh, **kwargs)


def raw_line(line: str) -> str:
    """A line written back as it was (one the importer could not split), unless one of
    its cells would run as a formula: then its cells, each made safe, as a CSV line."""
    cells = next(csv.reader([line]), [])
    if all(cell(c) is c for c in cells):
        return line
    buf = io.StringIO()
    writer(buf, lineterminator="").writerow(cells)
    return buf.getvalue()


def unquote(value: str) -> str:
    """Undo :func:`cell` for a value read back from one of yunying's own exports (a list of
    user ids exported for targeting and loaded again as tags)."""
    rest = value[1:]
    if value.startswith("'") and cell(rest) is not rest:
        return rest
    return value
