"""Removing rows that must not stay: by key, by a small filter, or outside the time window.

For an administrator, from the CLI (``yunying data delete``) and the HTTP API
(``POST /api/v1/data/delete``); both edges write an audit entry (``data.delete``) in the
app database's audit log. The filter is parsed
here into typed comparisons on contract columns and run with bound parameters: nothing
the user types is formatted into SQL.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel

from yunying.errors import YunyingError
from yunying.warehouse.contracts import Column, Contract, contract
from yunying.warehouse.engine import Warehouse

_OPS = ("<=", ">=", "!=", "=", "<", ">")
_COND = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|!=|=|<|>)\s*(.*?)\s*")
MAX_KEYS = 10_000


class DeleteResult(BaseModel):
    table: str
    matched: int
    deleted: int
    dry_run: bool
    criteria: str


def _value(col: Column, text: str) -> Any:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        text = text[1:-1]
    try:
        if col.type == "timestamp":
            return datetime.fromisoformat(text.replace("Z", "+00:00")).replace(tzinfo=None)
        if col.type == "date":
            return date.fromisoformat(text)
        if col.type == "decimal":
            d = Decimal(text)
            if not d.is_finite() or abs(d) >= Decimal(10) ** 16:
                raise ValueError(text)  # DECIMAL(18,2) holds 16 digits before the point
            return d
    except (ValueError, InvalidOperation, OverflowError):
        raise YunyingError("data.bad_value", column=col.name, value=text[:64]) from None
    return text


def parse_where(c: Contract, where: str) -> tuple[str, list[Any]]:
    """``ts>=2099-01-01 and event=view`` → (SQL condition with ?, parameters)."""
    parts: list[str] = []
    params: list[Any] = []
    for cond in re.split(r"\s+and\s+", where.strip(), flags=re.IGNORECASE):
        m = _COND.fullmatch(cond)
        if not m or not m[3]:
            raise YunyingError("data.bad_where", where=where[:200])
        name, op, raw = m[1].lower(), m[2], m[3]
        if name not in c.names or c.column(name).type == "json":
            raise YunyingError(
                "data.bad_column", column=name, table=c.table,
                columns=", ".join(x.name for x in c.columns if x.type != "json"),
            )
        parts.append(f'"{name}" {op} ?')
        params.append(_value(c.column(name), raw))
    return " AND ".join(parts), params


def _criteria(
    wh: Warehouse, c: Contract, keys: list[str], where: str | None, outside_window: bool
) -> tuple[str, list[Any], str]:
    conds: list[str] = []
    params: list[Any] = []
    said: list[str] = []
    if keys:
        if len(keys) > MAX_KEYS:
            raise YunyingError("data.too_many_keys", max=MAX_KEYS)
        conds.append(f'list_contains(?, "{c.key}")')
        params.append(list(keys))
        said.append(f"{c.key} in [{', '.join(keys[:5])}{', …' if len(keys) > 5 else ''}]")
    if where:
        sql, ps = parse_where(c, where)
        conds.append(f"({sql})")
        params += ps
        said.append(where)
    if outside_window:
        from yunying.warehouse.status import time_window

        if not c.time_column:
            raise YunyingError("data.no_time_column", table=c.table)
        lo, hi = time_window(wh.settings)
        col = f'"{c.time_column}"'
        if c.column(c.time_column).type == "date":
            conds.append(f"{col} < ?")
            params.append(lo.date())
        else:
            conds.append(f"({col} < ? OR {col} > ?)")
            params += [lo, hi]
        said.append("outside the time window")
    if not conds:
        raise YunyingError("data.no_criteria")
    return " AND ".join(conds), params, "; ".join(said)


def delete_rows(
    wh: Warehouse, table: str, keys: list[str] | None = None, where: str | None = None,
    outside_window: bool = False, dry_run: bool = False,
) -> DeleteResult:
    """Delete the rows of ``table`` that match every criterion given (at least one)."""
    c = contract(table)
    if wh.engine != "duckdb":
        raise YunyingError("data.delete_engine", engine=wh.engine)
    cond, params, said = _criteria(wh, c, keys or [], where, outside_window)
    con = wh.duck
    matched = int(con.execute(f'SELECT count(*) FROM "{c.table}" WHERE {cond}', params).fetchall()[0][0])
    deleted = 0
    if matched and not dry_run:
        con.execute("BEGIN TRANSACTION")
        try:
            deleted = int(con.execute(f'DELETE FROM "{c.table}" WHERE {cond}', params).fetchall()[0][0])
            wh.bump_version()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
    return DeleteResult(table=c.table, matched=matched, deleted=deleted, dry_run=dry_run, criteria=said)
