"""Quarantine store: every rejected input row with its file, line, field and reason.

It lives in its own DuckDB file (``.yunying/quarantine.duckdb``) so it works the same
whichever engine holds the warehouse. Rows are keyed by (table, file checksum, line):
importing the same file twice never duplicates them. ``export`` writes the bad rows back
in the shape of the source so a person can correct them and import the file again.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
from pydantic import BaseModel

from yunying.config import Settings
from yunying.errors import YunyingError

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS imports (
        import_id VARCHAR PRIMARY KEY, tbl VARCHAR, file VARCHAR, sha256 VARCHAR,
        format VARCHAR, started_at TIMESTAMP, finished_at TIMESTAMP, status VARCHAR,
        rows_read BIGINT, loaded BIGINT, duplicate BIGINT, quarantined BIGINT,
        columns VARCHAR)""",
    """CREATE TABLE IF NOT EXISTS rows (
        tbl VARCHAR, sha256 VARCHAR, line BIGINT, import_id VARCHAR, file VARCHAR,
        field VARCHAR, reason VARCHAR, detail VARCHAR, raw VARCHAR,
        PRIMARY KEY (tbl, sha256, line))""",
    # Added later; old stores gain them on first use.
    "ALTER TABLE imports ADD COLUMN IF NOT EXISTS pid BIGINT",
    "ALTER TABLE imports ADD COLUMN IF NOT EXISTS encoding VARCHAR",
    "ALTER TABLE rows ADD COLUMN IF NOT EXISTS raw_bytes BLOB",
)


def quarantine_path(settings: Settings) -> Path:
    return settings.data_dir / "quarantine.duckdb"


def ensure_schema(con: duckdb.DuckDBPyConnection, schema: str | None = None) -> None:
    """Create the store's tables (in ``schema`` when the file is attached under a name)."""
    for ddl in SCHEMA:
        if schema:
            ddl = ddl.replace("EXISTS imports", f"EXISTS {schema}.imports").replace(
                "EXISTS rows", f"EXISTS {schema}.rows"
            ).replace("TABLE imports", f"TABLE {schema}.imports").replace(
                "TABLE rows", f"TABLE {schema}.rows"
            )
        con.execute(ddl)


def _alive(pid: int | None) -> bool:
    import os

    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def mark_interrupted(con: duckdb.DuckDBPyConnection, schema: str = "main") -> None:
    """Entries left ``running`` by a process that is gone become ``interrupted``.

    Their counts are those of the chunks the run committed (the log follows every chunk).
    """
    found = con.execute(
        f"SELECT import_id, pid FROM {schema}.imports WHERE status = 'running'"
    ).fetchall()
    for import_id, pid in found:
        if not _alive(pid):
            con.execute(
                f"UPDATE {schema}.imports SET status = 'interrupted' WHERE import_id = ?",
                [import_id],
            )


@contextmanager
def _open(settings: Settings, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection | None]:
    path = quarantine_path(settings)
    if read_only and not path.exists():
        yield None
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        con = duckdb.connect(str(path), read_only=read_only)
        if read_only and _has_tables(con) and not _current(con):
            con.close()  # a store from an older version: add its new columns once
            con = duckdb.connect(str(path))
            ensure_schema(con)
            con.close()
            con = duckdb.connect(str(path), read_only=True)
    except duckdb.IOException as e:
        raise YunyingError("importing.quarantine_busy", path=str(path), reason=str(e)) from e
    try:
        if not read_only:
            ensure_schema(con)
        yield con
    finally:
        con.close()


def count_quarantined(settings: Settings) -> int:
    """Rows waiting in quarantine (shown by ``yunying status``)."""
    with _open(settings, read_only=True) as con:
        if con is None or not _has_tables(con):
            return 0
        return int(con.execute("SELECT count(*) FROM rows").fetchall()[0][0])


def _has_tables(con: duckdb.DuckDBPyConnection) -> bool:
    n = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name IN ('imports', 'rows')"
    ).fetchall()[0][0]
    return int(n) == 2


def _current(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the store has every column of ``SCHEMA`` (older stores lack the last ones)."""
    n = con.execute(
        "SELECT count(*) FROM duckdb_columns() WHERE (table_name = 'imports' AND "
        "column_name IN ('pid', 'encoding')) OR (table_name = 'rows' AND column_name = 'raw_bytes')"
    ).fetchall()[0][0]
    return int(n) == 3


class ImportLogEntry(BaseModel):
    import_id: str
    table: str
    file: str
    sha256: str
    format: str
    started_at: datetime
    finished_at: datetime | None
    status: str
    rows_read: int
    loaded: int
    duplicate: int
    quarantined: int


class ImportLog(BaseModel):
    imports: list[ImportLogEntry]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        from yunying.i18n import t

        headers = [
            t("importing.col.import_id"),
            t("importing.col.table"),
            t("importing.col.file"),
            t("importing.col.time"),
            t("importing.col.status"),
            t("importing.col.rows"),
            t("importing.col.loaded"),
            t("importing.col.duplicate"),
            t("importing.col.quarantined"),
        ]
        rows: list[list[Any]] = [
            [
                e.import_id,
                e.table,
                e.file,
                e.started_at.strftime("%Y-%m-%d %H:%M:%S"),
                t(f"importing.status.{e.status}"),
                e.rows_read,
                e.loaded,
                e.duplicate,
                e.quarantined,
            ]
            for e in self.imports
        ]
        return headers, rows


class QuarantinedRow(BaseModel):
    line: int
    field: str
    reason: str
    message: str
    value: str | None


class QuarantineDetail(BaseModel):
    import_id: str
    table: str
    file: str
    total: int
    rows: list[QuarantinedRow]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        from yunying.i18n import t

        headers = [
            t("importing.col.line"),
            t("importing.col.field"),
            t("importing.col.reason"),
            t("importing.col.value"),
        ]
        return headers, [[r.line, r.field, r.message, r.value] for r in self.rows]


_LOG_COLS = (
    "import_id, tbl, file, sha256, format, started_at, finished_at, status, "
    "rows_read, loaded, duplicate, quarantined, pid"
)


def _entry(r: tuple[Any, ...]) -> ImportLogEntry:
    return ImportLogEntry(
        import_id=r[0],
        table=r[1],
        file=r[2],
        sha256=r[3],
        format=r[4],
        started_at=r[5],
        finished_at=r[6],
        # A run whose process is gone was killed: its counts are what it committed.
        status="interrupted" if r[7] == "running" and not _alive(r[12]) else r[7],
        rows_read=r[8] or 0,
        loaded=r[9] or 0,
        duplicate=r[10] or 0,
        quarantined=r[11] or 0,
    )


def list_imports(settings: Settings, table: str | None = None, limit: int = 50) -> ImportLog:
    """The import log, newest first."""
    with _open(settings, read_only=True) as con:
        if con is None or not _has_tables(con):
            return ImportLog(imports=[])
        sql = f"SELECT {_LOG_COLS} FROM imports"
        params: list[Any] = []
        if table:
            sql += " WHERE tbl = ?"
            params.append(table)
        sql += " ORDER BY started_at DESC, import_id LIMIT ?"
        params.append(limit)
        entries = [_entry(r) for r in con.execute(sql, params).fetchall()]
    return ImportLog(imports=_with_committed(settings, entries))


def _with_committed(settings: Settings, entries: list[ImportLogEntry]) -> list[ImportLogEntry]:
    """Interrupted runs with the counts the warehouse committed for them (DuckDB writes
    those in the same transactions as the rows; the log can lag by one chunk)."""
    if not any(e.status == "interrupted" for e in entries):
        return entries
    if settings.warehouse.engine != "duckdb" or not settings.warehouse_path.exists():
        return entries
    from yunying.warehouse.importer import committed_counts

    try:
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    except duckdb.Error:
        return entries  # busy: the log's own counts
    try:
        counts = committed_counts(con)
    except duckdb.Error:
        counts = {}
    finally:
        con.close()
    for e in entries:
        if e.status == "interrupted" and e.import_id in counts:
            e.loaded, e.duplicate = counts[e.import_id]
    return entries


def get_import(settings: Settings, import_id: str) -> ImportLogEntry:
    with _open(settings, read_only=True) as con:
        if con is not None and _has_tables(con):
            found = con.execute(
                f"SELECT {_LOG_COLS} FROM imports WHERE import_id = ?", [import_id]
            ).fetchall()
            if found:
                return _entry(found[0])
    raise YunyingError("importing.unknown_import", import_id=import_id)


def reason_message(reason: str, field: str, detail: str | None) -> str:
    from yunying.i18n import t

    return t(f"importing.reason.{reason}", field=field, detail=detail or "")


def show_import(settings: Settings, import_id: str, limit: int = 100) -> QuarantineDetail:
    """The quarantined rows of one import: line, field, reason and the offending value."""
    e = get_import(settings, import_id)
    with _open(settings, read_only=True) as con:
        assert con is not None
        total = con.execute(
            "SELECT count(*) FROM rows WHERE tbl = ? AND sha256 = ?", [e.table, e.sha256]
        ).fetchall()[0][0]
        found = con.execute(
            "SELECT line, field, reason, detail, raw FROM rows WHERE tbl = ? AND sha256 = ? "
            "ORDER BY line LIMIT ?",
            [e.table, e.sha256, limit],
        ).fetchall()
    rows = []
    for line, field, reason, detail, raw in found:
        rows.append(
            QuarantinedRow(
                line=line,
                field=field or "",
                reason=reason,
                message=reason_message(reason, field or "", detail),
                value=_value_of(raw, field),
            )
        )
    return QuarantineDetail(
        import_id=e.import_id, table=e.table, file=e.file, total=int(total), rows=rows
    )


def _value_of(raw: str | None, field: str | None) -> str | None:
    """The offending cell (or the whole line when the line itself is broken)."""
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return raw[:200]
    if isinstance(obj, dict):
        if field and field in obj:
            v = obj[field]
            return None if v is None else (v if isinstance(v, str) else json.dumps(v))[:200]
        return json.dumps(obj, ensure_ascii=False)[:200]
    return str(obj)[:200]


def export_import(settings: Settings, import_id: str, output: Path) -> int:
    """Write the quarantined rows of an import back as a file to correct and re-import.

    CSV sources come back as CSV with the original header, in the source's encoding
    (a GB18030 file stays GB18030, so Excel opens it as before); JSON lines as JSON lines;
    Parquet sources as CSV (a spreadsheet can edit it). A line the reader could not split
    into columns is written back as it was, byte for byte when it was not valid text.
    """
    import codecs
    import io

    from yunying import csvsafe

    e = get_import(settings, import_id)
    out_format = "jsonl" if output.suffix.lower() in (".jsonl", ".ndjson") else "csv"
    if out_format == "jsonl" and e.format != "jsonl":
        raise YunyingError("importing.export_format", source=e.format, output=str(output))
    output.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with _open(settings, read_only=True) as con:
        assert con is not None
        header_row = con.execute(
            "SELECT columns, encoding FROM imports WHERE import_id = ?", [import_id]
        ).fetchall()
        header: list[str] = json.loads(header_row[0][0]) if header_row[0][0] else []
        encoding = header_row[0][1] or "utf-8"
        encoder = codecs.getincrementalencoder(encoding)(errors="replace")
        cur = con.execute(
            "SELECT raw, raw_bytes FROM rows WHERE tbl = ? AND sha256 = ? ORDER BY line",
            [e.table, e.sha256],
        )
        tmp = output.with_name(output.name + ".tmp")
        with tmp.open("wb") as fh:
            buf = io.StringIO()
            writer = csvsafe.writer(buf)

            def put(text: str) -> None:
                fh.write(encoder.encode(text))

            if out_format == "csv":
                writer.writerow(header)
            while batch := cur.fetchmany(10_000):
                for raw, raw_bytes in batch:
                    n += 1
                    if raw_bytes is not None:  # not valid text: the bytes as they were
                        put(buf.getvalue())
                        buf.seek(0)
                        buf.truncate()
                        fh.write(bytes(raw_bytes) + b"\n")
                        continue
                    if out_format == "jsonl":
                        buf.write((raw or "") + "\n")
                        continue
                    obj = _as_object(raw)
                    if obj is None:
                        buf.write(csvsafe.raw_line(raw or "") + "\n")
                    else:
                        writer.writerow(["" if obj.get(h) is None else obj.get(h) for h in header])
                put(buf.getvalue())
                buf.seek(0)
                buf.truncate()
            put(buf.getvalue())
        tmp.replace(output)
    return n


def _as_object(raw: str | None) -> dict[str, Any] | None:
    if raw is None:
        return None
    try:
        obj = json.loads(raw)
    except ValueError:
        return None
    return obj if isinstance(obj, dict) else None


def clear_import(settings: Settings, import_id: str) -> int:
    """Forget the quarantined rows of an import once they are fixed (the log stays)."""
    e = get_import(settings, import_id)
    with _open(settings) as con:
        assert con is not None
        n = con.execute(
            "SELECT count(*) FROM rows WHERE tbl = ? AND sha256 = ?", [e.table, e.sha256]
        ).fetchall()[0][0]
        con.execute("DELETE FROM rows WHERE tbl = ? AND sha256 = ?", [e.table, e.sha256])
    return int(n)
