"""What is in the warehouse: tables, counts, date ranges, quarantine, headline figures."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from yunying.warehouse.contracts import CONTRACTS
from yunying.warehouse.engine import Warehouse


class TableStatus(BaseModel):
    table: str
    rows: int
    # None when empty, or when the stored value is beyond what a datetime holds (year 0).
    first: datetime | None = None
    last: datetime | None = None
    # Rows whose time lies outside the accepted window (event_time_floor to now + event_future_skew):
    # stored before the window existed, or written directly. `yunying data delete` removes them.
    outside_window: int = 0


class WarehouseStatus(BaseModel):
    engine: str
    data_version: str
    tables: list[TableStatus]
    quarantined: int = 0

    def to_rows(self) -> tuple[list[str], list[list[object]]]:
        from yunying.i18n import t

        rows: list[list[object]] = [
            [s.table, s.rows, _shown(s.first, s.rows), _shown(s.last, s.rows),
             s.outside_window or None]
            for s in self.tables
        ]
        rows.append(["quarantine", self.quarantined, None, None, None])
        headers = [t("cli.table"), t("cli.rows"), t("cli.from"), t("cli.to"),
                   t("warehouse.outside_window")]
        return headers, rows


def _shown(v: datetime | None, rows: int) -> object:
    """A time for the table; a stored value no datetime holds (year 0) says so."""
    from yunying.i18n import t

    return v if v is not None or not rows else t("warehouse.out_of_range")


def warehouse_status(wh: Warehouse) -> WarehouseStatus:
    """Counts and time ranges of every table; robust to any stored value.

    Extremes are read as text and parsed here, because a stored year 0 or 9999 is beyond
    what the engines' pandas conversion (nanoseconds, 1677-2262) can hold.
    """
    out: list[TableStatus] = []
    lo_bound, hi_bound = time_window(wh.settings)
    for c in CONTRACTS.values():
        if wh.engine == "duckdb":
            # Plain queries on the raw connection: no Ibis, no pandas (CLI start-up).
            if c.time_column:
                col = f'"{c.time_column}"'
                if c.column(c.time_column).type == "date":
                    cond, params = f"{col} < ?", [lo_bound.date()]
                else:
                    cond, params = f"{col} < ? OR {col} > ?", [lo_bound, hi_bound]
                n, lo, hi, n_out = wh.duck.execute(
                    f"SELECT count(*), CAST(min({col}) AS VARCHAR), CAST(max({col}) AS VARCHAR), "
                    f'count(*) FILTER (WHERE {cond}) FROM "{c.table}"',
                    params,
                ).fetchone()
                out.append(
                    TableStatus(
                        table=c.table, rows=int(n), first=parse_stored_time(lo), last=parse_stored_time(hi),
                        outside_window=_int(n_out),
                    )
                )
            else:
                out.append(TableStatus(table=c.table, rows=wh.row_count(c.table)))
            continue
        tbl = wh.table(c.table)
        if c.time_column:
            col = tbl[c.time_column]
            is_date = c.column(c.time_column).type == "date"
            lo_v = lo_bound.date() if is_date else lo_bound
            outside = (col < lo_v) if is_date else ((col < lo_v) | (col > hi_bound))
            df = wh.execute(
                tbl.aggregate(
                    n=tbl.count(),
                    lo=col.min().cast("string"),
                    hi=col.max().cast("string"),
                    out=outside.cast("int64").sum(),
                )
            )
            row = df.iloc[0]
            out.append(
                TableStatus(
                    table=c.table,
                    rows=int(row["n"]),
                    first=parse_stored_time(row["lo"]),
                    last=parse_stored_time(row["hi"]),
                    outside_window=_int(row["out"]),
                )
            )
        else:
            out.append(TableStatus(table=c.table, rows=wh.row_count(c.table)))
    return WarehouseStatus(
        engine=wh.engine, data_version=wh.data_version(), tables=out, quarantined=_quarantined(wh)
    )


def time_window(settings: Any) -> tuple[datetime, datetime]:
    """(earliest, latest) accepted event time, naive UTC: ``event_time_floor`` to the clock's
    now plus ``event_future_skew``, the same window capture and import apply."""
    from datetime import timedelta

    from yunying import clock

    return (
        datetime.combine(settings.event_time_floor, datetime.min.time()),
        clock.now() + timedelta(seconds=settings.event_future_skew),
    )


_STORED = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)(?:[ T](\d\d):(\d\d):(\d\d)(?:\.(\d{1,6})\d*)?)?"
)


def parse_stored_time(v: object) -> datetime | None:
    """A stored time or date as the engines print it, or None (empty, or out of range)."""
    if v is None or not isinstance(v, str):
        return None
    m = _STORED.fullmatch(v.strip())
    if not m:
        return None  # e.g. "0001-12-31 (BC)", "infinity", a five-digit year
    year, month, day = int(m[1]), int(m[2]), int(m[3])
    if not 1 <= year <= 9999:
        return None
    try:
        return datetime(
            year, month, day, int(m[4] or 0), int(m[5] or 0), int(m[6] or 0),
            int((m[7] or "0").ljust(6, "0")),
        )
    except ValueError:
        return None


def _int(v: object) -> int:
    try:
        return 0 if v is None or v != v else int(v)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def _quarantined(wh: Warehouse) -> int:
    try:
        from yunying.warehouse.quarantine import count_quarantined
    except ImportError:
        return 0
    return count_quarantined(wh.settings)
