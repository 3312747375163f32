"""``yunying segment …`` and ``yunying tag …`` through the Typer app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import make_project
from yunying.cli import app
from yunying.errors import YunyingError
from yunying.warehouse.engine import open_warehouse

from .fixture_data import load

runner = CliRunner()
AS_OF = ["--as-of", "2026-10-31 08:00:00"]  # local time = 00:00 UTC


def test_segment_and_tag_commands(tmp_path: Path) -> None:
    p = ["--project", str(tmp_path)]
    with open_warehouse(make_project(tmp_path)) as wh:
        load(wh)
    users = tmp_path / "vip.csv"
    users.write_text("user_id\nu1\nu3\n", encoding="utf-8")
    r = runner.invoke(app, ["tag", "add", "vip", "--csv", str(users), *p, "-f", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["changed"] == 2
    r = runner.invoke(app, ["tag", "list", *p, "-f", "csv"])
    assert r.stdout.splitlines()[1] == "vip,2"

    seg = tmp_path / "seg.yaml"
    seg.write_text(
        "name: wechat_not_vip\nrefresh_every_minutes: 30\nrule:\n  and:\n"
        "    - property: {field: channel, value: wechat}\n    - not: {tag: vip}\n",
        encoding="utf-8",
    )
    r = runner.invoke(app, ["segment", "preview", str(seg), *p, *AS_OF, "-f", "json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["size"] == 1
    r = runner.invoke(app, ["segment", "preview", "--rule", "{lifecycle: {stage: dormant}}", *p, *AS_OF, "-f", "json"])
    assert json.loads(r.stdout)["sample"] == ["u4"]
    r = runner.invoke(app, ["segment", "create", str(seg), *p, *AS_OF, "-f", "json"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["segment", "list", *p, "-f", "json"])
    listed = json.loads(r.stdout)["segments"]
    assert [(s["name"], s["size"]) for s in listed] == [("wechat_not_vip", 1)]
    out = tmp_path / "m.csv"
    r = runner.invoke(app, ["segment", "export", "wechat_not_vip", "--out", str(out), *p])
    assert r.exit_code == 0 and out.read_text().splitlines()[1].startswith("u4,")
    r = runner.invoke(app, ["segment", "refresh", "--due", *p, *AS_OF, "-f", "json"])
    assert json.loads(r.stdout)["results"] == []
    r = runner.invoke(app, ["tag", "remove", "vip", "u1", *p, "-f", "json"])
    assert json.loads(r.stdout)["changed"] == 1
    r = runner.invoke(app, ["segment", "refresh", "wechat_not_vip", *p, *AS_OF, "-f", "json"])
    assert json.loads(r.stdout)["joined"] == 1
    r = runner.invoke(app, ["segment", "history", "wechat_not_vip", *p, "-f", "json"])
    assert [e["user_id"] for e in json.loads(r.stdout)["entries"]] == ["u4", "u1"]


def test_bad_rule_is_a_clear_error(tmp_path: Path) -> None:
    make_project(tmp_path)
    r = runner.invoke(
        app, ["segment", "preview", "--rule", "{and: [{event: {name: x, times: 0}}]}", "--project", str(tmp_path)]
    )
    assert isinstance(r.exception, YunyingError)
    assert "rule.and[0].event.times" in r.exception.message("en")
