"""The README's loop on the shipped examples: segment → voucher → campaign → review.

Runs the real CLI in-process on a small demo company, so the tour and the example files
cannot drift from the code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from yunying.cli import app

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
runner = CliRunner()


def _ok(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, f"{args}: {r.output}"
    return r.stdout


def test_the_operations_loop_on_the_examples(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    shutil.copytree(EXAMPLES, tmp_path / "examples")
    project = tmp_path / "demo-company"
    _ok("demo", "--project", str(project), "--users", "3000", "--days", "120")
    monkeypatch.chdir(project)
    seg = json.loads(
        _ok("segment", "create", "../examples/segment-lapsed-buyers.yaml", "--as-of", "2026-10-31", "-f", "json")
    )
    members = seg["size"]
    assert members > 0 and seg["joined"] == members
    _ok("tool", "create", "../examples/tool-winback-voucher.yaml")
    _ok("campaign", "create", "../examples/campaign-winback.yaml", "--by", "小王")
    _ok("campaign", "approve", "winback", "--by", "主管", "--role", "admin")
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
