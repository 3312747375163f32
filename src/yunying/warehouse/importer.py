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
# Epoch values: seconds have 9 or 10 digits (1973 to 2286), milliseconds exactly 13.
_EPOCH_S_RE = r"[+-]?\d{9,10}"
_EPOCH_MS_RE = r"[+-]?\d{13}"
_NAIVE_FORMATS = "['%Y-%m-%d %H:%M:%S', '%Y-%m-%dT%H:%M:%S']"
# A date, then optionally a time: 2024-03-01, 2024/3/1, 2024-03-01 10:00, …T10:00:00.123
_DT_RE = r"\d{4}(-\d{1,2}-\d{1,2}|/\d{1,2}/\d{1,2})([ T]\d{1,2}:\d\d(:\d\d(\.\d{1,9})?)?)?"
# An offset: Z, +08, +0800, +08:00 (never beyond ±14:00, the widest zone on Earth).
_OFFSET_RE = r"\s*([zZ]|[+-](0\d|1[0-4])(:?[0-5]\d)?)"
# A zone by name: UTC, GMT or an IANA name such as Asia/Shanghai or Etc/GMT-8.
_ZONE_NAME_RE = r"\s+(UTC|GMT|[A-Za-z_]+(/[A-Za-z0-9_+-]+)+)"
_ABBREV_RE = r"\s+[A-Za-z]{2,6}"
# Excel's day 0 (its serials count days from here, with the 1900 leap-year bug folded in).
_EXCEL_EPOCH = "1899-12-30"


# What floats print for NaN and the infinities (Python, pandas, DuckDB, JavaScript, Excel).
_NOT_IDS = ", ".join(
    f"'{sign}{w}'"
    for w in sorted({f(x) for x in ("nan", "inf", "infinity")
                     for f in (str.lower, str.capitalize, str.upper)} | {"NaN"})
    for sign in ("", "-", "+")
)


@dataclass(frozen=True)
class TimeRules:
    """How times are read and which are accepted (from the import and the settings)."""

    earliest: datetime | None = None
    latest: datetime | None = None
    excel_dates: bool = False
    abbreviations: tuple[tuple[str, str], ...] = (("CST", "Asia/Shanghai"),)


Progress = Callable[[str, str, int, int], None]
"""``progress(phase, file, done, total)``; phase is ``read`` or ``load``."""


class ImportRequest(BaseModel):
    """One import: a table, files and how to read them."""

    table: str
    paths: list[Path]
    format: InputFormat | None = None
    mapping: dict[str, str] = Field(default_factory=dict)
    timezone: str | None = None
    # Text files: encoding (None/"auto" detects UTF-8, UTF-16 with BOM, GB18030), CSV
    # delimiter (None: from the header line) and quote character ("" turns quoting off).
    encoding: str | None = None
    delimiter: str | None = None
    quote: str | None = None
    # Read plain numbers in time columns as Excel serial days (45678 = 2025-01-21).
    excel_dates: bool = False


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
    # The SQL name of each column in the file's base rows: positional (_yy_c0, …), so no
    # column name can collide with a name the generated SQL uses.
    internal: list[str] = field(default_factory=list)
    read_path: Path | None = None  # the UTF-8 file DuckDB reads (CSV, JSON lines)
    encoding: str = "utf-8"
    delimiter: str = ","
    quote: str = '"'
    refs: list[str] = field(default_factory=list)  # Parquet: DuckDB's name of each column
    types: list[str] = field(default_factory=list)  # Parquet: DuckDB's type of each column

    def __post_init__(self) -> None:
        if not self.internal:
            self.internal = [f"_yy_c{i}" for i in range(len(self.columns))]

    def is_json(self, name: str) -> bool:
        """Whether the column's text is JSON (a Parquet struct, list or map)."""
        if self.format != "parquet" or not self.types:
            return False
        return _is_nested(self.types[self.columns.index(name)])

    def col(self, name: str) -> str:
        """The SQL identifier under which the base rows hold the file's column ``name``."""
        return self.internal[self.columns.index(name)]


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


def _parquet_columns(
    con: duckdb.DuckDBPyConnection, path: Path
) -> tuple[list[str], list[str], list[str]]:
    """(the file's own column names, DuckDB's name for each, DuckDB's type of each).

    DuckDB renames a column whose name differs from an earlier one only in case (``E``
    after ``e`` becomes ``E_1``); the file's own names come from its schema.
    """
    rows = con.execute("DESCRIBE SELECT * FROM read_parquet(?)", [str(path)]).fetchall()
    refs, types = [r[0] for r in rows], [str(r[1]) for r in rows]
    try:
        import pyarrow.parquet as pq

        names = list(pq.read_schema(path).names)
    except Exception:  # noqa: BLE001 - DuckDB read it; its names are then the best we have
        names = refs
    if len(names) != len(refs):
        names = refs
    return names, refs, types


def _jsonl_columns(con: duckdb.DuckDBPyConnection, src: _Source) -> list[str]:
    assert src.read_path is not None
    with src.read_path.open("rb") as fh:
        head = fh.read(65536)
    if b"\x00" in head or head.lstrip()[:1] not in (b"{", b"["):
        raise YunyingError("importing.not_jsonl", path=str(src.path))
    rows = con.execute(
        "SELECT DISTINCT unnest(json_keys(j)) FROM (SELECT CASE WHEN json_valid(line) AND "
        "json_type(line) = 'OBJECT' THEN line::JSON END AS j FROM read_csv(?, "
        "columns = {'line': 'VARCHAR'}, header = false, delim = ?, quote = '', escape = '',"
        " ignore_errors = true)) WHERE j IS NOT NULL",
        [str(src.read_path), _JSONL_DELIM],
    ).fetchall()
    return sorted(r[0] for r in rows)


def _read_source(
    con: duckdb.DuckDBPyConnection, path: Path, fmt: InputFormat, req: ImportRequest,
    work_dir: Path, name: str,
) -> _Source:
    """The file's columns and how to read it; any failure here means it cannot be read."""
    from yunying.warehouse import textfiles

    try:
        if fmt == "parquet":
            names, refs, types = _parquet_columns(con, path)
            return _Source(path, fmt, "", names, {}, [], refs=refs, types=types)
        if fmt == "csv":
            with path.open("rb") as fh:
                head = fh.read(65536)
            utf16 = head.startswith((b"\xff\xfe", b"\xfe\xff"))
            if b"\x00" in head and not utf16 and not req.encoding:
                raise YunyingError("importing.not_text", path=str(path))
            tf = textfiles.open_text(path, req.encoding, req.delimiter, req.quote, work_dir, name)
            with tf.read_path.open("rb") as fh:
                if b"\x00" in fh.read(65536):
                    raise YunyingError("importing.not_text", path=str(path))
            return _Source(
                path, fmt, "", tf.header, {}, [], read_path=tf.read_path, encoding=tf.encoding,
                delimiter=tf.delimiter, quote=tf.quote,
            )
        enc = textfiles.detect_encoding(path, req.encoding)
        read_path = textfiles.as_utf8(path, enc, work_dir, name)
        src = _Source(path, fmt, "", [], {}, [], read_path=read_path, encoding=enc)
        src.columns = _jsonl_columns(con, src)
        src.internal = []
        return src
    except duckdb.Error as e:
        raise YunyingError(
            "importing.unreadable", path=str(path), format=fmt, reason=str(e).splitlines()[0]
        ) from e


def prepare_source(
    con: duckdb.DuckDBPyConnection, c: Contract, path: Path, fmt: InputFormat,
    user_map: dict[str, str], req: ImportRequest | None = None, work_dir: Path | None = None,
    name: str = "f0",
) -> _Source:
    """Check one file before anything is loaded: readable, known columns, required ones."""
    from yunying.warehouse.textfiles import duplicate_names

    if not path.exists() or not path.is_file():
        raise YunyingError("importing.no_file", path=str(path))
    if path.stat().st_size == 0:
        raise YunyingError("importing.empty_file", path=str(path))
    req = req or ImportRequest(table=c.table, paths=[path])
    src = _read_source(con, path, fmt, req, work_dir or path.parent, name)
    columns = src.columns
    if len(columns) > MAX_COLUMNS:
        raise YunyingError(
            "importing.too_many_columns", path=str(path), n=len(columns), max=MAX_COLUMNS
        )
    dups = duplicate_names(columns)
    if dups:
        raise YunyingError("importing.duplicate_columns", path=str(path), columns=", ".join(dups))
    if not src.internal or len(src.internal) != len(columns):
        src.internal = [f"_yy_c{i}" for i in range(len(columns))]
    mapping: dict[str, str] = {}
    for source, dst in user_map.items():
        if dst not in c.names:
            raise YunyingError(
                "importing.map_unknown_field", field=dst, table=c.table, fields=", ".join(c.names)
            )
        if source not in columns and fmt != "jsonl":
            raise YunyingError("importing.map_unknown_source", source=source, path=str(path))
        mapping[dst] = source
    lowered: dict[str, list[str]] = {}
    for col_name in columns:
        lowered.setdefault(col_name.strip().lower(), []).append(col_name)
    for col in c.columns:
        found = [x for x in lowered.get(col.name, []) if x not in user_map]
        if col.name in mapping or not found:
            continue
        if len(found) > 1:  # "ts" and "TS": which one is the time?
            raise YunyingError(
                "importing.ambiguous_columns", path=str(path), field=col.name,
                columns=", ".join(found),
            )
        mapping[col.name] = found[0]
    missing = [col.name for col in c.columns if col.required and col.name not in mapping]
    if missing:
        raise YunyingError(
            "importing.missing_columns", path=str(path), columns=", ".join(missing),
            found=", ".join(columns[:20]) + (" …" if len(columns) > 20 else ""),
        )
    used = set(mapping.values())
    src.mapping = mapping
    src.extras = [col for col in columns if col not in used]
    src.sha256 = file_sha256(path)
    return src


# -- validation SQL ---------------------------------------------------------------------
def _ts_lit(t: datetime) -> str:
    return f"TIMESTAMP '{t.isoformat(sep=' ')}'"


def _typed_sql(
    col: Column, v: str, enums: tuple[str, ...] | None, tz: str, rules: TimeRules | None = None
) -> tuple[str, list[tuple[str, str]]]:
    """(typed expression, [(failure condition, reason code)]) for one contract column."""
    rules = rules or TimeRules()
    checks: list[tuple[str, str]] = []
    if col.required:
        checks.append((f"{v} IS NULL", "missing"))
    if col.type == "string":
        typed = v
        # A NUL byte is never part of a name or an id (it comes from binary junk).
        checks.append((f"contains({v}, chr(0))", "nul_byte"))
        if col.name.endswith("_id"):
            # An id that passed through a float (10.0, as pandas writes it) is the whole
            # number; NaN and infinities are no id at all.
            typed = (
                f"CASE WHEN suffix({v}, '0') AND contains({v}, '.') AND "
                f"regexp_full_match({v}, '[+-]?\\d+\\.0+') THEN split_part({v}, '.', 1) "
                f"ELSE {v} END"
            )
            # Exact spellings (an IN list of constants costs no lower() per row).
            checks.append((f"{v} IN ({_NOT_IDS})", "bad_id"))
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
        if col.nonnegative:
            checks.append((f"{typed} < 0", "negative_amount"))
        return typed, checks
    if col.type == "timestamp":
        typed = _timestamp_sql(v, tz, rules)
        # Only rows that failed to parse pay for the zone check.
        checks.append(
            (f"{typed} IS NULL AND regexp_full_match({v}, '{_DT_RE}{_ABBREV_RE}')",
             "ambiguous_zone")
        )
        checks.append((f"{typed} IS NULL", "bad_timestamp"))
        window = []
        if rules.earliest is not None:
            window.append(f"{typed} < {_ts_lit(rules.earliest)}")
        if rules.latest is not None:
            window.append(f"{typed} > {_ts_lit(rules.latest)}")
        if window:
            checks.append((" OR ".join(window), "time_out_of_range"))
        return typed, checks
    if col.type == "date":
        typed = (
            f"CASE WHEN regexp_full_match({v}, '\\d{{8}}') THEN CAST(try_strptime({v}, '%Y%m%d') "
            f"AS DATE) ELSE TRY_CAST({v} AS DATE) END"
        )
        checks.append(
            (f"NOT regexp_full_match({v}, '\\d{{4}}-\\d\\d-\\d\\d|\\d{{8}}') OR {typed} IS NULL",
             "bad_date")
        )
        if rules.earliest is not None:
            checks.append((f"{typed} < DATE '{rules.earliest.date().isoformat()}'",
                           "time_out_of_range"))
        return typed, checks
    # json: an object (the properties column)
    checks.append((f"NOT json_valid({v}) OR json_type({v}) <> 'OBJECT'", "not_json_object"))
    return v, checks


def _timestamp_sql(v: str, tz: str, rules: TimeRules) -> str:
    """A time value as naive UTC, or NULL; every accepted shape is listed in docs/import.md.

    The usual shape first: strptime must consume the whole value, so what it accepts has
    no zone and is no number; the general CASE then runs only on the rest (coalesce
    evaluates its second argument for those rows only).
    """

    def local(ts: str) -> str:
        # A time without a zone is in the import's zone; UTC needs no (costly ICU) shift.
        return ts if tz == "UTC" else f"CAST(timezone($tz, {ts}) AS TIMESTAMP)"

    dashed = f"regexp_replace({v}, '^(\\d{{4}})/(\\d{{1,2}})/(\\d{{1,2}})', '\\1-\\2-\\3')"
    branches = [
        # YYYYMMDD and YYYYMMDDHHMMSS, as Chinese systems export them (before epochs).
        ("'\\d{8}'", local(f"try_strptime({v}, '%Y%m%d')")),
        ("'\\d{14}'", local(f"try_strptime({v}, '%Y%m%d%H%M%S')")),
    ]
    if rules.excel_dates:
        branches.append((
            "'\\d{1,7}(\\.\\d+)?'",
            local(f"(TIMESTAMP '{_EXCEL_EPOCH}' + to_microseconds(CAST(round("
                  f"TRY_CAST({v} AS DOUBLE) * 86400000000) AS BIGINT)))"),
        ))
    branches += [
        (f"'{_EPOCH_S_RE}'", f"make_timestamp(TRY_CAST({v} AS BIGINT) * 1000000)"),
        (f"'{_EPOCH_MS_RE}'", f"epoch_ms(TRY_CAST({v} AS BIGINT))"),
        (f"'{_DT_RE}'", local(f"TRY_CAST({dashed} AS TIMESTAMP)")),
        (f"'{_DT_RE}({_OFFSET_RE}|{_ZONE_NAME_RE})'",
         f"CAST(TRY_CAST({dashed} AS TIMESTAMPTZ) AS TIMESTAMP)"),
    ]
    for abbr, zone in rules.abbreviations:
        bare = f"regexp_extract({dashed}, '^(.*?)\\s+[A-Za-z]+$', 1)"
        branches.append((
            f"'{_DT_RE}\\s+{abbr}'",
            f"CAST(timezone({_lit(zone)}, TRY_CAST({bare} AS TIMESTAMP)) AS TIMESTAMP)",
        ))
    general = "CASE " + " ".join(
        f"WHEN regexp_full_match({v}, {rx}) THEN {expr}" for rx, expr in branches
    ) + " END"
    return f"coalesce({local(f'try_strptime({v}, {_NAIVE_FORMATS})')}, {general})"


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


def _validated_select(
    src: _Source, c: Contract, base: str, tz: str, rules: TimeRules | None = None
) -> str:
    """SELECT <typed contract columns>, _field, _reason, _raw FROM base, in one pass.

    Three layers so that each value is trimmed once and each type is parsed once:
    L1 the trimmed text of every mapped column, L2 its typed value, L3 the first failing
    check (field and reason code), the properties object and, for bad rows only, the raw
    row as JSON (kept to show and export it). The base rows name the file's columns
    positionally (``_yy_c<i>``); the file's own names appear only as string literals.
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
                text = _trimmed(src.col(name))
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
        expr, checks = _typed_sql(col, v, c.enums.get(col.name), tz, rules)
        if jsonl and col.type == "string":
            # An array or object given for a name or an id is not that value.
            path = _json_path(src.mapping[col.name])
            checks.insert(1, (f"json_type(j, {path}) IN ('ARRAY', 'OBJECT')", "not_scalar"))
        l2.append(f"{expr} AS {tv}")
        typed[col.name] = tv
        for cond, code in checks:
            if expr != v:
                cond = cond.replace(expr, tv)
            guard = cond if code == "missing" else f"{v} IS NOT NULL AND ({cond})"
            cases.append(f"WHEN {guard} THEN [{_lit(col.name)}, {_lit(code)}]")
    bad = "CASE " + " ".join(cases) + " END" if cases else "NULL::VARCHAR[]"
    if src.extras:
        typed["properties"] = _properties_sql(src, typed.get("properties", "NULL"))
    if jsonl:
        raw = "line"
    else:
        pairs = ", ".join(f"{_lit(x)}, {i}" for x, i in zip(src.columns, src.internal, strict=True))
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
        refs = [src.col(x) for x in src.extras]
        # Parquet's nested values (struct, list, map) arrive as JSON text: kept as JSON.
        nested = {src.col(x) for x in src.extras if src.is_json(x)}
        vals = [
            f"json(nullif({r}, ''))" if r in nested else f"to_json(nullif({r}, ''))" for r in refs
        ]
        all_set = " AND ".join(f"{r} <> ''" for r in refs)
        # Every value set: the object by concatenation, the same text as json_object
        # (to_json escapes keys and values alike) at half its cost.
        members = ", ',', ".join(
            f"to_json({_lit(x)}::VARCHAR), ':', " + (r if r in nested else f"to_json({r})")
            for x, r in zip(src.extras, refs, strict=True)
        )
        fast = f"concat('{{', {members}, '}}')"
    entries = ", ".join(
        f"struct_pack(k := {_lit(x)}, v := {v})" for x, v in zip(src.extras, vals, strict=True)
    )
    slow = (
        f"to_json(map_from_entries(list_filter([{entries}], lambda _yy_e: _yy_e.v IS NOT NULL)))"
    )
    extra = f"nullif((CASE WHEN {all_set} THEN {fast} ELSE {slow} END)::VARCHAR, '{{}}')"
    if props == "NULL":
        return extra
    return (
        f"CASE WHEN {extra} IS NULL THEN {props} WHEN {props} IS NULL THEN {extra} "
        f"ELSE json_merge_patch({props}, {extra})::VARCHAR END"
    )


def _is_nested(type_: str) -> bool:
    return type_.startswith(("STRUCT", "MAP", "UNION")) or type_.endswith("]")


def _parquet_value(ref: str, type_: str) -> str:
    """A Parquet value as text: bytes as base64, nested values (struct, list, map) as JSON.

    Bytes inside a struct or list keep DuckDB's JSON form of a BLOB (``"\\x00\\xFF"``).
    """
    col = _ident(ref)
    if type_ == "BLOB":
        return f"base64({col})"
    if _is_nested(type_):
        return f"to_json({col})::VARCHAR"
    return f"CAST({col} AS VARCHAR)"


def _base_sql(src: _Source, rejects: str) -> str:
    """The file as text rows in file order, columns named positionally (structural errors
    go to rejects).

    No row numbers here: a window over the whole file would cost a third of the read.
    The staging table keeps file order (insertion order is preserved), so its ``rowid``
    + 1 is the row's ordinal k. CSV is read with the dialect chosen in ``textfiles``
    (RFC 4180 quoting unless the user named another), never sniffed per file by DuckDB:
    one broken quote must not turn quoting off for the whole file.
    """
    if src.format == "csv":
        columns = "{" + ", ".join(f"{_lit(i)}: 'VARCHAR'" for i in src.internal) + "}"
        return (
            "(SELECT * FROM read_csv($path, auto_detect = false, header = true, "
            f"delim = $delim, quote = $quote, escape = $quote, columns = {columns}, "
            f"store_rejects = true, rejects_table = '{rejects}', "
            f"rejects_scan = '{rejects}_scan', max_line_size = 10000000))"
        )
    if src.format == "parquet":
        casts = ", ".join(
            f"{_parquet_value(r, t)} AS {i}" for r, t, i in zip(src.refs, src.types, src.internal, strict=True)
        )
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


def time_rules(settings: Any, excel_dates: bool = False) -> TimeRules:
    """The accepted time window and zone abbreviations, from the project settings."""
    import re
    from datetime import timedelta

    from yunying import clock

    imp = settings.imports
    abbrevs = []
    for abbr, zone in sorted(imp.zone_abbreviations.items()):
        if not re.fullmatch(r"[A-Za-z]{2,6}", abbr):
            raise YunyingError("importing.bad_abbreviation", abbreviation=abbr)
        abbrevs.append((abbr, check_timezone(zone)))
    return TimeRules(
        earliest=datetime.combine(settings.event_time_floor, datetime.min.time()),
        latest=clock.now() + timedelta(seconds=settings.event_future_skew),
        excel_dates=excel_dates,
        abbreviations=tuple(abbrevs),
    )


@dataclass
class _Staged:
    """A file validated and staged (temp tables ``_yy_stage_<n>``, …), not yet loaded."""

    src: _Source
    n: int
    import_id: str
    staged: int
    rejected: int
    started: datetime


def run_import(
    wh: Warehouse, req: ImportRequest, progress: Progress | None = None
) -> ImportResult:
    """Import files into a contract table, all or nothing.

    Every file is read, validated and staged before any row is loaded: a file that cannot
    be read stops the import with nothing loaded and nothing logged. Then each file is
    loaded in crash-safe chunks; the import log is updated after every chunk, and an entry
    left ``running`` by a killed process reads as ``interrupted`` (run the same import
    again: it loads exactly the missing rows).
    """
    if wh.engine not in ("duckdb", "spark"):
        raise YunyingError("importing.engine", engine=wh.engine)
    c = contract(req.table)
    if not req.paths:
        raise YunyingError("importing.no_paths")
    tz = check_timezone(req.timezone or wh.settings.timezone)
    settings = wh.settings
    rules = time_rules(settings, req.excel_dates)
    root = settings.data_dir / "import-tmp"
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale(root)
    tmp_dir = root / str(os.getpid())
    tmp_dir.mkdir(exist_ok=True)
    chunk = _aligned_chunk(settings.imports.chunk_rows)
    q_path = qstore.quarantine_path(settings)
    staged: list[_Staged] = []
    reports: list[FileReport] = []
    try:
        with _work_connection(wh, tmp_dir) as con:
            con.execute(f"ATTACH {_lit(str(q_path))} AS yyq")
            try:
                qstore.ensure_schema(con, "yyq")
                qstore.mark_interrupted(con, "yyq")
                if wh.engine == "duckdb":
                    _settle_interrupted(con)
                for n, p in enumerate(req.paths):
                    path = Path(p)
                    src = prepare_source(
                        con, c, path, detect_format(path, req.format), req.mapping, req,
                        tmp_dir, f"f{n}",
                    )
                    staged.append(_stage_file(con, c, src, tz, rules, n, tmp_dir, progress))
                for st in staged:
                    con.execute(
                        "INSERT INTO yyq.imports (import_id, tbl, file, sha256, format, "
                        "started_at, status, columns, pid, encoding, rows_read, loaded, "
                        "duplicate, quarantined) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, "
                        "?, 0, 0, 0)",
                        [st.import_id, c.table, str(st.src.path), st.src.sha256, st.src.format,
                         st.started, json.dumps(st.src.columns), os.getpid(),
                         st.src.encoding, st.staged + st.rejected],
                    )
                for i, st in enumerate(staged):
                    try:
                        reports.append(_load_file(wh, con, c, st, chunk, progress))
                    except BaseException as e:
                        for later in staged[i:]:
                            con.execute(
                                "UPDATE yyq.imports SET status = 'failed', finished_at = ? "
                                "WHERE import_id = ?", [_now(), later.import_id],
                            )
                        if isinstance(e, duckdb.Error):
                            raise YunyingError(
                                "importing.load_failed", path=str(st.src.path),
                                loaded=sum(r.loaded for r in reports),
                            ) from e
                        raise
            finally:
                for st in staged:
                    _drop_stage(con, st.n)
                con.execute("DETACH yyq")
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)
    return ImportResult(table=c.table, engine=wh.engine, timezone=tz, files=reports)


def _stage_file(
    con: duckdb.DuckDBPyConnection, c: Contract, src: _Source, tz: str, rules: TimeRules,
    n: int, tmp_dir: Path, progress: Progress | None,
) -> _Staged:
    """Pass 1: read once, validate every row in SQL, stage on disk (``_yy_stage_<n>``).

    A CSV quote that does not close on its line swallows the lines after it; that line
    alone is then set aside (overwritten, in a copy, by a marker of the same length, so
    every later byte and line keeps its place) and the file is read again, up to 100 times.
    """
    from yunying.warehouse import textfiles

    import_id = uuid.uuid4().hex[:12]
    name = str(src.path)
    rejects = f"yy_rej_{import_id}"
    started = _now()
    if progress:
        progress("read", name, 0, 0)
    _drop_stage(con, n)
    sql = f"CREATE TEMP TABLE _yy_stage_{n} AS {_validated_select(src, c, _base_sql(src, rejects), tz, rules)}"
    params: dict[str, Any] = {"path": str(src.read_path or src.path)}
    if "$tz" in sql:
        params["tz"] = tz
    if src.format == "jsonl":
        params["delim"] = _JSONL_DELIM
    if src.format == "csv":
        params["delim"] = src.delimiter
        params["quote"] = src.quote
    repaired: dict[int, str] = {}
    tf = textfiles.TextFile(src.path, src.read_path or src.path, src.encoding)
    for _attempt in range(101):
        try:
            con.execute(sql, params)
        except duckdb.Error as e:
            raise YunyingError(
                "importing.unreadable", path=name, format=src.format,
                reason=str(e).splitlines()[0],
            ) from e
        if src.format != "csv" or not src.quote or _attempt == 100:
            break
        open_quote = _unclosed_quote(con, rejects, tf.read_path)
        if open_quote is None:
            break
        line, offset = open_quote
        repaired[line] = textfiles.text_of(textfiles.blank_line(tf, offset, tmp_dir, f"f{n}"))
        params["path"] = str(tf.read_path)
        src.read_path = tf.read_path
        for stmt in (f"DROP TABLE IF EXISTS {rejects}", f"DROP TABLE IF EXISTS {rejects}_scan",
                     f"DROP TABLE IF EXISTS temp._yy_stage_{n}"):
            con.execute(stmt)
    staged = int(con.execute(f"SELECT count(*) FROM _yy_stage_{n}").fetchall()[0][0])
    rejected = _stage_rejects(con, src, rejects, n, repaired)
    for stmt in (f"DROP TABLE IF EXISTS {rejects}", f"DROP TABLE IF EXISTS {rejects}_scan"):
        try:
            con.execute(stmt)
        except duckdb.Error:
            pass
    return _Staged(src, n, import_id, staged, rejected, started)


# Key prefix in the warehouse's _yunying_meta: "import:<id>" → "loaded,duplicate" so far.
_PROGRESS = "import:"


def committed_counts(con: duckdb.DuckDBPyConnection, schema: str = "main") -> dict[str, tuple[int, int]]:
    """(loaded, duplicate) committed by each import that has not finished, from the
    warehouse (written in the same transactions as its rows)."""
    rows = con.execute(
        f"SELECT key, value FROM {schema}._yunying_meta WHERE starts_with(key, ?)", [_PROGRESS]
    ).fetchall()
    out: dict[str, tuple[int, int]] = {}
    for key, value in rows:
        loaded, _, dup = str(value).partition(",")
        out[key[len(_PROGRESS):]] = (int(loaded or 0), int(dup or 0))
    return out


def _settle_interrupted(con: duckdb.DuckDBPyConnection) -> None:
    """Give interrupted runs in the log the exact counts they committed, then drop the
    markers (one transaction per database: the log first, so a kill in between loses
    nothing)."""
    done = []
    for import_id, (loaded, dup) in committed_counts(con).items():
        state = con.execute(
            "SELECT status FROM yyq.imports WHERE import_id = ?", [import_id]
        ).fetchall()
        if state and state[0][0] == "running":
            continue  # another process is still loading it
        if state:
            con.execute(
                "UPDATE yyq.imports SET loaded = ?, duplicate = ? WHERE import_id = ?",
                [loaded, dup, import_id],
            )
        done.append(_PROGRESS + import_id)
    for key in done:
        con.execute("DELETE FROM _yunying_meta WHERE key = ?", [key])


def _unclosed_quote(
    con: duckdb.DuckDBPyConnection, rejects: str, path: Path
) -> tuple[int, int] | None:
    """(line, byte offset) of the first rejected record that a quote error stretched over
    several physical lines, if any: its first line opened a quote that never closed there.

    The quote then paired with a later one (or ran to the end of the file) and swallowed
    good lines; setting that first line aside lets them be read again.
    """
    if not _temp_exists(con, rejects):
        return None
    found = con.execute(
        f"SELECT line, line_byte_position, csv_line FROM {rejects} "
        "WHERE error_type::VARCHAR IN ('UNQUOTED VALUE', 'UNTERMINATED QUOTES') "
        "AND contains(rtrim(csv_line, chr(13) || chr(10)), chr(10)) "
        "ORDER BY line LIMIT 1"
    ).fetchall()
    for line, offset, _text in found:
        return int(line), int(offset)
    return None


def _temp_exists(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND temporary", [name]
    ).fetchall()[0][0])


def _load_file(
    wh: Warehouse, con: duckdb.DuckDBPyConnection, c: Contract, st: _Staged, chunk: int,
    progress: Progress | None,
) -> FileReport:
    """Pass 2: quarantine the structural rejects, then move the staged rows in chunks."""
    src, n, import_id = st.src, st.n, st.import_id
    name = str(src.path)
    total = st.staged + st.rejected
    loaded = duplicate = 0
    # Structurally broken lines (no columns to validate) go straight to quarantine.
    if st.rejected:
        con.execute(
            "INSERT INTO yyq.rows SELECT ?, ?, line, ?, ?, field, reason, detail, raw, raw_bytes "
            f"FROM _yy_rej_{n} ON CONFLICT DO NOTHING",
            [c.table, src.sha256, import_id, name],
        )
    if progress:
        progress("load", name, 0, st.staged)
    skip = _mark_duplicates(wh, con, c, n)
    lo = 1
    while lo <= st.staged:
        hi = lo + chunk - 1
        n_loaded, n_dup = _move_chunk(
            wh, con, c, src, import_id, lo, hi, st.rejected > 0, skip, n, (loaded, duplicate)
        )
        loaded += n_loaded
        duplicate += n_dup
        # The log follows every committed chunk: a killed run shows what it stored.
        con.execute(
            "UPDATE yyq.imports SET loaded = ?, duplicate = ? WHERE import_id = ?",
            [loaded, duplicate, import_id],
        )
        if progress:
            progress("load", name, min(hi, st.staged), st.staged)
        lo = hi + 1
    quarantined = total - loaded - duplicate
    con.execute(
        "UPDATE yyq.imports SET status = 'done', finished_at = ?, rows_read = ?, loaded = ?, "
        "duplicate = ?, quarantined = ? WHERE import_id = ?",
        [_now(), total, loaded, duplicate, quarantined, import_id],
    )
    if wh.engine == "duckdb":  # the log now holds the truth; the marker is done
        con.execute("DELETE FROM _yunying_meta WHERE key = ?", [_PROGRESS + import_id])
    _drop_stage(con, n)
    return FileReport(
        import_id=import_id, file=name, format=src.format, sha256=src.sha256,
        rows_read=total, loaded=loaded, duplicate=duplicate, quarantined=quarantined,
    )


def _drop_stage(con: duckdb.DuckDBPyConnection, n: int) -> None:
    for name in ("_yy_stage", "_yy_rej", "_yy_rj", "_yy_skip"):
        con.execute(f"DROP TABLE IF EXISTS temp.{name}_{n}")


def _now() -> datetime:
    from yunying import clock

    return clock.now()


def _stage_rejects(
    con: duckdb.DuckDBPyConnection, src: _Source, rejects: str, n: int,
    repaired: dict[int, str] | None = None,
) -> int:
    """Lines the reader could not split into columns, one row each, with a line map.

    ``_yy_rj_<n>`` lets a staged row's ordinal k be turned back into its line number: the
    i-th rejected data line e_i shifts every later row by one, so the line of row k is
    k + header + #{i : e_i - i < k}. A line that is not UTF-8 keeps its original bytes
    (``raw_bytes``), so that ``quarantine export`` writes them back unchanged.
    """
    from yunying.warehouse import textfiles

    header = 1 if src.format == "csv" else 0
    con.execute(
        f"CREATE TEMP TABLE _yy_rej_{n} (line BIGINT, field VARCHAR, reason VARCHAR, "
        "detail VARCHAR, raw VARCHAR, raw_bytes BLOB, pos BIGINT)"
    )
    con.execute(f"CREATE TEMP TABLE _yy_rj_{n} (g BIGINT, cnt BIGINT)")
    if src.format == "parquet" or not _temp_exists(con, rejects):
        return 0
    cases = " ".join(f"WHEN {_lit(k)} THEN {_lit(v)}" for k, v in _REJECT_CODES.items())
    con.execute(
        f"INSERT INTO _yy_rej_{n} SELECT line, coalesce(arg_min(column_name, column_idx), ''), "
        f"CASE arg_min(error_type::VARCHAR, column_idx) {cases} ELSE 'malformed' END, "
        f"arg_min(error_message, column_idx), any_value(csv_line), NULL, "
        f"min(line_byte_position) FROM {rejects} GROUP BY line"
    )
    # The reader names columns by their internal name; the user knows them by theirs.
    names = dict(zip(src.internal, src.columns, strict=False))
    for (internal,) in con.execute(f"SELECT DISTINCT field FROM _yy_rej_{n}").fetchall():
        if internal in names:
            con.execute(
                f"UPDATE _yy_rej_{n} SET field = ? WHERE field = ?", [names[internal], internal]
            )
    for line, text in (repaired or {}).items():
        con.execute(
            f"UPDATE _yy_rej_{n} SET reason = 'csv_quote', field = '', detail = NULL, raw = ? "
            "WHERE line = ?",
            [text, line],
        )
    bad = con.execute(
        f"SELECT line, pos FROM _yy_rej_{n} WHERE reason = 'invalid_encoding' LIMIT 100000"
    ).fetchall()
    path = src.read_path or src.path
    for line, pos in bad:
        if pos is None:
            continue
        con.execute(
            f"UPDATE _yy_rej_{n} SET raw_bytes = ? WHERE line = ?",
            [textfiles.line_at(path, int(pos)), line],
        )
    con.execute(
        f"INSERT INTO _yy_rj_{n} SELECT g, max(i) FROM (SELECT line - {header} - "
        "row_number() OVER (ORDER BY line) AS g, row_number() OVER (ORDER BY line) AS i "
        f"FROM _yy_rej_{n}) GROUP BY g"
    )
    return int(con.execute(f"SELECT count(*) FROM _yy_rej_{n}").fetchall()[0][0])


def _mark_duplicates(
    wh: Warehouse, con: duckdb.DuckDBPyConnection, c: Contract, n: int
) -> bool:
    """Collect in ``_yy_skip_<n>`` the staged rows that must not load; True when there are any.

    Done once per file, not per chunk: a later occurrence of a key within the file, and
    a row whose key is already stored. A crash between chunks is still safe, because a
    new run finds the rows that the committed chunks stored. Each check is skipped when it
    cannot match: a distinct count tells whether the file repeats any key, and an empty
    table holds none.
    """
    key = _ident(c.key)
    stage, skip = f"_yy_stage_{n}", f"_yy_skip_{n}"
    con.execute(f"CREATE TEMP TABLE {skip} (r BIGINT)")
    # Distinct hashes are cheaper than distinct strings, and as many hashes as rows
    # proves there is no repeat; fewer (a repeat or a collision) takes the exact query.
    valid, hashes = con.execute(
        f"SELECT count(*), count(DISTINCT hash({key})) FROM {stage} WHERE _reason IS NULL"
    ).fetchall()[0]
    if hashes < valid:
        # Every occurrence of a repeated key after its first (file order = rowid order).
        con.execute(
            f"INSERT INTO {skip} SELECT s.rowid FROM {stage} s JOIN (SELECT {key}, "
            f"min(rowid) AS r0 FROM {stage} WHERE _reason IS NULL GROUP BY {key} "
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
            f"INSERT INTO {skip} SELECT s.rowid FROM {stage} s SEMI JOIN {stored} t "
            f"ON t.{key} = s.{key} WHERE s._reason IS NULL",
            params,
        )
    return bool(con.execute(f"SELECT EXISTS (SELECT 1 FROM {skip})").fetchall()[0][0])


def _move_chunk(
    wh: Warehouse, con: duckdb.DuckDBPyConnection, c: Contract, src: _Source,
    import_id: str, lo: int, hi: int, has_rejects: bool, skip: bool, n: int = 0,
    before: tuple[int, int] = (0, 0),
) -> tuple[int, int]:
    """Quarantine the chunk's bad rows, then load its valid rows not marked to skip:
    (loaded, duplicate).

    Two transactions (DuckDB writes one database per transaction), both idempotent: the
    quarantine by (table, file checksum, line), the load by key (see ``_mark_duplicates``).
    Rows are addressed by staging ``rowid`` (k - 1), which DuckDB prunes without a scan.
    On DuckDB the run's totals so far (``before`` plus this chunk) are written into the
    warehouse's ``_yunying_meta`` in the same transaction as the rows, so the log of a
    killed run can be set to exactly what it committed (``committed_counts``).
    """
    stage = f"_yy_stage_{n}"
    header = 1 if src.format == "csv" else 0
    k = "(v.rowid + 1)"
    if has_rejects:
        line = f"{k} + {header} + coalesce(rj.cnt, 0)"
        join = f"ASOF LEFT JOIN _yy_rj_{n} rj ON {k} > rj.g"
    else:
        line, join = f"{k} + {header}", ""
    con.execute(
        f"INSERT INTO yyq.rows SELECT ?, ?, {line}, ?, ?, v._field, v._reason, NULL, v._raw, "
        f"NULL FROM {stage} v {join} WHERE v.rowid BETWEEN ? AND ? AND v._reason IS NOT NULL "
        "ON CONFLICT DO NOTHING",
        [c.table, src.sha256, import_id, str(src.path), lo - 1, hi - 1],
    )
    cols = ", ".join(f"v.{_ident(name)}" for name in c.names)
    cand = (
        f"SELECT {cols} FROM {stage} v "
        + (f"ANTI JOIN _yy_skip_{n} x ON x.r = v.rowid " if skip else "")
        + "WHERE v.rowid BETWEEN $lo AND $hi AND v._reason IS NULL"
    )
    bounds = {"lo": lo - 1, "hi": hi - 1}
    valid = int(
        con.execute(
            f"SELECT count(*) FROM {stage} WHERE rowid BETWEEN ? AND ? AND _reason IS NULL",
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
            con.execute(
                "INSERT INTO _yunying_meta VALUES (?, ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value",
                [_PROGRESS + import_id,
                 f"{before[0] + loaded},{before[1] + valid - loaded}"],
            )
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
