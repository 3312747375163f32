"""Validated import: every input row is loaded, counted as a duplicate, or quarantined.

DuckDB does the heavy lifting so throughput stays near a plain ``read_csv``: the file is
read once with every column as text into a temporary staging table (DuckDB spills it to
disk beyond its memory limit, so memory is bounded by that limit, not by the file), one
SQL pass computes the typed values and the first failing field with its reason. The rows
that must not load (a key seen earlier in the file, or already stored) are marked once per
file, then line ranges of ``imports.chunk_rows`` are moved in order. Each chunk is its own
transaction, so a run killed at any moment and run again ends with exactly the same rows.
The sink is the DuckDB warehouse or, for the Spark engine, the Parquet lake that
``Warehouse`` reads.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import zoneinfo
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import duckdb
from pydantic import BaseModel, Field

from yunying.errors import YunyingError
from yunying.warehouse import quarantine as qstore
from yunying.warehouse.contracts import Column, Contract, contract
from yunying.warehouse.engine import Warehouse, lake_files

InputFormat = Literal["csv", "parquet", "jsonl"]
FORMATS: tuple[str, ...] = ("csv", "parquet", "jsonl")
SUFFIXES: dict[str, InputFormat] = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}
# A file wider than this is junk, not data: refuse it before building SQL for it.
MAX_COLUMNS = 1000
# Delimiter for reading JSON lines as one text column (a line holding it is rejected).
_JSONL_DELIM = "\x1e"
# A time followed by a zone: Z, +08, +0800, +08:00, or a name such as UTC / Asia/Shanghai.
_ZONE_RE = r"\d:\d\d(:\d\d(\.\d+)?)?\s*([zZ]|[+-]\d\d(:?\d\d)?|\s*[A-Za-z_]+(/[A-Za-z_+-]+)*)$"
_EPOCH_RE = r"[+-]?\d{1,13}"
_NAIVE_FORMATS = "['%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S']"
# Epoch values above this are milliseconds (1e11 s is the year 5138).
_EPOCH_MS_FROM = 100_000_000_000

Progress = Callable[[str, str, int, int], None]
"""``progress(phase, file, done, total)``; phase is ``read`` or ``load``."""


class ImportRequest(BaseModel):
    """One import: a table, files and how to read them."""

    table: str
    paths: list[Path]
    format: InputFormat | None = None
    mapping: dict[str, str] = Field(default_factory=dict)
    timezone: str | None = None


class FileReport(BaseModel):
    import_id: str
    file: str
    format: str
    sha256: str
    rows_read: int
    loaded: int
    duplicate: int
    quarantined: int

    @property
    def reconciled(self) -> bool:
        return self.loaded + self.duplicate + self.quarantined == self.rows_read


class ImportResult(BaseModel):
    table: str
    engine: str
    timezone: str
    files: list[FileReport]

    @property
    def rows_read(self) -> int:
        return sum(f.rows_read for f in self.files)

    @property
    def loaded(self) -> int:
        return sum(f.loaded for f in self.files)

    @property
    def duplicate(self) -> int:
        return sum(f.duplicate for f in self.files)

    @property
    def quarantined(self) -> int:
        return sum(f.quarantined for f in self.files)

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        from yunying.i18n import t

        headers = [
            t("importing.col.import_id"),
            t("importing.col.file"),
            t("importing.col.rows"),
            t("importing.col.loaded"),
            t("importing.col.duplicate"),
            t("importing.col.quarantined"),
        ]
        rows: list[list[Any]] = [
            [f.import_id, f.file, f.rows_read, f.loaded, f.duplicate, f.quarantined]
            for f in self.files
        ]
        if len(self.files) > 1:
            rows.append(
                ["", t("importing.total"), self.rows_read, self.loaded, self.duplicate,
                 self.quarantined]
            )
        return headers, rows


# -- SQL helpers ------------------------------------------------------------------------
def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    """A SQL string literal (standard quoting: DuckDB has no backslash escapes)."""
    return "'" + text.replace("'", "''") + "'"


@dataclass
class _Source:
    """One input file, checked and ready: its columns and how they map to the contract."""

    path: Path
    format: InputFormat
    sha256: str
    columns: list[str]
    mapping: dict[str, str]  # contract field -> source column
    extras: list[str]  # source columns that go into properties
    rows_sql: str = ""
    params: list[Any] = field(default_factory=list)


def detect_format(path: Path, given: str | None) -> InputFormat:
    if given:
        if given not in FORMATS:
            raise YunyingError("importing.unknown_format", path=str(path), format=given)
        return given  # type: ignore[return-value]
    fmt = SUFFIXES.get(path.suffix.lower())
    if fmt is None:
        raise YunyingError("importing.unknown_format", path=str(path), format=path.suffix or "?")
    return fmt


def check_timezone(tz: str) -> str:
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise YunyingError("importing.bad_timezone", timezone=tz) from None
    return tz


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def _read_columns(con: duckdb.DuckDBPyConnection, path: Path, fmt: InputFormat) -> list[str]:
    """The file's column names; any failure here means the file cannot be read at all."""
    try:
        if fmt == "csv":
            with path.open("rb") as fh:
                head = fh.read(65536)
            if b"\x00" in head:
                raise YunyingError("importing.not_text", path=str(path))
            rows = con.execute(
                "DESCRIBE SELECT * FROM read_csv(?, all_varchar = true, header = true, ignore_errors = true)",
                [str(path)],
            ).fetchall()
            return [r[0] for r in rows]
        if fmt == "parquet":
            rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
            return [r[0] for r in rows]
        with path.open("rb") as fh:
            head = fh.read(65536)
        if b"\x00" in head or head.lstrip()[:1] not in (b"{", b"["):
            raise YunyingError("importing.not_jsonl", path=str(path))
        rows = con.execute(
            "SELECT DISTINCT unnest(json_keys(j)) FROM (SELECT CASE WHEN json_valid(line) AND "
            "json_type(line) = 'OBJECT' THEN line::JSON END AS j FROM read_csv(?, "
            "columns = {'line': 'VARCHAR'}, header = false, delim = ?, quote = '', escape = '',"
            " ignore_errors = true)) WHERE j IS NOT NULL",
            [str(path), _JSONL_DELIM],
        ).fetchall()
        return sorted(r[0] for r in rows)
    except duckdb.Error as e:
        raise YunyingError(
            "importing.unreadable", path=str(path), format=fmt, reason=str(e).splitlines()[0]
        ) from e


def prepare_source(
    con: duckdb.DuckDBPyConnection, c: Contract, path: Path, fmt: InputFormat,
    user_map: dict[str, str],
) -> _Source:
    """Check one file before anything is loaded: readable, known columns, required ones."""
    if not path.exists() or not path.is_file():
        raise YunyingError("importing.no_file", path=str(path))
    if path.stat().st_size == 0:
        raise YunyingError("importing.empty_file", path=str(path))
    columns = _read_columns(con, path, fmt)
    if len(columns) > MAX_COLUMNS:
        raise YunyingError(
            "importing.too_many_columns", path=str(path), n=len(columns), max=MAX_COLUMNS
        )
    mapping: dict[str, str] = {}
    for src, dst in user_map.items():
        if dst not in c.names:
            raise YunyingError(
                "importing.map_unknown_field", field=dst, table=c.table, fields=", ".join(c.names)
            )
        if src not in columns and fmt != "jsonl":
            raise YunyingError("importing.map_unknown_source", source=src, path=str(path))
        mapping[dst] = src
    lowered = {col.strip().lower(): col for col in columns}
    for col in c.columns:
        if col.name not in mapping and col.name in lowered and lowered[col.name] not in user_map:
            mapping[col.name] = lowered[col.name]
    missing = [col.name for col in c.columns if col.required and col.name not in mapping]
    if missing:
        raise YunyingError(
            "importing.missing_columns", path=str(path), columns=", ".join(missing),
            found=", ".join(columns[:20]) + (" …" if len(columns) > 20 else ""),
        )
    used = set(mapping.values())
    extras = [col for col in columns if col not in used]
    return _Source(path, fmt, file_sha256(path), columns, mapping, extras)


# -- validation SQL ---------------------------------------------------------------------
def _typed_sql(
    col: Column, v: str, enums: tuple[str, ...] | None, tz: str
) -> tuple[str, list[tuple[str, str]]]:
    """(typed expression, [(failure condition, reason code)]) for one contract column."""
    checks: list[tuple[str, str]] = []
    if col.required:
        checks.append((f"{v} IS NULL", "missing"))
    if col.type == "string":
        typed = v
        if col.max_length and col.name != "currency":
            # strlen (bytes, O(1)) bounds length (characters, a scan) from above.
            n = int(col.max_length)
            checks.append((f"strlen({v}) > {n} AND length({v}) > {n}", "too_long"))
        if enums:
            allowed = ", ".join(_lit(x) for x in enums)
            typed = f"lower({v})"
            checks.append((f"lower({v}) NOT IN ({allowed})", "bad_value"))
        if col.name == "currency":
            typed = f"upper({v})"
            checks.append((f"NOT regexp_full_match({v}, '[A-Za-z]{{3}}')", "bad_currency"))
        return typed, checks
    if col.type == "decimal":
        checks.append(
            (f"NOT regexp_full_match({v}, '[+-]?(\\d+(\\.\\d*)?|\\.\\d+)')", "not_decimal")
        )
        checks.append((f"regexp_matches({v}, '\\.\\d\\d\\d*[1-9]')", "decimal_scale"))
        typed = f"TRY_CAST({v} AS DECIMAL(18,2))"
        checks.append((f"{typed} IS NULL", "decimal_range"))
        return typed, checks
    if col.type == "timestamp":
        # A time without a zone is in the import's zone; UTC needs no (costly ICU) shift.
        def local(ts: str) -> str:
            return ts if tz == "UTC" else f"CAST(timezone($tz, {ts}) AS TIMESTAMP)"

        general = (
            f"CASE WHEN regexp_full_match({v}, '{_EPOCH_RE}') THEN "
            f"(CASE WHEN abs(TRY_CAST({v} AS BIGINT)) >= {_EPOCH_MS_FROM} "
            f"THEN epoch_ms(TRY_CAST({v} AS BIGINT)) "
            f"ELSE make_timestamp(TRY_CAST({v} AS BIGINT) * 1000000) END) "
            f"WHEN regexp_matches({v}, '{_ZONE_RE}') THEN CAST(TRY_CAST({v} AS TIMESTAMPTZ) AS TIMESTAMP) "
            f"ELSE {local(f'TRY_CAST({v} AS TIMESTAMP)')} END"
        )
        # The usual shape first: strptime must consume the whole value, so what it
        # accepts has no zone and is neither an epoch; the two regexes above then run
        # only on the rest (coalesce evaluates its second argument for those rows only).
        typed = f"coalesce({local(f'try_strptime({v}, {_NAIVE_FORMATS})')}, {general})"
        checks.append((f"{typed} IS NULL", "bad_timestamp"))
        return typed, checks
    if col.type == "date":
        typed = f"TRY_CAST({v} AS DATE)"
        checks.append(
            (f"NOT regexp_full_match({v}, '\\d{{4}}-\\d\\d-\\d\\d') OR {typed} IS NULL", "bad_date")
        )
        return typed, checks
    # json: an object (the properties column)
    checks.append((f"NOT json_valid({v}) OR json_type({v}) <> 'OBJECT'", "not_json_object"))
    return v, checks


def _trimmed(v: str) -> str:
    """``trim(v)``, calling it only when it can change something.

    DuckDB's trim strips Unicode space separators (category Zs) and copies every string,
    about a third of the validation's CPU time when called on every value. In ASCII text the only Zs is the space, so an
    ASCII value (bytes = characters) with no space at either end is already trimmed.
    """
    return (
        f"CASE WHEN prefix({v}, ' ') OR suffix({v}, ' ') OR strlen({v}) <> length({v}) "
        f"THEN trim({v}) ELSE {v} END"
    )


def _validated_select(src: _Source, c: Contract, base: str, tz: str) -> str:
    """SELECT <typed contract columns>, _field, _reason, _raw FROM base, in one pass.

    Three layers so that each value is trimmed once and each type is parsed once:
    L1 the trimmed text of every mapped column, L2 its typed value, L3 the first failing
    check (field and reason code), the properties object and, for bad rows only, the raw
    row as JSON (kept to show and export it).
    """
    jsonl = src.format == "jsonl"
    # L1: trimmed text, empty as NULL, under internal names _yy_v_<field>.
    l1: list[str] = []
    for col in c.columns:
        if col.name in src.mapping:
            name = src.mapping[col.name]
            if jsonl:
                text = f"trim(json_extract_string(j, {_json_path(name)}))"
            else:
                text = _trimmed(_ident(name))
            l1.append(f"nullif({text}, '') AS {_ident('_yy_v_' + col.name)}")
    # L2 typed values and L3 checks.
    l2: list[str] = []
    cases: list[str] = []
    typed: dict[str, str] = {}
    if jsonl:
        cases.append("WHEN j IS NULL THEN ['', 'bad_json_line']")
    for col in c.columns:
        if col.name not in src.mapping:
            typed[col.name] = "NULL"
            continue
        v = _ident("_yy_v_" + col.name)
        tv = _ident("_yy_t_" + col.name)
        expr, checks = _typed_sql(col, v, c.enums.get(col.name), tz)
        l2.append(f"{expr} AS {tv}")
        typed[col.name] = tv
        for cond, code in checks:
            cond = cond.replace(f"{expr} IS NULL", f"{tv} IS NULL")
            guard = cond if code == "missing" else f"{v} IS NOT NULL AND ({cond})"
            cases.append(f"WHEN {guard} THEN [{_lit(col.name)}, {_lit(code)}]")
    bad = "CASE " + " ".join(cases) + " END" if cases else "NULL::VARCHAR[]"
    if src.extras:
        typed["properties"] = _properties_sql(src, typed.get("properties", "NULL"))
    if jsonl:
        raw = "line"
    else:
        pairs = ", ".join(f"{_lit(x)}, {_ident(x)}" for x in src.columns)
        raw = f"json_object({pairs})::VARCHAR"
    cols = ", ".join(f"{typed[col.name]} AS {_ident(col.name)}" for col in c.columns)
    l1_sql = ", ".join(l1) or "NULL AS _yy_none"
    l2_sql = ", ".join(l2) or "NULL AS _yy_none2"
    return (
        f"SELECT {cols}, _yy_bad[1] AS _field, _yy_bad[2] AS _reason, "
        f"CASE WHEN _yy_bad IS NOT NULL THEN {raw} END AS _raw FROM ("
        f"SELECT *, {bad} AS _yy_bad FROM ("
        f"SELECT *, {l2_sql} FROM ("
        f"SELECT *, {l1_sql} FROM {base})))"
    )


def _json_path(key: str) -> str:
    return _lit('$."' + key.replace('"', '\\"') + '"')


def _properties_sql(src: _Source, props: str) -> str:
    """Unknown columns as one JSON object (empty values left out), merged into properties."""
    if src.format == "jsonl":
        vals = [f"json_extract(j, {_json_path(x)})" for x in src.extras]
        all_set = " AND ".join(f"{v} IS NOT NULL" for v in vals)
        fast = "json_object(" + ", ".join(
            f"{_lit(x)}, {v}" for x, v in zip(src.extras, vals, strict=True)
        ) + ")"
    else:
        vals = [f"to_json(nullif({_ident(x)}, ''))" for x in src.extras]
        all_set = " AND ".join(f"{_ident(x)} <> ''" for x in src.extras)
        # Every value set: the object by concatenation, the same text as json_object
        # (to_json escapes keys and values alike) at half its cost.
        members = ", ',', ".join(
            f"to_json({_lit(x)}::VARCHAR), ':', to_json({_ident(x)})" for x in src.extras
        )
        fast = f"concat('{{', {members}, '}}')"
    entries = ", ".join(
        f"struct_pack(k := {_lit(x)}, v := {v})" for x, v in zip(src.extras, vals, strict=True)
    )
    slow = (
        f"to_json(map_from_entries(list_filter([{entries}], lambda e: e.v IS NOT NULL)))"
    )
    extra = f"nullif((CASE WHEN {all_set} THEN {fast} ELSE {slow} END)::VARCHAR, '{{}}')"
    if props == "NULL":
        return extra
    return (
        f"CASE WHEN {extra} IS NULL THEN {props} WHEN {props} IS NULL THEN {extra} "
        f"ELSE json_merge_patch({props}, {extra})::VARCHAR END"
    )


def _base_sql(src: _Source, rejects: str) -> str:
    """The file as text rows in file order (structural errors go to rejects).

    No row numbers here: a window over the whole file would cost a third of the read.
    The staging table keeps file order (insertion order is preserved), so its ``rowid``
    + 1 is the row's ordinal k.
    """
    if src.format == "csv":
        return (
            "(SELECT * FROM read_csv($path, all_varchar = true, "
            f"header = true, store_rejects = true, rejects_table = '{rejects}', "
            f"rejects_scan = '{rejects}_scan', max_line_size = 10000000))"
        )
    if src.format == "parquet":
        casts = ", ".join(f"CAST({_ident(x)} AS VARCHAR) AS {_ident(x)}" for x in src.columns)
        return f"(SELECT {casts} FROM read_parquet($path))"
    return (
        "(SELECT line, CASE WHEN json_valid(line) AND json_type(line) = 'OBJECT' "
        "THEN line::JSON END AS j FROM "
        "read_csv($path, columns = {'line': 'VARCHAR'}, header = false, delim = $delim, "
        f"quote = '', escape = '', store_rejects = true, rejects_table = '{rejects}', "
        f"rejects_scan = '{rejects}_scan', max_line_size = 10000000))"
    )


_REJECT_CODES = {
    "MISSING COLUMNS": "csv_missing_columns",
    "TOO MANY COLUMNS": "csv_too_many_columns",
    "INVALID ENCODING": "invalid_encoding",
    "UNQUOTED VALUE": "csv_quote",
    "LINE SIZE OVER MAXIMUM": "line_too_long",
}


# -- the run ----------------------------------------------------------------------------
@contextmanager
def _work_connection(wh: Warehouse, tmp_dir: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """DuckDB does the work: the warehouse's own connection, or an in-memory one for Spark."""
    limit = wh.settings.warehouse.memory_limit or "1GB"
    if wh.engine == "duckdb":
        con: duckdb.DuckDBPyConnection = wh.duck
        old = con.execute(
            "SELECT current_setting('memory_limit'), current_setting('temp_directory'), "
            "current_setting('preserve_insertion_order')"
        ).fetchall()[0]
        con.execute(f"SET memory_limit = {_lit(limit)}")
        # Staged rows are numbered by rowid, which follows the file only in this mode.
        con.execute("SET preserve_insertion_order = true")
        try:  # refused once this connection has spilled; its own folder then serves
            con.execute(f"SET temp_directory = {_lit(str(tmp_dir))}")
        except duckdb.Error:
            pass
        try:
            yield con
        finally:
            con.execute(f"SET memory_limit = {_lit(old[0])}")
            con.execute(f"SET preserve_insertion_order = {bool(old[2])}")
            try:
                con.execute(f"SET temp_directory = {_lit(old[1])}")
            except duckdb.Error:
                pass
        return
    con = duckdb.connect(
        config={"memory_limit": limit, "temp_directory": str(tmp_dir),
                "preserve_insertion_order": True}
    )
    try:
        con.execute("SET TimeZone = 'UTC'")
        yield con
    finally:
        con.close()


# DuckDB's row group (rows): a committed append that ends mid-group leaves a part-filled
# group, which the next checkpoint rewrites (10 such chunks of 1M rows cost ~1 s at close).
_ROW_GROUP = 122_880


def _aligned_chunk(rows: int) -> int:
    """Rows per chunk: ``rows`` rounded up to whole row groups, when it spans one or more."""
    rows = max(1, rows)
    return -(-rows // _ROW_GROUP) * _ROW_GROUP if rows >= _ROW_GROUP else rows


def _clean_stale(root: Path) -> None:
    """Remove spill folders left by a killed run (one per process id; that process is gone)."""
    for d in root.iterdir():
        if not d.is_dir() or not d.name.isdigit() or int(d.name) == os.getpid():
            continue
        try:
            os.kill(int(d.name), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            pass


def run_import(
    wh: Warehouse, req: ImportRequest, progress: Progress | None = None
) -> ImportResult:
    """Import files into a contract table; all files are checked before any row is loaded."""
    if wh.engine not in ("duckdb", "spark"):
        raise YunyingError("importing.engine", engine=wh.engine)
    c = contract(req.table)
    if not req.paths:
        raise YunyingError("importing.no_paths")
    tz = check_timezone(req.timezone or wh.settings.timezone)
    settings = wh.settings
    root = settings.data_dir / "import-tmp"
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale(root)
    tmp_dir = root / str(os.getpid())
    tmp_dir.mkdir(exist_ok=True)
    chunk = _aligned_chunk(settings.imports.chunk_rows)
    try:
        with _work_connection(wh, tmp_dir) as con:
            sources = [
                prepare_source(con, c, Path(p), detect_format(Path(p), req.format), req.mapping)
                for p in req.paths
            ]
            reports = [_import_file(wh, con, c, s, tz, chunk, progress) for s in sources]
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return ImportResult(table=c.table, engine=wh.engine, timezone=tz, files=reports)


def _import_file(
    wh: Warehouse, con: duckdb.DuckDBPyConnection, c: Contract, src: _Source, tz: str,
    chunk: int, progress: Progress | None,
) -> FileReport:
    import_id = uuid.uuid4().hex[:12]
    name = str(src.path)
    q_path = qstore.quarantine_path(wh.settings)
    rejects = f"yy_rej_{import_id}"
    if progress:
        progress("read", name, 0, 0)
    con.execute(f"ATTACH {_lit(str(q_path))} AS yyq")
    _drop_stage(con)
    try:
        qstore.ensure_schema(con, "yyq")
        con.execute(
            "INSERT INTO yyq.imports (import_id, tbl, file, sha256, format, started_at, status, "
            "columns) VALUES (?, ?, ?, ?, ?, ?, 'running', ?)",
            [import_id, c.table, name, src.sha256, src.format, _now(), json.dumps(src.columns)],
        )
        # Pass 1: read once, validate every row in SQL, stage on disk.
        base = _base_sql(src, rejects)
        sql = f"CREATE TEMP TABLE _yy_stage AS {_validated_select(src, c, base, tz)}"
        params: dict[str, Any] = {"path": str(src.path)}
        if "$tz" in sql:
            params["tz"] = tz
        if src.format == "jsonl":
            params["delim"] = _JSONL_DELIM
        try:
            con.execute(sql, params)
        except duckdb.Error as e:
            raise YunyingError(
                "importing.unreadable", path=name, format=src.format,
                reason=str(e).splitlines()[0],
            ) from e
        staged = int(con.execute("SELECT count(*) FROM _yy_stage").fetchall()[0][0])
        rejected = _stage_rejects(con, src, rejects)
        total = staged + rejected
        loaded = duplicate = 0
        # Structurally broken lines (no columns to validate) go straight to quarantine.
        if rejected:
            con.execute(
                "INSERT INTO yyq.rows SELECT ?, ?, line, ?, ?, field, reason, detail, raw "
                "FROM _yy_rej ON CONFLICT DO NOTHING",
                [c.table, src.sha256, import_id, name],
            )
        if progress:
            progress("load", name, 0, staged)
        max_k = staged
        skip = _mark_duplicates(wh, con, c)
        lo = 1
        while lo <= max_k:
            hi = lo + chunk - 1
            n_loaded, n_dup = _move_chunk(
                wh, con, c, src, import_id, lo, hi, rejected > 0, skip
            )
            loaded += n_loaded
            duplicate += n_dup
            if progress:
                progress("load", name, min(hi, max_k), staged)
            lo = hi + 1
        quarantined = total - loaded - duplicate
        con.execute(
            "UPDATE yyq.imports SET status = 'done', finished_at = ?, rows_read = ?, loaded = ?, "
            "duplicate = ?, quarantined = ? WHERE import_id = ?",
            [_now(), total, loaded, duplicate, quarantined, import_id],
        )
    finally:
        for stmt in (f"DROP TABLE IF EXISTS {rejects}", f"DROP TABLE IF EXISTS {rejects}_scan"):
            try:
                con.execute(stmt)
            except duckdb.Error:
                pass
        _drop_stage(con)
        con.execute("DETACH yyq")
    return FileReport(
        import_id=import_id, file=name, format=src.format, sha256=src.sha256,
        rows_read=total, loaded=loaded, duplicate=duplicate, quarantined=quarantined,
    )


def _drop_stage(con: duckdb.DuckDBPyConnection) -> None:
    for name in ("_yy_stage", "_yy_rej", "_yy_rj", "_yy_skip"):
        con.execute(f"DROP TABLE IF EXISTS temp.{name}")


def _now() -> datetime:
    from yunying import clock

    return clock.now()


def _stage_rejects(con: duckdb.DuckDBPyConnection, src: _Source, rejects: str) -> int:
    """Lines the reader could not split into columns, one row each, with a line map.

    ``_yy_rj`` lets a staged row's ordinal k be turned back into its line number: the
    i-th rejected data line e_i shifts every later row by one, so the line of row k is
    k + header + #{i : e_i - i < k}.
    """
    header = 1 if src.format == "csv" else 0
    con.execute(
        "CREATE TEMP TABLE _yy_rej (line BIGINT, field VARCHAR, reason VARCHAR, detail VARCHAR, raw VARCHAR)"
    )
    con.execute("CREATE TEMP TABLE _yy_rj (g BIGINT, cnt BIGINT)")
    if src.format == "parquet":
        return 0
    exists = con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary", [rejects]
    ).fetchall()[0][0]
    if not exists:
        return 0
    cases = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in _REJECT_CODES.items())
    con.execute(
        f"INSERT INTO _yy_rej SELECT line, coalesce(arg_min(column_name, column_idx), ''), "
        f"CASE arg_min(error_type::VARCHAR, column_idx) {cases} ELSE 'malformed' END, "
        f"arg_min(error_message, column_idx), any_value(csv_line) "
        f"FROM {rejects} GROUP BY line"
    )
    con.execute(
        f"INSERT INTO _yy_rj SELECT g, max(i) FROM (SELECT line - {header} - "
        "row_number() OVER (ORDER BY line) AS g, row_number() OVER (ORDER BY line) AS i "
        "FROM _yy_rej) GROUP BY g"
    )
    return int(con.execute("SELECT count(*) FROM _yy_rej").fetchall()[0][0])


def _mark_duplicates(wh: Warehouse, con: duckdb.DuckDBPyConnection, c: Contract) -> bool:
    """Collect in ``_yy_skip`` the staged rows that must not load; True when there are any.

    Done once per file, not per chunk: a later occurrence of a key within the file, and
    a row whose key is already stored. A crash between chunks is still safe, because a
    new run finds the rows that the committed chunks stored. Each check is skipped when it
    cannot match: a distinct count tells whether the file repeats any key, and an empty
    table holds none.
    """
    key = _ident(c.key)
    con.execute("CREATE TEMP TABLE _yy_skip (r BIGINT)")
    # Distinct hashes are cheaper than distinct strings, and as many hashes as rows
    # proves there is no repeat; fewer (a repeat or a collision) takes the exact query.
    valid, hashes = con.execute(
        f"SELECT count(*), count(DISTINCT hash({key})) FROM _yy_stage WHERE _reason IS NULL"
    ).fetchall()[0]
    if hashes < valid:
        # Every occurrence of a repeated key after its first (file order = rowid order).
        con.execute(
            f"INSERT INTO _yy_skip SELECT s.rowid FROM _yy_stage s JOIN (SELECT {key}, "
            f"min(rowid) AS r0 FROM _yy_stage WHERE _reason IS NULL GROUP BY {key} "
            f"HAVING count(*) > 1) d ON s.{key} = d.{key} "
            "WHERE s._reason IS NULL AND s.rowid > d.r0"
        )
    if wh.engine == "duckdb":
        stored = f'"{c.table}"'
        params: list[Any] = []
    else:
        files = [str(f) for f in lake_files(wh.settings, c.table)]
        stored, params = "read_parquet(?)", [files] if files else []
        if not files:
            stored = ""
    if stored and con.execute(f"SELECT EXISTS (SELECT 1 FROM {stored})", params).fetchall()[0][0]:
        con.execute(
            f"INSERT INTO _yy_skip SELECT s.rowid FROM _yy_stage s SEMI JOIN {stored} t "
            f"ON t.{key} = s.{key} WHERE s._reason IS NULL",
            params,
        )
    return bool(con.execute("SELECT EXISTS (SELECT 1 FROM _yy_skip)").fetchall()[0][0])


def _move_chunk(
    wh: Warehouse, con: duckdb.DuckDBPyConnection, c: Contract, src: _Source,
    import_id: str, lo: int, hi: int, has_rejects: bool, skip: bool,
) -> tuple[int, int]:
    """Quarantine the chunk's bad rows, then load its valid rows not marked to skip:
    (loaded, duplicate).

    Two transactions (DuckDB writes one database per transaction), both idempotent: the
    quarantine by (table, file checksum, line), the load by key (see ``_mark_duplicates``).
    Rows are addressed by staging ``rowid`` (k - 1), which DuckDB prunes without a scan.
    """
    header = 1 if src.format == "csv" else 0
    k = "(v.rowid + 1)"
    if has_rejects:
        line = f"{k} + {header} + coalesce(rj.cnt, 0)"
        join = f"ASOF LEFT JOIN _yy_rj rj ON {k} > rj.g"
    else:
        line, join = f"{k} + {header}", ""
    con.execute(
        f"INSERT INTO yyq.rows SELECT ?, ?, {line}, ?, ?, v._field, v._reason, NULL, v._raw "
        f"FROM _yy_stage v {join} WHERE v.rowid BETWEEN ? AND ? AND v._reason IS NOT NULL "
        "ON CONFLICT DO NOTHING",
        [c.table, src.sha256, import_id, str(src.path), lo - 1, hi - 1],
    )
    cols = ", ".join(f"v.{_ident(n)}" for n in c.names)
    cand = (
        f"SELECT {cols} FROM _yy_stage v "
        + ("ANTI JOIN _yy_skip x ON x.r = v.rowid " if skip else "")
        + "WHERE v.rowid BETWEEN $lo AND $hi AND v._reason IS NULL"
    )
    bounds = {"lo": lo - 1, "hi": hi - 1}
    valid = int(
        con.execute(
            "SELECT count(*) FROM _yy_stage WHERE rowid BETWEEN ? AND ? AND _reason IS NULL",
            [lo - 1, hi - 1],
        ).fetchall()[0][0]
    )
    if valid == 0:
        return 0, 0
    if wh.engine == "duckdb":
        con.execute("BEGIN TRANSACTION")
        try:
            cur = con.execute(f'INSERT INTO "{c.table}" {cand}', bounds)
            loaded = int(cur.fetchall()[0][0])
            if loaded:
                wh.bump_version()
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return loaded, valid - loaded
    data = con.sql(cand, params=bounds).to_arrow_table()
    assert data is not None
    if data.num_rows:
        wh.append_arrow(c.table, data)
    return data.num_rows, valid - data.num_rows
