"""``yunying experiment`` end to end: create, list, assign, analyze, power; clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
from typer.testing import CliRunner

from tests.conftest import make_project
from yunying.cli import app
from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse

from .data import T0

runner = CliRunner()


def _users(project: Path, n: int) -> None:
    with Warehouse(make_project(project), "duckdb") as wh:
        wh.append_arrow(
            "users",
            pa.table({
                "user_id": [f"u{i}" for i in range(n)],
                "first_seen": pa.array([T0] * n, type=pa.timestamp("us")),
                "channel": [None] * n, "properties": [None] * n,
            }),
        )


def test_create_list_assign_analyze(tmp_path: Path) -> None:
    p = str(tmp_path)
    _users(tmp_path, 2000)
    r = runner.invoke(app, [
        "experiment", "create", "banner", "--project", p, "--variants", "control:1,big:1,small:1",
        "--metric", "paid:proportion:orders", "--metric", "clicks:mean:events:click:count",
        "--holdout", "0.1", "--layer", "home", "--layer-range", "0:0.5",
    ])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "experiments" / "banner.yaml").exists()
    r = runner.invoke(app, ["experiment", "list", "--project", p, "--format", "json"])
    rows = json.loads(r.stdout)
    assert rows[0]["id"] == "banner" and rows[0]["metrics"] == "paid, clicks"
    r = runner.invoke(app, [
        "experiment", "assign", "banner", "--project", p, "--format", "json", "--at", "2026-03-02T08:00:00",
    ])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["eligible"] == 2000 and 800 < doc["assigned"] < 1200
    assert set(doc["counts"]) == {"control", "big", "small", "holdout"}
    r = runner.invoke(app, ["experiment", "analyze", "banner", "--project", p, "--format", "json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert [v["variant"] for v in res["variants"]] == ["control", "big", "small", "holdout"]
    assert res["holdout_users"] == doc["counts"]["holdout"]
    assert {(m["metric"], m["variant"]) for m in res["metrics"]} == {
        (m, v) for m in ("paid", "clicks") for v in ("big", "small")
    }
    r = runner.invoke(app, ["experiment", "analyze", "banner", "--project", p, "--format", "csv",
                            "--baseline", "holdout", "--method", "bayesian"])
    assert r.exit_code == 0 and "big" in r.stdout
    # A second experiment overlapping in the layer is refused with a readable message.
    r = runner.invoke(app, ["experiment", "create", "other", "--project", p, "--layer", "home",
                            "--layer-range", "0.4:0.8"])
    assert isinstance(r.exception, YunyingError) and "overlap" in r.exception.message("en")


def test_bad_input_gives_clear_errors(tmp_path: Path) -> None:
    make_project(tmp_path)
    p = str(tmp_path)
    cases = [
        (["experiment", "create", "x", "-p", p, "--variants", "a:1"], "experiments.bad_variants"),
        (["experiment", "create", "x", "-p", p, "--metric", "oops"], "experiments.bad_metric"),
        (["experiment", "create", "bad id!", "-p", p], "experiments.invalid"),
        (["experiment", "create", "x", "-p", p, "--metric", "v:mean:events:view:sum:bad name"], "experiments.invalid"),
        (["experiment", "analyze", "x", "-p", p, "--method", "magic"], "experiments.not_found"),
        (["experiment", "analyze", "nope", "-p", p], "experiments.not_found"),
        (["experiment", "power", "--mde", "0.01"], "experiments.invalid"),
    ]
    for args, key in cases:
        r = runner.invoke(app, args)
        assert isinstance(r.exception, YunyingError), (args, r.output)
        assert r.exception.key == key
        assert r.exception.message("zh_CN") != key  # translated in both catalogs
    (tmp_path / "experiments").mkdir(exist_ok=True)
    (tmp_path / "experiments" / "broken.yaml").write_text("id: broken\nvariants: [1\n", encoding="utf-8")
    r = runner.invoke(app, ["experiment", "list", "-p", p])
    assert isinstance(r.exception, YunyingError) and r.exception.key == "experiments.bad_yaml"


def test_power_command() -> None:
    r = runner.invoke(app, ["experiment", "power", "--baseline", "0.1", "--mde", "0.01", "--format", "json"])
    assert r.exit_code == 0, r.output
    assert 14_700 <= json.loads(r.stdout)["per_variant"] <= 14_800
