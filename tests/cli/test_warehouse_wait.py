"""A command that finds the warehouse held by another process waits, says so, and either
runs or stops with a message, never "Unexpected error (IOException)" (issue 13, item 11)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from tests.conftest import make_project
from yunying.warehouse.engine import Warehouse

YUNYING = str(Path(sys.executable).parent / "yunying")
HOLD = """
import sys, time, duckdb
con = duckdb.connect(sys.argv[1])
print("held", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def _hold(path: Path, seconds: float) -> subprocess.Popen[str]:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(path), str(seconds)], stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None and p.stdout.readline().strip() == "held"
    return p


def _status(project: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    t0 = time.perf_counter()
    r = subprocess.run([YUNYING, "status", "--project", str(project)], capture_output=True, text=True,
                       env={**os.environ, "YUNYING_LANGUAGE": "en", "COLUMNS": "300", **env}, timeout=120)
    return r, time.perf_counter() - t0


def test_a_command_waits_for_a_brief_writer_and_says_so(tmp_path: Path) -> None:
    s = make_project(tmp_path)
    with Warehouse(s) as wh:
        _ = wh.con  # the file exists, with its tables
    holder = _hold(s.warehouse_path, 4)
    try:
        r, took = _status(tmp_path)
    finally:
        holder.wait(30)
    assert r.returncode == 0, r.stderr
    assert "waiting" in r.stderr and "in use by another process" in r.stderr
    assert "IOException" not in r.stderr + r.stdout


def test_a_command_stops_with_a_message_when_the_writer_stays(tmp_path: Path) -> None:
    s = make_project(tmp_path)
    with Warehouse(s) as wh:
        _ = wh.con  # the file exists, with its tables
    holder = _hold(s.warehouse_path, 30)
    try:
        r, took = _status(tmp_path, YUNYING_WAREHOUSE__LOCK_WAIT="1")
    finally:
        holder.kill()
        holder.wait(30)
    assert r.returncode == 2, (r.stdout, r.stderr)
    text = " ".join(r.stderr.split())
    assert "is held by another process" in text and "warehouse.lock_wait" in text, text
    assert "IOException" not in text and "Unexpected error" not in text
