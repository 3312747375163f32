"""Import throughput: yunying's validated import beside plain DuckDB on the same files.

For each size it generates an events CSV and Parquet file (with one extra column that
goes to ``properties``), then in separate subprocesses (so peak memory is each run's own
max RSS) loads each file with plain DuckDB ``read_csv`` / ``read_parquet`` into a table
and with ``yunying import`` (validation, dedupe, quarantine) into a fresh project.
The ratio yunying rows/s ÷ DuckDB rows/s shows what validation costs (target >= 0.5).

    .venv/bin/python benchmarks/import_bench.py --rows 1000000 10000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

GEN_SQL = """
SELECT
  'e' || i AS event_id,
  ['view', 'add_to_cart', 'pay', 'login'][1 + i % 4] AS event,
  'u' || (i % 100003) AS user_id,
  strftime(TIMESTAMP '2024-01-01' + INTERVAL (i % 31536000) SECOND, '%Y-%m-%d %H:%M:%S') AS ts,
  CASE WHEN i % 3 = 0 THEN 'a' || (i % 1009) END AS account_id,
  's' || (i // 7) AS session_id,
  '/p/' || (i % 97) AS page
FROM range({n}) t(i)
"""


def generate(folder: Path, rows: int) -> dict[str, Path]:
    """events_<n>.csv and .parquet, made by DuckDB (fast and deterministic)."""
    folder.mkdir(parents=True, exist_ok=True)
    csv_path = folder / f"events_{rows}.csv"
    pq_path = folder / f"events_{rows}.parquet"
    con = duckdb.connect()
    sql = GEN_SQL.format(n=int(rows))
    if not csv_path.exists():
        con.execute(f"COPY ({sql}) TO '{csv_path}' (HEADER, DELIMITER ',')")
    if not pq_path.exists():
        con.execute(f"COPY ({sql}) TO '{pq_path}' (FORMAT parquet)")
    con.close()
    return {"csv": csv_path, "parquet": pq_path}


_PLAIN = """
import duckdb, sys, time
path, fmt, db = sys.argv[1], sys.argv[2], sys.argv[3]
con = duckdb.connect(db)
t0 = time.perf_counter()
reader = "read_csv" if fmt == "csv" else "read_parquet"
n = con.execute(f"CREATE TABLE events AS SELECT * FROM {reader}(?)", [path]).fetchall()[0][0]
con.close()
print(time.perf_counter() - t0, n)
"""

_YUNYING = """
import sys, time
from pathlib import Path
from yunying.config import load_settings
from yunying.warehouse.engine import Warehouse
from yunying.warehouse.importer import ImportRequest, run_import
path, fmt, project = sys.argv[1], sys.argv[2], sys.argv[3]
s = load_settings(project)
wh = Warehouse(s, "duckdb")
wh.con
t0 = time.perf_counter()
r = run_import(wh, ImportRequest(table="events", paths=[Path(path)], format=fmt, timezone="UTC"))
wh.close()
assert r.files[0].reconciled
print(time.perf_counter() - t0, r.loaded)
"""


def run_one(code: str, *args: str) -> tuple[float, int, float, float]:
    """Run a subprocess: (seconds, rows, its own max RSS in MiB, its CPU seconds).

    wait4 gives the child's own figures, not the maximum over all children. CPU time is
    printed beside wall time because it barely moves when other jobs share the cores."""
    proc = subprocess.Popen(
        [sys.executable, "-c", code, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "YUNYING_LANGUAGE": "en"},
    )
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(err.decode(errors="replace")[-2000:])
    secs, rows = out.decode().split()[-2:]
    return float(secs), int(rows), usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def bench(rows: int, work: Path) -> list[dict[str, object]]:
    files = generate(work / "data", rows)
    results: list[dict[str, object]] = []
    for fmt, path in files.items():
        db = work / f"plain_{fmt}_{rows}.duckdb"
        db.unlink(missing_ok=True)
        p_secs, p_rows, p_rss, p_cpu = run_one(_PLAIN, str(path), fmt, str(db))
        db.unlink(missing_ok=True)
        project = work / f"proj_{fmt}_{rows}"
        shutil.rmtree(project, ignore_errors=True)
        project.mkdir()
        y_secs, y_rows, y_rss, y_cpu = run_one(_YUNYING, str(path), fmt, str(project))
        shutil.rmtree(project, ignore_errors=True)
        if y_rows != rows or p_rows != rows:
            raise RuntimeError(f"row count mismatch: plain {p_rows}, yunying {y_rows}, want {rows}")
        results.append(
            {
                "rows": rows,
                "format": fmt,
                "duckdb_s": round(p_secs, 2),
                "duckdb_rows_per_s": round(rows / p_secs),
                "duckdb_peak_mib": round(p_rss),
                "duckdb_cpu_s": round(p_cpu, 2),
                "yunying_s": round(y_secs, 2),
                "yunying_rows_per_s": round(rows / y_secs),
                "yunying_peak_mib": round(y_rss),
                "yunying_cpu_s": round(y_cpu, 2),
                "ratio": round((rows / y_secs) / (rows / p_secs), 2),
                "cpu_ratio": round(p_cpu / y_cpu, 2),
            }
        )
    return results


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 10_000_000])
    ap.add_argument("--work", type=Path, default=None, help="Folder for data (default: temp).")
    ap.add_argument("--json", action="store_true", help="Print the figures as JSON.")
    args = ap.parse_args(argv)
    work = args.work or Path(tempfile.mkdtemp(prefix="yy_import_bench_"))
    all_results: list[dict[str, object]] = []
    try:
        for n in args.rows:
            t0 = time.perf_counter()
            res = bench(n, work)
            all_results.extend(res)
            for r in res:
                print(
                    f"{r['rows']:>11,} {r['format']:<8} DuckDB {r['duckdb_rows_per_s']:>11,} rows/s "
                    f"({r['duckdb_s']} s, {r['duckdb_peak_mib']} MiB) | yunying "
                    f"{r['yunying_rows_per_s']:>11,} rows/s ({r['yunying_s']} s, "
                    f"{r['yunying_peak_mib']} MiB) | ratio {r['ratio']}x "
                    f"(CPU {r['duckdb_cpu_s']} / {r['yunying_cpu_s']} s, {r['cpu_ratio']}x)",
                    flush=True,
                )
            print(f"  ({n:,} rows done in {time.perf_counter() - t0:.0f} s)", flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    if args.json:
        print(json.dumps(all_results, indent=2))


if __name__ == "__main__":
    from machine import print_machine  # benchmarks/ is sys.path[0] when run as a script

    main()
    print()
    print_machine()
