"""What is in the warehouse: tables, counts, date ranges, quarantine, headline figures."""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel

from yunying.warehouse.contracts import CONTRACTS
from yunying.warehouse.engine import Warehouse


class TableStatus(BaseModel):
    table: str
    rows: int
    first: datetime | None = None
    last: datetime | None = None


class WarehouseStatus(BaseModel):
    engine: str
    data_version: str
    tables: list[TableStatus]
    quarantined: int = 0

    def to_rows(self) -> tuple[list[str], list[list[object]]]:
        from yunying.i18n import t

        rows: list[list[object]] = [
            [s.table, s.rows, s.first, s.last] for s in self.tables
        ]
        rows.append(["quarantine", self.quarantined, None, None])
        return [t("cli.table"), t("cli.rows"), t("cli.from"), t("cli.to")], rows


def warehouse_status(wh: Warehouse) -> WarehouseStatus:
    out: list[TableStatus] = []
    for c in CONTRACTS.values():
        if wh.engine == "duckdb":
            # Plain queries on the raw connection: no Ibis, no pandas (CLI start-up).
            if c.time_column:
                n, lo, hi = wh.duck.execute(
                    f'SELECT count(*), min("{c.time_column}"), max("{c.time_column}") FROM "{c.table}"'
                ).fetchone()
                out.append(TableStatus(table=c.table, rows=int(n), first=_dt_raw(lo), last=_dt_raw(hi)))
            else:
                out.append(TableStatus(table=c.table, rows=wh.row_count(c.table)))
            continue
        tbl = wh.table(c.table)
        if c.time_column:
            col = tbl[c.time_column]
            df = wh.execute(tbl.aggregate(n=tbl.count(), lo=col.min(), hi=col.max()))
            n, lo, hi = df.iloc[0]["n"], df.iloc[0]["lo"], df.iloc[0]["hi"]
            out.append(
                TableStatus(
                    table=c.table,
                    rows=int(n),
                    first=_dt(lo),
                    last=_dt(hi),
                )
            )
        else:
            out.append(TableStatus(table=c.table, rows=wh.row_count(c.table)))
    return WarehouseStatus(
        engine=wh.engine, data_version=wh.data_version(), tables=out, quarantined=_quarantined(wh)
    )


def _dt_raw(v: object) -> datetime | None:
    """A DuckDB value (None, datetime or date) as a datetime."""
    if v is None or isinstance(v, datetime):
        return v
    if isinstance(v, date):
        return datetime(v.year, v.month, v.day)
    raise TypeError(type(v).__name__)


def _dt(v: object) -> datetime | None:
    import pandas as pd

    if v is None or (not isinstance(v, str) and pd.isna(v)):  # type: ignore[call-overload]
        return None
    ts = pd.Timestamp(v)  # type: ignore[arg-type]
    return ts.to_pydatetime()  # type: ignore[no-any-return]


def _quarantined(wh: Warehouse) -> int:
    try:
        from yunying.warehouse.quarantine import count_quarantined
    except ImportError:
        return 0
    return count_quarantined(wh.settings)
