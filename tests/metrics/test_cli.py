"""The ``yunying metrics`` commands end to end on a temp project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.metrics import data
from yunying.cli import app
from yunying.config import Settings
from yunying.metrics import FRAMEWORKS, load_registry
from yunying.warehouse.engine import Warehouse

runner = CliRunner()


@pytest.fixture
def project(settings: Settings) -> str:
    (settings.project_dir / "yunying.toml").write_text('language = "en"\n[metrics]\nlibraries = ["ecommerce", "app"]\n', encoding="utf-8")
    wh = Warehouse(settings, "duckdb")
    data.shop(wh)
    wh.close()
    return str(settings.project_dir)


def run(*args: str) -> str:
    res = runner.invoke(app, ["metrics", *args])
    assert res.exit_code == 0, (res.output, res.exception)
    return res.stdout


def test_compute_formats(project: str) -> None:
    out = run("compute", "gmv", "conversion_rate", "--grain", "total", "--from", "2026-10-01", "--to",
              "2026-10-07", "-p", project, "--format", "json")
    doc = json.loads(out)
    assert doc["series"][0]["points"][0]["value"] == 420.0
    csv = run("compute", "gmv", "--grain", "day", "--from", "2026-10-01", "--to", "2026-10-02", "--by", "channel",
              "-p", project, "--format", "csv")
    assert csv.splitlines()[0] == "Period,channel,GMV"
    assert "2026-10-01,sem,200.00" in csv
    table = run("compute", "uv", "--from", "2026-10-01", "--to", "2026-10-03", "-p", project)
    assert "2026-10-02" in table


def test_init_every_framework_then_list(project: str, settings: Settings) -> None:
    for fw in FRAMEWORKS:
        assert "written" in run("init", "--framework", fw, "-p", project)
    reg = load_registry(settings)
    assert {s.framework for s in reg.systems} == set(FRAMEWORKS)
    gsm = next(s for s in reg.systems if s.framework == "gsm")
    goal = gsm.nodes[0]
    assert goal.kind == "goal" and goal.children[0].kind == "signal" and goal.children[0].metrics
    listing = json.loads(run("list", "-p", project, "--format", "json"))
    kinds = [ln["kind"] for ln in listing["lines"]]
    assert kinds.count("framework") == 5 and "library" in kinds
    assert "Grow revenue" in run("list", "-p", project)
    res = runner.invoke(app, ["metrics", "init", "--framework", "gsm", "-p", project])
    assert res.exit_code != 0 and "--force" in str(res.exception)
    # Placeholders compute.
    out = run("compute", "gsm_revenue", "--grain", "total", "--from", "2026-10-01", "--to", "2026-10-07",
              "-p", project, "--format", "json")
    assert json.loads(out)["series"][0]["points"][0]["value"] == 420.0


def test_explain_whatif_goalseek_sensitivity_scenarios(project: str) -> None:
    ex = json.loads(run("explain", "gmv", "--from", "2026-10-01", "--to", "2026-10-02", "--by", "channel",
                        "-p", project, "--format", "json"))
    assert ex["method"] == "lmdi"
    assert sum(d["contribution"] for d in ex["drivers"]) == pytest.approx(ex["change"])
    period = "2026-10-01..2026-10-07"
    w = json.loads(run("whatif", "gmv", "--period", period, "--set", "conversion=+5%", "--set", "aov=-2%",
                       "--save", "plan_a", "-p", project, "--format", "json"))
    assert w["scenario"] == pytest.approx(420 * 1.05 * 0.98)
    run("whatif", "gmv", "--period", period, "--set", "uv=+10%", "--save", "plan_b", "-p", project)
    cmp = run("scenarios", "plan_a", "plan_b", "-p", project, "--format", "csv")
    assert "plan_a" in cmp and "plan_b" in cmp
    g = json.loads(run("goalseek", "gmv", "--period", period, "--goal", "+10%", "--driver", "conversion",
                       "-p", project, "--format", "json"))
    assert g["achieved"] == pytest.approx(462.0)
    assert "Elasticity" in run("sensitivity", "gmv", "--period", period, "-p", project)


def test_targets_and_anomalies(project: str, settings: Settings) -> None:
    tdir = settings.project_dir / "metrics" / "targets"
    tdir.mkdir(parents=True)
    (tdir / "q4.yaml").write_text("targets:\n  - {metric: gmv, period: 2026-10, value: 1000}\n", encoding="utf-8")
    rep = json.loads(run("targets", "--as-of", "2026-10-07", "-p", project, "--format", "json"))
    row = rep["rows"][0]
    assert row["actual"] == 420.0 and row["gap"] == -580.0 and row["elapsed_days"] == 7
    pts = json.loads(run("anomalies", "pv", "--from", "2026-10-01", "--to", "2026-10-07", "-p", project,
                         "--format", "json"))
    # No history before October: the first day with views stands out, the rest has no baseline spread.
    assert len(pts) == 7 and pts[0]["anomaly"] and pts[0]["baseline"] == 0.0


def test_errors_are_messages_not_tracebacks(project: str) -> None:
    env = {**os.environ, "YUNYING_LANGUAGE": "en"}
    cmd = [sys.executable, "-m", "yunying.cli", "metrics", "compute", "nope", "-p", project]
    if not (Path(sys.executable).parent / "yunying").exists():
        pytest.fail("the yunying entry point is not installed")
    res = subprocess.run([str(Path(sys.executable).parent / "yunying"), *cmd[3:]], capture_output=True, text=True,
                         env=env, timeout=120)
    assert res.returncode == 2
    assert "Unknown metric 'nope'" in res.stderr and "Traceback" not in res.stderr
    bad = Path(project) / "metrics" / "broken.yaml"
    bad.parent.mkdir(exist_ok=True)
    bad.write_text("metrics:\n  - name: x\n    label: {zh: x, en: x}\n    type: derived\n    formula: a +\n",
                   encoding="utf-8")
    res = subprocess.run([str(Path(sys.executable).parent / "yunying"), "metrics", "validate", "-p", project],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2 and "metrics/broken.yaml:2" in res.stderr and "Traceback" not in res.stderr


def test_vintage_command(project: str, settings: Settings) -> None:
    wh = Warehouse(settings, "duckdb")
    data.credit(wh)
    wh.close()
    out = json.loads(run("vintage", "--from", "2026-10-01", "--to", "2026-10-31", "--dpd", "7", "--mobs", "2",
                         "--as-of", "2027-01-31", "-p", project, "--format", "json"))
    assert out["rows"][0]["loans"] == 2 and out["rows"][0]["rates"] == [0.5, 0.5]
    assert "MOB2" in run("vintage", "--from", "2026-10-01", "--to", "2026-10-31", "-p", project)
