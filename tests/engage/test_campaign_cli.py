"""``yunying campaign …`` end to end through the Typer app (SQLite)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from tests.conftest import make_project
from yunying.cli import app
from yunying.errors import YunyingError
from yunying.warehouse.engine import open_warehouse

from .test_campaigns import add_users

runner = CliRunner()


def run(*args: str) -> dict:  # type: ignore[type-arg]
    r = runner.invoke(app, [*args, "-f", "json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)  # type: ignore[no-any-return]


def test_campaign_commands(tmp_path: Path) -> None:
    p = ["--project", str(tmp_path)]
    with open_warehouse(make_project(tmp_path)) as wh:
        add_users(wh, 0, 200)
    seg = tmp_path / "seg.yaml"
    seg.write_text("name: app_users\nrule: {property: {field: channel, value: app}}\n", encoding="utf-8")
    run("segment", "create", str(seg), *p)
    camp = tmp_path / "camp.yaml"
    camp.write_text(
        "id: w1\nname: 冬季回流\ngoal_metric: gmv\nsegment: app_users\n"
        "starts_at: 2026-11-01 00:00:00\nends_at: 2099-01-01 00:00:00\n"
        "budget: 3000\nchannel: sms\nholdout_share: 0.1\nowner: 小李\n",
        encoding="utf-8",
    )
    assert run("campaign", "create", str(camp), *p)["status"] == "draft"
    r = runner.invoke(app, ["campaign", "schedule", "w1", "--by", "小李", *p])
    assert isinstance(r.exception, YunyingError) and r.exception.key == "campaign.needs_approval"
    assert run("campaign", "approve", "w1", "--by", "主管", "--role", "admin", *p)["approved_by"] == "主管"
    assert run("campaign", "schedule", "w1", "--by", "小李", *p)["status"] == "scheduled"
    assert run("campaign", "start", "w1", "--by", "小李", *p)["status"] == "running"
    first = run("campaign", "assign", "w1", "--by", "小李", *p)
    assert first["new_events"] == 200 and first["treatment"] + first["holdout"] == 200
    assert run("campaign", "assign", "w1", "--by", "小李", *p)["new_events"] == 0
    assert run("campaign", "end", "w1", "--by", "小李", *p)["status"] == "ended"
    done = run("campaign", "review", "w1", "--by", "分析", "--role", "analyst", "--notes", "ok", *p)
    assert done["status"] == "reviewed"
    assert [c["id"] for c in run("campaign", "list", *p)["campaigns"]] == ["w1"]
    shown = run("campaign", "show", "w1", *p)
    assert [x["action"] for x in shown["transitions"]] == [
        "create", "approve", "schedule", "start", "assign", "assign", "end", "review"
    ]
    r = runner.invoke(app, ["campaign", "show", "w1", *p])
    assert r.exit_code == 0 and "w1" in r.stdout
    r = runner.invoke(app, ["campaign", "create", "--id", "x", *p])
    assert isinstance(r.exception, YunyingError) and r.exception.key == "campaign.need_file_or_options"


def test_the_cli_acts_as_the_local_owner(tmp_path: Path) -> None:
    """``--role`` grants nothing: the role recorded is ``owner``, the audit log says
    ``local-owner:<OS user>``, and a deprecated ``--role`` is accepted with a warning."""
    from yunying.appdb import open_appdb
    from yunying.cli.campaigns import local_user
    from yunying.web.models import AuditEntry

    p = ["--project", str(tmp_path)]
    settings = make_project(tmp_path)
    with open_warehouse(settings) as wh:
        add_users(wh, 0, 20)
    seg = tmp_path / "seg.yaml"
    seg.write_text("name: app_users\nrule: {property: {field: channel, value: app}}\n", encoding="utf-8")
    run("segment", "create", str(seg), *p)
    camp = tmp_path / "camp.yaml"
    camp.write_text(
        "id: o1\nname: 回流\ngoal_metric: gmv\nsegment: app_users\n"
        "starts_at: 2026-11-01 00:00:00\nends_at: 2099-01-01 00:00:00\n"
        "budget: 300\nchannel: sms\nowner: 小李\n",
        encoding="utf-8",
    )
    run("campaign", "create", str(camp), *p)
    # A viewer's role typed on the command line changes nothing: the local owner approves.
    r = runner.invoke(app, ["campaign", "approve", "o1", "--by", "主管", "--role", "viewer", *p, "-f", "json"])
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert (out["approved_by"], out["approved_role"]) == ("主管", "owner")
    assert "--role" in r.stderr
    # Without --by the OS user is recorded.
    assert run("campaign", "schedule", "o1", *p)["transitions"][-1]["actor"] == local_user()
    assert {x["role"] for x in run("campaign", "show", "o1", *p)["transitions"]} == {"owner"}
    from yunying.appdb import session_scope

    with session_scope(open_appdb(settings)) as s:
        log = [(a.actor, a.action, a.target, a.detail) for a in s.query(AuditEntry).order_by(AuditEntry.id)]
    owner = f"local-owner:{local_user()}"
    assert (owner, "campaign.approve", "o1", "by=主管; role=owner; via=cli") in log
    assert [a[1] for a in log if a[0] == owner] == ["campaign.create", "campaign.approve", "campaign.schedule"]
