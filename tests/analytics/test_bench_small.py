"""The benchmark's generator and ClickHouse queries stay correct (tiny size, chdb in-process)."""

from __future__ import annotations

import sys
from pathlib import Path

import chdb
import pytest

from yunying.analytics.funnels import run_funnel
from yunying.analytics.retention import run_retention
from yunying.config import load_settings
from yunying.warehouse.engine import Warehouse

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import analytics_bench as bench  # noqa: E402


def test_bench_queries_agree_on_small_data(tmp_path: Path) -> None:
    data = bench.generate(20_000, seed=3)
    assert data.num_rows == 20_000
    wh = Warehouse(load_settings(tmp_path, timezone="UTC"), "duckdb")
    try:
        wh.append_arrow("events", data)
        yy = [s.users for s in run_funnel(wh, bench.funnel_query()).steps]
        r = run_retention(wh, bench.retention_query())
        yr = [[c.size] + c.retained[1:] for c in r.cohorts]
    finally:
        wh.close()
    df = data.select(["user_id", "ts", "event"]).to_pandas()  # noqa: F841 - chdb reads it by name
    rows = chdb.query(bench.ch_funnel_sql("Python(df)"), "CSV").bytes().decode().split()
    levels = [tuple(int(x) for x in line.split(",")) for line in rows]
    assert yy == bench.levels_to_steps(levels, len(bench.STEPS))  # type: ignore[arg-type]
    assert yy[0] > yy[-1] > 0
    # a DataFrame's columns are Nullable; retention() takes at most 8 Nullable arguments
    src = (
        "(SELECT assumeNotNull(user_id) AS user_id, assumeNotNull(ts) AS ts, "
        "assumeNotNull(event) AS event FROM Python(df))"
    )
    out = chdb.query(bench.ch_retention_sql(src), "CSV").bytes().decode()
    cr = [[int(v) for v in line.split(",", 1)[1].strip('"[]').split(",")] for line in out.split()]
    assert yr == cr and len(yr) == bench.RET_WEEKS


def test_bench_main_runs_both_sides(capsys: pytest.CaptureFixture[str]) -> None:
    """The whole benchmark on a tiny size: both sides in their own processes, alternating,
    answers asserted equal, ratios (wall and CPU) printed."""
    bench.main(["--events", "20000", "--skip-value", "--repeat", "1", "--rounds", "2"])
    out = capsys.readouterr().out
    assert "counts equal; ratio yunying/ClickHouse = " in out and "x CPU" in out
    assert "cohort matrices equal" in out
