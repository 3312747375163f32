"""``yunying import`` against hostile but realistic files (issues 12 and 13), end to end.

Every test drives the real ``yunying`` app (``yunying.cli.app`` through ``run_app``, the
same error handling as the installed command), in-process for speed; one runs the
command as a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.support.cli import run_in_process
from yunying import clock

# Columns named like the identifiers the generated SQL uses (issue 12).
HOSTILE = ["e", "E", "v", "k", "x", "_field", "_reason", "_raw", "_yy_v_event", "_yy_bad", "_yy_t_ts"]
NOW = datetime(2026, 12, 8, 1, 0, 0)


def yy(*args: str, lang: str = "en") -> subprocess.CompletedProcess[str]:
    """Run ``yunying ARGS`` in this process, exactly as the installed command does."""
    from yunying.cli import app

    return run_in_process(app, *args, lang=lang)


def yy_process(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "YUNYING_DEBUG"}
    env["YUNYING_LANGUAGE"] = "en"
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-c", "from yunying.cli import main; main()", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )


def summary(r: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert r.returncode == 0, r.stdout + r.stderr
    return list(json.loads(r.stdout)["files"])


def warehouse_rows(project: Path, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(project / ".yunying" / "warehouse.duckdb"), read_only=True)
    try:
        return list(con.execute(sql, params or []).fetchall())
    finally:
        con.close()


def quarantine_rows(project: Path) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(project / ".yunying" / "quarantine.duckdb"), read_only=True)
    try:
        return list(con.execute("SELECT line, field, reason FROM rows ORDER BY line").fetchall())
    finally:
        con.close()


def project_dir(tmp_path: Path) -> Path:
    p = tmp_path / "proj"
    p.mkdir()
    (p / "yunying.toml").write_text('name = "t"\n', encoding="utf-8")
    return p


def import_json(project: Path, table: str, *paths: Path, extra: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    return summary(yy("import", table, *map(str, paths), "-p", str(project), "-o", "json", *extra))


# -- A: column names that collide with the generated SQL ----------------------------------
def _hostile_rows() -> list[dict[str, str]]:
    base = [
        {"event_id": "e1", "event": "view", "user_id": "u1", "ts": "2024-01-01 10:00:00"},
        {"event_id": "e2", "event": "buy", "user_id": "u2", "ts": "2024-01-02 10:00:00"},
        {"event_id": "e3", "event": "buy", "user_id": "u3", "ts": "not a time"},
    ]
    for i, r in enumerate(base):
        for j, name in enumerate(HOSTILE):
            r[name] = f"{name}-{i}-{j}"
    return base


@pytest.mark.parametrize("fmt", ["csv", "parquet", "jsonl"])
def test_columns_named_like_the_sql_internals_load_into_properties(
    tmp_path: Path, fmt: str
) -> None:
    project = project_dir(tmp_path)
    data = _hostile_rows()
    cols = list(data[0])
    path = tmp_path / f"events.{fmt}"
    if fmt == "csv":
        path.write_text(
            "\n".join([",".join(cols)] + [",".join(r[c] for c in cols) for r in data]) + "\n",
            encoding="utf-8",
        )
    elif fmt == "parquet":
        pq.write_table(pa.table({c: [r[c] for r in data] for c in cols}), path)
    else:
        path.write_text("".join(json.dumps(r) + "\n" for r in data), encoding="utf-8")
    with clock.frozen(NOW):
        f = import_json(project, "events", path)[0]
    assert (f["rows_read"], f["loaded"], f["quarantined"]) == (3, 2, 1)
    got = warehouse_rows(project, "SELECT event_id, event, ts, properties FROM events ORDER BY 1")
    assert [g[:2] for g in got] == [("e1", "view"), ("e2", "buy")]  # events kept
    assert got[0][2] == datetime(2024, 1, 1, 2, 0)  # ts not replaced by _yy_t_ts
    for i, g in enumerate(got):
        props = json.loads(g[3])
        assert props == {name: f"{name}-{i}-{j}" for j, name in enumerate(HOSTILE)}
    # Only the bad row is quarantined (a column named _yy_bad sends no good row there).
    assert quarantine_rows(project) == [(4 if fmt == "csv" else 3, "ts", "bad_timestamp")]


def test_a_column_named_e_imports_as_a_program(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "e.csv"
    path.write_text(
        "event_id,event,user_id,ts,e,E\ne1,view,u1,2024-01-01 10:00:00,1,2\n", encoding="utf-8"
    )
    r = yy_process("import", "events", str(path), "-p", str(project), "-o", "json")
    assert r.returncode == 0, r.stderr
    assert "Binder" not in r.stdout + r.stderr
    assert json.loads(r.stdout)["files"][0]["loaded"] == 1
    props = warehouse_rows(project, "SELECT properties FROM events")[0][0]
    assert json.loads(props) == {"e": "1", "E": "2"}


# -- B: the time window, any stored value, deleting rows ----------------------------------
WINDOW_FILE = (
    "event_id,event,user_id,ts\n"
    "e1,view,u1,0001-01-01 00:00:00\n"  # 2: year 1 in Asia/Shanghai = year 0 in UTC
    "e2,view,u2,9999-12-31T23:00:00Z\n"  # 3
    "e3,view,u3,2099-01-01 00:00:00\n"  # 4
    "e4,view,u4,1999-12-31T23:00:00Z\n"  # 5: before the floor
    "e5,view,u5,2026-12-08T01:05:00Z\n"  # 6: 5 minutes ahead: clock skew, accepted
    "e6,view,u6,2026-12-08T02:20:00Z\n"  # 7: 80 minutes ahead (past the default hour of skew)
    "e7,view,u7,2026-12-07 09:00:00\n"  # 8
)


def test_times_outside_the_window_are_quarantined_and_the_window_is_a_setting(
    tmp_path: Path,
) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "w.csv"
    path.write_text(WINDOW_FILE, encoding="utf-8")
    with clock.frozen(NOW):
        f = import_json(project, "events", path)[0]
    assert (f["loaded"], f["quarantined"]) == (2, 5)
    assert quarantine_rows(project) == [
        (n, "ts", "time_out_of_range") for n in (2, 3, 4, 5, 7)
    ]
    assert warehouse_rows(project, "SELECT event_id FROM events ORDER BY 1") == [("e5",), ("e7",)]
    r = yy("quarantine", "show", f["import_id"], "-p", str(project), "-f", "json")
    assert "outside the accepted time window" in json.loads(r.stdout)["rows"][0]["message"]
    # Both bounds are project settings.
    (project / "yunying.toml").write_text(
        'name = "t"\nevent_time_floor = 1990-01-01\nevent_future_skew = 10800\n',
        encoding="utf-8",
    )
    with clock.frozen(NOW):
        f = import_json(project, "events", path)[0]
    assert (f["loaded"], f["duplicate"], f["quarantined"]) == (2, 2, 3)
    assert [r[0] for r in warehouse_rows(project, "SELECT event_id FROM events ORDER BY 1")] == [
        "e4", "e5", "e6", "e7",
    ]


def _seed_extremes(project: Path) -> None:
    """A normal day of data, then extreme values written straight into the warehouse."""
    path = tmp = project / "seed.csv"
    tmp.write_text(
        "event_id,event,user_id,ts\ne1,view,u1,2026-12-01 10:00:00\ne2,view,u2,2026-12-01 11:00:00\n",
        encoding="utf-8",
    )
    with clock.frozen(NOW):
        import_json(project, "events", path)
    users = project / "users.csv"
    users.write_text("user_id,first_seen\nu1,2026-11-01 10:00:00\n", encoding="utf-8")
    subs = project / "subs.csv"
    subs.write_text(
        "subscription_id,account_id,plan,mrr,start_date,end_date\ns1,a1,pro,10,2026-01-01,\n",
        encoding="utf-8",
    )
    with clock.frozen(NOW):
        import_json(project, "users", users)
        import_json(project, "subscriptions", subs)
    con = duckdb.connect(str(project / ".yunying" / "warehouse.duckdb"))
    try:
        con.execute(
            "INSERT INTO events VALUES "
            "('x0', 'view', 'u9', TIMESTAMP '0001-01-01 00:00:00' - INTERVAL 8 HOUR, NULL, NULL, NULL), "
            "('x9', 'view', 'u9', TIMESTAMP '9999-12-31 23:00:00', NULL, NULL, NULL), "
            "('x2', 'view', 'u9', TIMESTAMP '2099-01-01 00:00:00', NULL, NULL, NULL)"
        )
        con.execute("INSERT INTO users VALUES ('u0', TIMESTAMP '0001-01-01 00:00:00' - INTERVAL 1 DAY, NULL, NULL)")
        con.execute(
            "INSERT INTO subscriptions VALUES ('s0', 'a0', 'x', 1, DATE '0001-01-01', DATE '9999-12-31', NULL)"
        )
    finally:
        con.close()


def test_status_and_overview_answer_with_any_stored_value(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    _seed_extremes(project)
    with clock.frozen(NOW):
        r = yy("status", "-p", str(project), "-f", "json")
        assert r.returncode == 0, r.stdout + r.stderr
        tables = {t["table"]: t for t in json.loads(r.stdout)["tables"]}
        assert tables["events"]["rows"] == 5
        assert tables["events"]["first"] is None  # year 0: no datetime holds it
        assert tables["events"]["last"] == "9999-12-31T23:00:00"
        assert tables["events"]["outside_window"] == 3
        assert tables["users"]["first"] is None and tables["users"]["outside_window"] == 1
        assert tables["subscriptions"]["first"] == "0001-01-01T00:00:00"
        assert yy("status", "-p", str(project)).returncode == 0  # the table too
        r = yy("overview", "-p", str(project), "-f", "json")
        assert r.returncode == 0, r.stdout + r.stderr
        head = json.loads(r.stdout)["headline"]
        # "As of" is the last real day, not 2099 or 9999, and never after today.
        assert head["as_of"] == "2026-12-01"
        assert (head["dau"], head["mau"]) == (2, 2)
        assert yy("overview", "-p", str(project)).returncode == 0
        r = yy("overview", "-p", str(project), "--as-of", "2099-01-01", "-f", "json")
        assert json.loads(r.stdout)["headline"]["as_of"] == "2026-12-08"


def test_as_of_never_passes_today(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "e.csv"
    path.write_text("event_id,event,user_id,ts\ne1,view,u1,2026-12-07 10:00:00\n", encoding="utf-8")
    with clock.frozen(NOW):
        import_json(project, "events", path)
    # Seen from a clock set earlier than the data (a wrong server clock, a test):
    with clock.frozen(datetime(2026, 6, 1)):
        r = yy("overview", "-p", str(project), "-f", "json")
    assert json.loads(r.stdout)["headline"]["as_of"] is None or (
        json.loads(r.stdout)["headline"]["as_of"] <= "2026-06-01"
    )


def _audit(project: Path) -> list[tuple[str, str, str, str]]:
    import sqlite3

    con = sqlite3.connect(project / ".yunying" / "app.db")
    try:
        return list(con.execute("SELECT actor, action, target, detail FROM web_audit ORDER BY id"))
    finally:
        con.close()


def test_an_admin_deletes_rows_by_key_filter_or_window_with_an_audit_entry(
    tmp_path: Path,
) -> None:
    project = project_dir(tmp_path)
    _seed_extremes(project)
    p = str(project)
    with clock.frozen(NOW):
        r = yy("data", "delete", "events", "--outside-window", "-p", p)
        assert r.returncode == 0 and "3 rows of events match; nothing was deleted" in r.stdout
        r = yy("data", "delete", "events", "--where", "ts>=2099-01-01", "--yes", "-p", p, "-f", "json")
        assert r.returncode == 0, r.stderr
        assert json.loads(r.stdout)["deleted"] == 2
        r = yy("data", "delete", "events", "--key", "x0", "--yes", "-p", p)
        assert r.returncode == 0 and "Deleted 1 rows of events" in r.stdout
        r = yy("data", "delete", "users", "--outside-window", "--yes", "-p", p, "-f", "json")
        assert json.loads(r.stdout)["deleted"] == 1
        assert warehouse_rows(project, "SELECT event_id FROM events ORDER BY 1") == [("e1",), ("e2",)]
        st = json.loads(yy("status", "-p", p, "-f", "json").stdout)
        assert all(t["outside_window"] == 0 for t in st["tables"] if t["table"] != "subscriptions")
        # Mistakes are told plainly, never an engine error.
        for args, text in [
            (["--where", "ts"], "Cannot read the filter"),
            (["--where", "ts>>2"], "not a valid value for column ts"),
            (["--where", "nosuch=1"], "has no column 'nosuch'"),
            (["--where", "ts>=yesterday"], "not a valid value for column ts"),
            ([], "Say which rows to delete"),
        ]:
            r = yy("data", "delete", "events", *args, "--yes", "-p", p)
            assert r.returncode == 2 and text in r.stderr, (args, r.stderr)
        for value in ("nan", "1e40", "x"):
            r = yy("data", "delete", "orders", "--where", f"amount>{value}", "--yes", "-p", p)
            assert r.returncode == 2 and "not a valid value for column amount" in r.stderr
    audit = _audit(project)
    assert [(a[1], a[2]) for a in audit] == [
        ("data.delete", "events"), ("data.delete", "events"), ("data.delete", "users"),
    ]
    assert audit[0][0].startswith("cli:") and "deleted=2; ts>=2099-01-01" in audit[0][3]


# -- C: several files, all or nothing --------------------------------------------------
def _corrupt_parquet(path: Path) -> Path:
    """A Parquet file whose footer (schema) reads but whose data pages are garbage."""
    import struct

    n = 5000
    pq.write_table(
        pa.table({"event_id": [f"p{i}" for i in range(n)], "event": ["v"] * n,
                  "user_id": [f"u{i}" for i in range(n)], "ts": ["2024-01-01 10:00:00"] * n}),
        path,
    )
    b = bytearray(path.read_bytes())
    footer = struct.unpack("<i", bytes(b[-8:-4]))[0]
    b[4 : len(b) - footer - 8] = b"\x5a" * (len(b) - footer - 12)
    path.write_bytes(bytes(b))
    return path


def test_a_multi_file_import_loads_every_file_or_none(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    good = tmp_path / "good.csv"
    good.write_text("event_id,event,user_id,ts\ng1,view,u1,2024-01-01 10:00:00\n", encoding="utf-8")
    bad = _corrupt_parquet(tmp_path / "bad.parquet")
    with clock.frozen(NOW):
        r = yy("import", "events", str(good), str(bad), "-p", str(project))
    assert r.returncode == 2
    said = "".join(r.stderr.split())  # the console wraps long paths at any character
    assert "bad.parquet" in said and "Nothingwasimported" in said
    assert warehouse_rows(project, "SELECT count(*) FROM events") == [(0,)]
    # No entry pretends to be running, and nothing claims good.csv was loaded.
    log = json.loads(yy("quarantine", "list", "-p", str(project), "-f", "json").stdout)
    assert log["imports"] == []
    # With the bad file fixed (left out), the same import loads.
    with clock.frozen(NOW):
        f = import_json(project, "events", good)[0]
    assert f["loaded"] == 1
    log = json.loads(yy("quarantine", "list", "-p", str(project), "-f", "json").stdout)
    assert [(e["status"], e["loaded"]) for e in log["imports"]] == [("done", 1)]


# -- D: every accepted time format, and the refused ones --------------------------------
# (value, stored UTC time or the quarantine reason); read in the default Asia/Shanghai.
TIMES: list[tuple[str, str]] = [
    ("2025-03-01 10:00:00", "2025-03-01 02:00:00"),
    ("2025-03-01T10:00:00", "2025-03-01 02:00:00"),
    ("2025-03-01 10:00:00.250", "2025-03-01 02:00:00.25"),
    ("2025-3-1 9:05:00", "2025-03-01 01:05:00"),
    ("2025-03-01 10:00", "2025-03-01 02:00:00"),
    ("2025-03-01", "2025-02-28 16:00:00"),
    ("2025/03/01 10:00:00", "2025-03-01 02:00:00"),
    ("2025/3/1", "2025-02-28 16:00:00"),
    ("20250301", "2025-02-28 16:00:00"),
    ("20250301103000", "2025-03-01 02:30:00"),
    ("2025-03-01T10:00:00Z", "2025-03-01 10:00:00"),
    ("2025-03-01 10:00:00+08", "2025-03-01 02:00:00"),
    ("2025-03-01 10:00:00+0800", "2025-03-01 02:00:00"),
    ("2025-03-01T10:00:00-05:00", "2025-03-01 15:00:00"),
    ("2025-03-01 10:00:00+14:00", "2025-02-28 20:00:00"),
    ("2025-03-01 10:00:00 UTC", "2025-03-01 10:00:00"),
    ("2025-03-01 10:00:00 Asia/Tokyo", "2025-03-01 01:00:00"),
    ("2025-03-01 10:00:00 Etc/GMT-8", "2025-03-01 02:00:00"),
    ("2025-03-01 10:00:00 CST", "2025-03-01 02:00:00"),  # China Standard Time (setting)
    ("1740823200", "2025-03-01 10:00:00"),  # epoch seconds
    ("1740823200123", "2025-03-01 10:00:00.123"),  # epoch milliseconds
    ("2025-03-01 10:00:00 EST", "ambiguous_zone"),
    ("2025-03-01 10:00:00 IST", "ambiguous_zone"),
    ("2025-03-01 10:00:00+25:00", "bad_timestamp"),
    ("2025-03-01 10:00:00+15", "bad_timestamp"),
    ("99999999999", "bad_timestamp"),  # 11 digits: neither seconds nor milliseconds
    ("45678", "bad_timestamp"),  # an Excel serial, read only with --excel-dates
    ("20251301", "bad_timestamp"),  # no month 13
    ("infinity", "time_out_of_range"),  # DuckDB's strptime reads it; the window refuses it
    ("2025-03-01 10:00:00 Mars/Olympus", "bad_timestamp"),
    ("0001-01-01 00:00:00", "time_out_of_range"),
    ("9999-12-31T23:00:00Z", "time_out_of_range"),
    ("946684799", "time_out_of_range"),  # 1999-12-31 23:59:59 UTC, just before the floor
]


def _times_file(tmp_path: Path, values: list[str]) -> Path:
    path = tmp_path / "times.csv"
    path.write_text(
        "event_id,event,user_id,ts\n"
        + "".join(f"t{i},view,u,{v}\n" for i, v in enumerate(values)),
        encoding="utf-8",
    )
    return path


def test_every_documented_time_format(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = _times_file(tmp_path, [v for v, _ in TIMES])
    with clock.frozen(NOW):
        import_json(project, "events", path)
    stored = dict(warehouse_rows(project, "SELECT event_id, CAST(ts AS VARCHAR) FROM events"))
    reasons = {f"t{line - 2}": reason for line, _f, reason in quarantine_rows(project)}
    got = [(v, stored.get(f"t{i}") or reasons.get(f"t{i}")) for i, (v, _) in enumerate(TIMES)]
    assert got == TIMES
    # Every accepted shape is listed in the docs.
    doc = (Path(__file__).parents[2] / "docs" / "import.md").read_text(encoding="utf-8")
    for shape in ("YYYYMMDD", "YYYYMMDDHHMMSS", "YYYY/MM/DD", "--excel-dates", "CST", "+14:00"):
        assert shape in doc, shape


def test_excel_serials_only_when_asked_and_abbreviations_by_setting(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = _times_file(tmp_path, ["45678", "45678.5", "2025-03-01 10:00:00 CST"])
    (project / "yunying.toml").write_text(
        'name = "t"\n[imports]\nzone_abbreviations = {}\n', encoding="utf-8"
    )
    with clock.frozen(NOW):
        f = import_json(project, "events", path, extra=("--excel-dates",))[0]
    assert (f["loaded"], f["quarantined"]) == (2, 1)
    assert warehouse_rows(project, "SELECT CAST(ts AS VARCHAR) FROM events ORDER BY 1") == [
        ("2025-01-20 16:00:00",), ("2025-01-21 04:00:00",),
    ]
    assert quarantine_rows(project) == [(4, "ts", "ambiguous_zone")]


# -- E: CSV quoting -------------------------------------------------------------------
def test_one_unclosed_quote_quarantines_that_row_alone(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "q.csv"
    path.write_text(
        "event_id,event,user_id,ts,note\n"
        'e1,view,u1,2025-03-01 10:00:00,"a, b"\n'  # 2: RFC 4180 quoting
        'e2,view,u2,2025-03-01 10:00:00,"broken\n'  # 3: the quote never closes
        'e3,view,u3,2025-03-01 10:00:00,"say ""hi"""\n'  # 4
        "e4,view,u4,2025-03-01 10:00:00,plain\n"  # 5
        'e5,view,u5,2025-03-01 10:00:00,"two\nlines"\n',  # 6-7: a quoted newline is data
        encoding="utf-8",
    )
    with clock.frozen(NOW):
        f = import_json(project, "events", path)[0]
    assert (f["rows_read"], f["loaded"], f["quarantined"]) == (5, 4, 1)
    got = dict(warehouse_rows(project, "SELECT event_id, properties FROM events"))
    assert {k: json.loads(v)["note"] for k, v in got.items()} == {
        "e1": "a, b", "e3": 'say "hi"', "e4": "plain", "e5": "two\nlines",
    }
    assert quarantine_rows(project) == [(3, "", "csv_quote")]
    out = tmp_path / "fix.csv"
    assert yy("quarantine", "export", f["import_id"], str(out), "-p", str(project)).returncode == 0
    assert out.read_text(encoding="utf-8").splitlines()[1] == 'e2,view,u2,2025-03-01 10:00:00,"broken'


def test_another_dialect_when_the_user_names_it(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "semi.txt"
    path.write_text(
        "event_id;event;user_id;ts;note\ne1;view;u1;2025-03-01 10:00:00;'x;y'\n", encoding="utf-8"
    )
    with clock.frozen(NOW):
        f = import_json(project, "events", path, extra=("--quote", "'"))[0]
    assert f["loaded"] == 1  # the delimiter is found in the header; the quote is named
    props = warehouse_rows(project, "SELECT properties FROM events")[0][0]
    assert json.loads(props) == {"note": "x;y"}
    r = yy("import", "events", str(path), "--delimiter", "ab", "-p", str(project))
    assert r.returncode == 2 and "--delimiter expects a single character" in r.stderr


# -- F: encodings ---------------------------------------------------------------------
def test_gbk_files_are_detected_and_quarantine_export_round_trips(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    text = (
        "编号,事件,用户,时间,备注\n"
        "e1,浏览,u1,2025-03-01 10:00:00,你好\n"
        "e2,购买,u2,昨天,坏的时间\n"  # 3: bad time, Chinese text in the row
    )
    path = tmp_path / "gbk.csv"
    path.write_bytes(text.encode("gbk"))
    maps = ("--map", "编号=event_id", "--map", "事件=event", "--map", "用户=user_id", "--map", "时间=ts")
    with clock.frozen(NOW):
        f = import_json(project, "events", path, extra=maps)[0]
    assert (f["loaded"], f["quarantined"]) == (1, 1)
    [(event, props)] = warehouse_rows(project, "SELECT event, properties FROM events")
    assert event == "浏览" and json.loads(props) == {"备注": "你好"}
    out = tmp_path / "fix.csv"
    assert yy("quarantine", "export", f["import_id"], str(out), "-p", str(project)).returncode == 0
    # Written back in the source's encoding: the same bytes as the original lines.
    assert out.read_bytes().replace(b"\r\n", b"\n") == (
        "编号,事件,用户,时间,备注\ne2,购买,u2,昨天,坏的时间\n".encode("gbk")
    )
    # The wrong encoding named by hand: a message that says so, not "missing columns".
    r = yy("import", "events", str(path), *maps, "--encoding", "utf-8", "-p", str(project))
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and "is not valid utf-8; give the right --encoding" in said
    assert "lacks required column" not in said
    r = yy("import", "events", str(path), "--encoding", "klingon", "-p", str(project))
    assert r.returncode == 2 and "Unknown encoding 'klingon'" in " ".join(r.stderr.split())


def test_utf16_with_bom_loads(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "u16.csv"
    path.write_bytes("event_id,event,user_id,ts\ne1,浏览,u1,2025-03-01 10:00:00\n".encode("utf-16"))
    with clock.frozen(NOW):
        f = import_json(project, "events", path)[0]
    assert f["loaded"] == 1
    assert warehouse_rows(project, "SELECT event FROM events") == [("浏览",)]


def test_a_line_that_is_not_text_keeps_its_bytes_in_quarantine(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "mixed.csv"
    bad = b"e2,view,u\xff\xfe2,2025-03-01 10:00:00"
    path.write_bytes(
        b"event_id,event,user_id,ts\n" + b"e1,view,u1,2025-03-01 10:00:00\n" * 40000 + bad + b"\n"
    )
    with clock.frozen(NOW):
        f = import_json(project, "events", path)[0]
    assert (f["loaded"], f["duplicate"], f["quarantined"]) == (1, 39999, 1)
    assert quarantine_rows(project) == [(40002, "user_id", "invalid_encoding")]
    out = tmp_path / "fix.csv"
    assert yy("quarantine", "export", f["import_id"], str(out), "-p", str(project)).returncode == 0
    assert out.read_bytes().splitlines()[1] == bad


# -- G: smaller wrong answers -----------------------------------------------------------
def test_a_nul_byte_deep_in_a_file_is_quarantined(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "nul.csv"
    path.write_bytes(
        b"event_id,event,user_id,ts\n"
        + b"".join(b"e%d,view,u1,2025-03-01 10:00:00\n" % i for i in range(5000))
        + b"bad,vi\x00ew,u2,2025-03-01 10:00:00\n"
    )
    assert path.stat().st_size > 65536  # beyond the part checked for binary data
    with clock.frozen(NOW):
        f = import_json(project, "events", path)[0]
    assert (f["loaded"], f["quarantined"]) == (5000, 1)
    assert quarantine_rows(project) == [(5002, "event", "nul_byte")]
    assert warehouse_rows(project, "SELECT count(*) FROM events WHERE contains(event, chr(0))") == [(0,)]


def test_parquet_bytes_structs_lists_and_float_ids(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "p.parquet"
    pq.write_table(
        pa.table({
            "event_id": ["e1", "e2", "e3"],
            "event": ["view"] * 3,
            "user_id": pa.array([10.0, 7.0, float("nan")]),
            "ts": ["2025-03-01 10:00:00"] * 3,
            "blob": pa.array([b"\x00\xff", b"ab", None]),
            "obj": pa.array([{"x": 1, "y": "a"}, {"x": 2, "y": None}, None]),
            "tags": pa.array([[1, 2], [], None]),
        }),
        path,
    )
    with clock.frozen(NOW):
        f = import_json(project, "events", path)[0]
    assert (f["loaded"], f["quarantined"]) == (2, 1)
    got = warehouse_rows(project, "SELECT event_id, user_id, properties FROM events ORDER BY 1")
    assert [(g[0], g[1]) for g in got] == [("e1", "10"), ("e2", "7")]  # 10.0 → "10"
    assert json.loads(got[0][2]) == {"blob": "AP8=", "obj": {"x": 1, "y": "a"}, "tags": [1, 2]}
    assert json.loads(got[1][2]) == {"blob": "YWI=", "obj": {"x": 2, "y": None}, "tags": []}
    assert quarantine_rows(project) == [(3, "user_id", "bad_id")]  # NaN is no id


def test_jsonl_array_as_event_id_is_quarantined(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "e.jsonl"
    rows = [
        {"event_id": "e1", "event": "view", "user_id": "u1", "ts": "2025-03-01 10:00:00"},
        {"event_id": ["e2", "e3"], "event": "view", "user_id": "u1", "ts": "2025-03-01 10:00:00"},
        {"event_id": "e4", "event": {"n": 1}, "user_id": 12.0, "ts": "2025-03-01 10:00:00"},
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with clock.frozen(NOW):
        f = import_json(project, "events", path)[0]
    assert (f["loaded"], f["quarantined"]) == (1, 2)
    assert quarantine_rows(project) == [(2, "event_id", "not_scalar"), (3, "event", "not_scalar")]


@pytest.mark.parametrize(
    ("header", "named"),
    [("event_id,event,user_id,ts,ts", "ts"), ("event_id,event,user_id,ts,x,x", "x")],
)
def test_duplicate_header_names_refuse_the_file(tmp_path: Path, header: str, named: str) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "d.csv"
    n = header.count(",") + 1
    path.write_text(header + "\n" + ",".join(["a"] * n) + "\n", encoding="utf-8")
    r = yy("import", "events", str(path), "-p", str(project))
    said = " ".join(r.stderr.split())
    assert r.returncode == 2 and f"names column(s) {named} more than once" in said


def test_a_negative_amount_is_quarantined(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    path = tmp_path / "o.csv"
    path.write_text(
        "order_id,user_id,ts,amount,currency,status\n"
        "o1,u1,2025-03-01 10:00:00,10.00,CNY,paid\n"
        "o2,u1,2025-03-01 10:00:00,-10.00,CNY,paid\n"
        "o3,u1,2025-03-01 10:00:00,10.00,CNY,refunded\n",
        encoding="utf-8",
    )
    with clock.frozen(NOW):
        f = import_json(project, "orders", path)[0]
    assert (f["loaded"], f["quarantined"]) == (2, 1)
    assert quarantine_rows(project) == [(3, "amount", "negative_amount")]


def test_a_gbk_file_with_one_broken_line_keeps_the_rest_and_its_bytes(tmp_path: Path) -> None:
    project = project_dir(tmp_path)
    broken = "e2,购买,u2,2025-03-01 10:00:00".encode("gbk") + b"\x81\xff"
    path = tmp_path / "gbk.csv"
    path.write_bytes(
        "event_id,event,user_id,ts,备注\ne1,浏览,u1,2025-03-01 10:00:00,好\n".encode("gbk")
        + broken + b"\n" + "e3,浏览,u3,2025-03-01 10:00:00,行\n".encode("gbk")
    )
    with clock.frozen(NOW):
        f = import_json(project, "events", path)[0]
    assert (f["loaded"], f["quarantined"]) == (2, 1)
    assert [r[0] for r in quarantine_rows(project)] == [3]
    assert warehouse_rows(project, "SELECT event FROM events ORDER BY 1") == [("浏览",), ("浏览",)]
    out = tmp_path / "fix.csv"
    assert yy("quarantine", "export", f["import_id"], str(out), "-p", str(project)).returncode == 0
    assert out.read_bytes().splitlines()[1] == broken
