"""The analysis commands end to end on the hand-made events (json, csv, table, export, errors)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.analytics._data import load
from tests.conftest import make_project
from yunying.cli import app
from yunying.cli.analytics import parse_filter
from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse

runner = CliRunner()
RANGE = ["--from", "2024-03-04", "--to", "2024-03-10"]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    wh = Warehouse(make_project(tmp_path), "duckdb")
    load(wh)
    wh.close()
    return tmp_path


def run(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def test_funnel_json_table_and_export(project: Path) -> None:
    doc = json.loads(run("funnel", "view", "cart", "pay", *RANGE, "-p", str(project), "-f", "json"))
    assert [s["users"] for s in doc["steps"]] == [6, 5, 2]
    doc = json.loads(
        run("funnel", "view[channel=ads]", "cart", *RANGE, "-p", str(project), "-f", "json", "--by", "channel")
    )
    assert [s["users"] for s in doc["steps"]] == [3, 3]  # u3's 2nd view came from ads
    out = run("funnel", "view", "cart", "pay", *RANGE, "-p", str(project))
    assert "转化时长" in out  # the project language, zh_CN by default
    f = project / "drop.csv"
    run("funnel", "view", "cart", "pay", *RANGE, "-p", str(project), "--export-users", str(f), "--export-step", "2")
    assert f.read_text().split() == ["user_id", "u2", "u6", "u7"]


def test_other_commands(project: Path) -> None:
    p = ["-p", str(project)]
    csv_out = run("trends", "view", "--from", "2024-03-04", "--to", "2024-03-06", *p, "-f", "csv")
    assert csv_out.splitlines()[1:4] == ["2024-03-04,4.0", "2024-03-05,1.0", "2024-03-06,0.0"]
    doc = json.loads(run("retention", "--start", "view", "--periods", "3", "--from", "2024-03-04",
                         "--to", "2024-03-05", *p, "-f", "json"))
    assert doc["cohorts"][0]["retained"] == [4, 1, 1, 0]
    doc = json.loads(run("lifecycle", "--grain", "day", "--from", "2024-03-04", "--to", "2024-03-06", *p, "-f", "json"))
    assert [x["dormant"] for x in doc["periods"]] == [0, -4, -2]
    doc = json.loads(run("stickiness", *RANGE, *p, "-f", "json"))
    assert doc["distribution"][:2] == [4, 3]
    f = project / "dormant.csv"
    run("lifecycle", "--grain", "day", "--from", "2024-03-04", "--to", "2024-03-06", *p,
        "--export-users", str(f), "--stage", "dormant", "--period", "2024-03-05")
    assert f.read_text().split()[1:] == ["u2", "u4", "u6", "u7"]


def test_parse_filter() -> None:
    assert parse_filter("revenue>=10").operator == "gte"
    f = parse_filter("channel in ads|organic")
    assert (f.operator, f.value) == ("in", ["ads", "organic"])
    assert parse_filter("!coupon").operator == "is_not_set"
    assert parse_filter("name~bob").value == "bob"
    with pytest.raises(YunyingError):
        parse_filter("what is this")


def test_bad_input_is_a_clear_message(project: Path) -> None:
    env = {**os.environ, "YUNYING_LANGUAGE": "en"}
    r = subprocess.run(
        [sys.executable, "-c", "from yunying.cli import main; main()", "funnel", "view",
         "--from", "2024-03-04", "-p", str(project)],
        capture_output=True, text=True, env=env, check=False,
    )
    assert r.returncode == 2 and "Invalid query: steps" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run(
        [sys.executable, "-c", "from yunying.cli import main; main()", "trends",
         "--from", "2024-13-01", "-p", str(project)],
        capture_output=True, text=True, env=env, check=False,
    )
    assert r.returncode == 2 and "YYYY-MM-DD" in r.stderr
