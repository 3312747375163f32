"""The README's loop on the examples `yunying demo` writes: segment → voucher → campaign → review.

Runs the real CLI in-process on a small demo company, so the tour and the example files
cannot drift from the code, under today's clock and under clocks one and three years
ahead (the demo, its examples and every campaign check read the one clock).
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yunying import clock
from yunying.cli import app

runner = CliRunner()


def _ok(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, f"{args}: {r.output}"
    return r.stdout


@pytest.mark.parametrize(
    "at",
    [None, dt.datetime(2027, 12, 1, 3, 0), dt.datetime(2029, 6, 30, 15, 30)],
    ids=["today", "2027-12-01", "2029-06-30"],
)
def test_the_operations_loop_on_the_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: dt.datetime | None
) -> None:
    with clock.frozen(at or clock.now(), ticking=True):
        _loop(tmp_path, monkeypatch)


def _loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "demo-company"
    _ok("demo", "--project", str(project), "--users", "3000", "--days", "120")
    monkeypatch.chdir(project)
    yesterday = clock.today("Asia/Shanghai") - dt.timedelta(days=1)
    status = json.loads(_ok("status", "-f", "json"))
    events = next(t for t in status["tables"] if t["table"] == "events")
    assert str(events["last"])[:10] in (yesterday.isoformat(), (yesterday - dt.timedelta(days=1)).isoformat())
    seg = json.loads(_ok("segment", "create", "examples/segment-lapsed-buyers.yaml", "-f", "json"))
    members = seg["size"]
    assert members > 0 and seg["joined"] == members
    _ok("tool", "create", "examples/tool-winback-voucher.yaml")
    _ok("campaign", "create", "examples/campaign-winback.yaml", "--by", "小王")
    _ok("campaign", "approve", "winback", "--by", "主管")
    _ok("campaign", "schedule", "winback", "--by", "小王")
    _ok("campaign", "start", "winback", "--by", "小王")
    assigned = json.loads(_ok("campaign", "assign", "winback", "--by", "小王", "-f", "json"))
    assert assigned["treatment"] + assigned["holdout"] == members
    assert assigned["holdout"] > 0
    _ok("tool", "flush")
    _ok("campaign", "end", "winback", "--by", "小王")
    _ok("report", "campaign", "winback", "--format", "html")
    html = (project / "reports" / "campaign-winback.html").read_text(encoding="utf-8")
    assert "winback" in html and "<svg" in html
    funnel = json.loads(_ok("funnel", "view", "add_to_cart", "pay", "--last", "30d", "-f", "json"))
    assert funnel["steps"][0]["users"] > 0 and funnel["steps"][2]["users"] > 0
