"""What-if and goal-seek refuse impossible changes, in the CLI and the API (issue 13, item 7)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.metrics import data
from yunying.appdb import open_appdb
from yunying.config import Settings, load_settings
from yunying.warehouse.engine import Warehouse
from yunying.web.accounts import create_api_key
from yunying.web.app import create_app

YUNYING = str(Path(sys.executable).parent / "yunying")
PERIOD = "2026-10-01..2026-10-07"


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    d = tmp_path_factory.mktemp("whatif")
    (d / "yunying.toml").write_text('language = "en"\n[metrics]\nlibraries = ["ecommerce", "app"]\n', encoding="utf-8")
    s = load_settings(d)
    wh = Warehouse(s, "duckdb")
    data.shop(wh)
    wh.close()
    return s


def cli(project: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "YUNYING_LANGUAGE": "en"}
    return subprocess.run([YUNYING, "metrics", *args, "-p", str(project.project_dir)], capture_output=True,
                          text=True, env=env, timeout=120)


@pytest.mark.parametrize("change,words", [
    ("aov=-200%", ["below zero"]),
    ("conversion=-100.5%", ["below zero"]),
    ("aov=-1000000", ["below zero"]),
    ("aov=nan%", ["is not a change"]),
    ("aov=nan", ["is not a change"]),
    ("aov=inf%", ["is not a change"]),
    ("aov=+Infinity", ["is not a change"]),
    ("aov=1e999", ["is not a change"]),
])
def test_cli_whatif_refuses(project: Settings, change: str, words: list[str]) -> None:
    res = cli(project, "whatif", "gmv", "--period", PERIOD, "--set", change, "--format", "json")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert all(w in res.stderr for w in words), res.stderr
    assert "Traceback" not in res.stderr


def test_cli_whatif_minus_100_percent_is_the_floor(project: Settings) -> None:
    res = cli(project, "whatif", "gmv", "--period", PERIOD, "--set", "aov=-100%", "--format", "json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["scenario"] == 0


@pytest.mark.parametrize("goal", ["-200%", "nan%", "inf", "-1000000"])
def test_cli_goalseek_refuses(project: Settings, goal: str) -> None:
    res = cli(project, "goalseek", "gmv", "--period", PERIOD, "--goal", goal, "--driver", "conversion")
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr and res.stderr.strip()


def test_api_whatif_and_goalseek_refuse(project: Settings) -> None:
    open_appdb(project)
    key = create_api_key(project.appdb_url, "whatif", "read")[1]
    app = create_app(project, flush_interval=None)
    with TestClient(app, headers={"Authorization": f"Bearer {key}", "accept-language": "en"},
                    raise_server_exceptions=False) as c:
        for change in ("-200%", "nan%", "inf%", "-1e9"):
            r = c.post("/api/v1/metrics/whatif", json={"metric": "gmv", "period": PERIOD, "changes": {"aov": change}})
            assert r.status_code == 400, (change, r.text)
            assert r.json()["error"] in ("metrics.change_negative", "metrics.bad_change")
        ok = c.post("/api/v1/metrics/whatif", json={"metric": "gmv", "period": PERIOD, "changes": {"aov": "-50%"}})
        assert ok.status_code == 200 and ok.json()["scenario"] == pytest.approx(210)
        for goal in ("-200%", "nan%"):
            r = c.post("/api/v1/metrics/goalseek", json={"metric": "gmv", "period": PERIOD, "goal": goal, "driver": "conversion"})
            assert r.status_code == 400, (goal, r.text)
    app.state.journal.close()
