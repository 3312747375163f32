"""`yunying demo` ends its data yesterday by the one clock, or on `--end`, and writes the
tour's example files with dates around that day."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from typer.testing import CliRunner

from yunying import clock
from yunying.cli import app
from yunying.errors import YunyingError

runner = CliRunner()


def _run(*args: str) -> str:
    r = runner.invoke(app, list(args))
    assert r.exit_code == 0, r.output
    return r.stdout


def _orders_last(project: Path) -> str:
    status = json.loads(_run("status", "--project", str(project), "-f", "json"))
    return next(t["last"] for t in status["tables"] if t["table"] == "orders")


def test_default_end_is_yesterday_by_the_clock(tmp_path: Path) -> None:
    # 2031-03-01 02:00 UTC is 10:00 in Shanghai: yesterday there is 2031-02-28.
    with clock.frozen(dt.datetime(2031, 3, 1, 2, 0)):
        _run("demo", "--project", str(tmp_path / "p"), "--users", "500", "--days", "60")
        assert _orders_last(tmp_path / "p") < "2031-02-28T16:00:00"
        assert _orders_last(tmp_path / "p") > "2031-02-27T16:00:00"
        campaign = (tmp_path / "p" / "examples" / "campaign-winback.yaml").read_text(encoding="utf-8")
        assert "starts_at: 2031-01-30 00:00:00" in campaign
        assert "ends_at: 2031-03-30 23:59:59" in campaign
        tool = (tmp_path / "p" / "examples" / "tool-winback-voucher.yaml").read_text(encoding="utf-8")
        assert "ends_at: 2031-03-31T00:00:00" in tool
        assert (tmp_path / "p" / "examples" / "segment-lapsed-buyers.yaml").exists()
        assert "2031-02-28 09:30:00" in (tmp_path / "p" / "examples" / "my-events.csv").read_text(encoding="utf-8")


def test_end_pins_the_company_whatever_the_clock(tmp_path: Path) -> None:
    dumps = []
    for i, at in enumerate([dt.datetime(2027, 1, 5), dt.datetime(2030, 7, 9)]):
        with clock.frozen(at):
            p = tmp_path / f"p{i}"
            _run("demo", "--project", str(p), "--users", "400", "--days", "60", "--end", "2026-10-31")
            dumps.append(_run("overview", "--project", str(p), "-f", "json"))
    assert dumps[0] == dumps[1]
    assert json.loads(dumps[0])["headline"]["as_of"] == "2026-10-31"


def test_last_and_from_together_are_refused(tmp_path: Path) -> None:
    _run("demo", "--project", str(tmp_path / "p"), "--users", "300", "--days", "60")
    r = runner.invoke(app, ["trends", "view", "--project", str(tmp_path / "p"), "--last", "7d", "--from", "-3d"])
    assert isinstance(r.exception, YunyingError) and r.exception.key == "time.last_and_from"
    r = runner.invoke(app, ["trends", "view", "--project", str(tmp_path / "p"), "--last", "soon"])
    assert isinstance(r.exception, YunyingError) and r.exception.key == "time.bad_range"
    out = json.loads(_run("trends", "view", "--project", str(tmp_path / "p"), "--last", "last-week", "-f", "json"))
    assert len(out["series"][0]["points"]) == 7
