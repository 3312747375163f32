"""A run killed with SIGKILL mid-file leaves no partial or duplicate state once re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import duckdb
import pytest

from tests.conftest import make_project
from yunying.warehouse.engine import Warehouse, lake_files
from yunying.warehouse.importer import ImportRequest, run_import
from yunying.warehouse.quarantine import quarantine_path

ROWS = 60_000
CHUNK = 5_000

SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from yunying.config import load_settings
    from yunying.warehouse.engine import Warehouse
    from yunying.warehouse.importer import ImportRequest, run_import
    project, path, engine = sys.argv[1:4]
    s = load_settings(project)
    s.imports.chunk_rows = {chunk}
    wh = Warehouse(s, engine)
    def progress(phase, file, done, total):
        print(phase, done, flush=True)
    run_import(wh, ImportRequest(table="events", paths=[Path(path)], timezone="UTC"), progress)
    print("finished", flush=True)
    """
).format(chunk=CHUNK)


def _make_file(path: Path) -> None:
    """ROWS lines; every 10th key repeats an earlier one, every 97th line is invalid."""
    con = duckdb.connect()
    con.execute(
        f"""COPY (SELECT CASE WHEN i % 10 = 9 THEN 'e' || (i - 5) ELSE 'e' || i END AS event_id,
                 'view' AS event, 'u' || (i % 50) AS user_id,
                 CASE WHEN i % 97 = 0 THEN 'not-a-time' ELSE CAST(1704067200 + i AS VARCHAR) END AS ts
          FROM range({ROWS}) t(i)) TO '{path}' (HEADER)"""
    )
    con.close()


def _expected(path: Path) -> tuple[int, int]:
    """(distinct valid keys, invalid rows) computed independently of the importer."""
    con = duckdb.connect()
    valid, bad = con.execute(
        "SELECT count(DISTINCT event_id) FILTER (WHERE ts <> 'not-a-time'), "
        "count(*) FILTER (WHERE ts = 'not-a-time') FROM read_csv(?, all_varchar = true)",
        [str(path)],
    ).fetchall()[0]
    con.close()
    return int(valid), int(bad)


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_sigkill_mid_file_then_rerun_is_exact(tmp_path: Path, engine: str) -> None:
    # The Spark engine's sink is the Parquet lake, written without a Spark session.
    project = tmp_path / "proj"
    make_project(project)
    data = tmp_path / "events.csv"
    _make_file(data)
    want_valid, want_bad = _expected(data)
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, str(project), str(data), engine],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "YUNYING_LANGUAGE": "en"},
    )
    assert proc.stdout is not None
    killed = False
    for line in proc.stdout:
        parts = line.split()
        # Kill once some chunks are committed but the file is not finished.
        if parts[0] == "load" and int(parts[1]) >= 3 * CHUNK:
            os.kill(proc.pid, signal.SIGKILL)
            killed = True
            break
    proc.wait(timeout=120)
    assert killed, proc.stderr.read() if proc.stderr else ""
    assert proc.returncode == -signal.SIGKILL

    # Before anything else runs, the import log tells the truth about the killed run.
    from tests.warehouse.test_import_cli import cli

    log = json.loads(cli("quarantine", "list", "-p", str(project), "-f", "json").stdout)
    [killed_entry] = log["imports"]
    assert killed_entry["status"] == "interrupted" and killed_entry["loaded"] > 0
    killed_loaded_listed = killed_entry["loaded"]

    s = make_project(project)
    s.imports.chunk_rows = CHUNK
    wh = Warehouse(s, engine)
    try:
        partial = _count(wh, engine)
        assert 0 < partial < want_valid  # the kill really was mid-file
        if engine == "duckdb":  # counts committed with the rows: exact, not a chunk behind
            assert killed_loaded_listed == partial
        r = run_import(wh, ImportRequest(table="events", paths=[data], timezone="UTC"))
        f = r.files[0]
        assert f.rows_read == ROWS
        assert f.loaded + f.duplicate + f.quarantined == ROWS
        assert f.loaded == want_valid - partial
        assert f.quarantined == want_bad
        total, distinct = _count(wh, engine), _distinct(wh, engine)
        assert total == distinct == want_valid
        # A third run changes nothing.
        r3 = run_import(wh, ImportRequest(table="events", paths=[data], timezone="UTC"))
        assert r3.files[0].loaded == 0 and _count(wh, engine) == want_valid
    finally:
        wh.close()
    q = duckdb.connect(str(quarantine_path(s)), read_only=True)
    assert q.execute("SELECT count(*), count(DISTINCT line) FROM rows").fetchall() == [
        (want_bad, want_bad)
    ]
    statuses = sorted(r[0] for r in q.execute("SELECT status FROM imports").fetchall())
    killed_loaded = q.execute(
        "SELECT loaded FROM imports WHERE status = 'interrupted'"
    ).fetchall()
    q.close()
    # The killed run is visible in the log as interrupted (marked by the next run), with
    # the rows it committed: exactly on DuckDB (written with the rows); on Spark the log
    # follows every chunk, so it lags by at most one.
    assert statuses == ["done", "done", "interrupted"]
    if engine == "duckdb":
        assert killed_loaded[0][0] == partial
    assert 0 < killed_loaded[0][0] <= partial
    assert killed_loaded[0][0] > partial - CHUNK
    # The killed run's spill folder is removed by the next run; nothing is left behind.
    assert not list((project / ".yunying" / "import-tmp").iterdir())


def _count(wh: Warehouse, engine: str) -> int:
    if engine == "duckdb":
        return int(wh.duck.execute("SELECT count(*) FROM events").fetchall()[0][0])
    files = [str(f) for f in lake_files(wh.settings, "events")]
    if not files:
        return 0
    return int(duckdb.execute("SELECT count(*) FROM read_parquet(?)", [files]).fetchall()[0][0])


def _distinct(wh: Warehouse, engine: str) -> int:
    if engine == "duckdb":
        return int(wh.duck.execute("SELECT count(DISTINCT event_id) FROM events").fetchall()[0][0])
    files = [str(f) for f in lake_files(wh.settings, "events")]
    return int(
        duckdb.execute("SELECT count(DISTINCT event_id) FROM read_parquet(?)", [files]).fetchall()[0][0]
    )
