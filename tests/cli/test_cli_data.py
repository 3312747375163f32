"""The CLI end to end in a subprocess-free runner: init, tables, describe, demo, overview."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from yunying.cli import app

runner = CliRunner()


def test_init_tables_describe(tmp_path: Path) -> None:
    r = runner.invoke(app, ["init", "--project", str(tmp_path)])
    assert r.exit_code == 0 and (tmp_path / "yunying.toml").exists()
    r = runner.invoke(app, ["init", "--project", str(tmp_path)])
    assert r.exit_code == 0
    r = runner.invoke(app, ["tables", "--format", "json"])
    assert {row["table"] for row in json.loads(r.stdout)} >= {"events", "orders"}
    r = runner.invoke(app, ["describe", "orders", "--format", "csv"])
    assert "amount,decimal" in r.stdout


def test_demo_then_overview_json(tmp_path: Path) -> None:
    r = runner.invoke(app, ["demo", "--project", str(tmp_path), "--users", "500", "--days", "60"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["overview", "--project", str(tmp_path), "--format", "json"])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["headline"]["users"] == 500
    assert float(doc["headline"]["gmv"]) > 0
    # Running the demo again replaces, never duplicates.
    runner.invoke(app, ["demo", "--project", str(tmp_path), "--users", "500", "--days", "60"])
    r = runner.invoke(app, ["status", "--project", str(tmp_path), "--format", "json"])
    assert json.loads(r.stdout)["tables"][1]["rows"] == 500
