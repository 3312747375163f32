"""Every CSV yunying writes is safe to open in a spreadsheet (issue 13, item 13).

Formula-like text (``=HYPERLINK(…)``, ``@SUM(…)``, ``+cmd``, ``-2+3``, a leading tab or CR)
arrives through capture and import as event names and user ids; each exporter must write
it with a leading single quote. Driven through the web exports, the CLI's ``--format csv``
and ``--export-users``, ``segment export`` and ``quarantine export``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import re
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from tests.conftest import make_project
from yunying import clock
from yunying.appdb import open_appdb
from yunying.cli import app as cli_app
from yunying.config import Settings
from yunying.warehouse.engine import Warehouse
from yunying.web import accounts
from yunying.web.app import create_app

from .conftest import PASSWORD, sign_in

LINK = '=HYPERLINK("http://evil.example","click")'
EVIL = [LINK, "@SUM(1+1)", "+cmd|' /C calc'!A0", "-2+3", "\tx=1", "\rx=1"]
DAY0 = dt.datetime(2026, 3, 1, 2, 0)
NUMBER = re.compile(r"[+-]?(?:\d[\d,]*(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
runner = CliRunner()


def assert_safe(text: str, *expected: str) -> list[list[str]]:
    """No cell would run as a formula, and each expected payload is there, quoted."""
    rows = list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))
    for r in rows:
        for c in r:
            assert not (c[:1] in ("=", "+", "-", "@", "\t", "\r") and not NUMBER.fullmatch(c)), (c, r)
    cells = {c for r in rows for c in r}
    for e in expected:
        assert "'" + e in cells, (e, rows[:5])
    return rows


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """40 ordinary customers and the hostile ids, each with views and repeat orders."""
    settings = make_project(tmp_path_factory.mktemp("csvsafe"))
    rnd = random.Random(13)
    users = [f"u{i}" for i in range(40)] + EVIL
    ev: list[tuple[Any, ...]] = []
    od: list[tuple[Any, ...]] = []
    for u in users:
        days = sorted(rnd.sample(range(1, 60), 6))
        for d in [0, *days] if u in EVIL else days:
            ts = DAY0 + dt.timedelta(days=d, minutes=rnd.randrange(600))
            ev.append((f"e{len(ev)}", "view", u, ts, '{"src":"=1+1"}'))
            if u in EVIL or rnd.random() < 0.7:
                ev.append((f"e{len(ev)}", LINK, u, ts + dt.timedelta(minutes=1), None))
            if rnd.random() < 0.5:
                od.append((f"o{len(od)}", u, ts + dt.timedelta(minutes=2), Decimal(rnd.randrange(1000, 30000)) / 100))
        od.append((f"o{len(od)}", u, DAY0 + dt.timedelta(days=rnd.randrange(60)), Decimal("50.00")))
    c = list(zip(*ev, strict=True))
    o = list(zip(*od, strict=True))
    with Warehouse(settings) as wh:
        wh.append_arrow("events", pa.table({
            "event_id": c[0], "event": c[1], "user_id": c[2], "ts": c[3],
            "account_id": pa.array([None] * len(ev), pa.string()), "session_id": pa.array([None] * len(ev), pa.string()),
            "properties": pa.array(c[4], pa.string()),
        }))
        wh.append_arrow("users", pa.table({
            "user_id": users, "first_seen": [DAY0] * len(users), "channel": ["=cmd"] * len(users),
            "properties": pa.array([None] * len(users), pa.string()),
        }))
        wh.append_arrow("orders", pa.table({
            "order_id": o[0], "user_id": o[1], "ts": o[2], "amount": pa.array(o[3], pa.decimal128(18, 2)),
            "currency": ["CNY"] * len(od), "status": ["paid"] * len(od), "properties": pa.array([None] * len(od), pa.string()),
        }))
    return settings


def cli(settings: Settings, *args: str) -> str:
    r = runner.invoke(cli_app, [*args, "--project", str(settings.project_dir)], env={"YUNYING_LANGUAGE": "en"})
    assert r.exit_code == 0, r.output
    return r.stdout


def test_the_shared_rule() -> None:
    from yunying import csvsafe

    assert [csvsafe.cell(v) for v in ("=1", "+a", "-a", "@a", "\ta", "\ra", "a=1", "", "-5", "+3.5e4", "-1,234.50")] == [
        "'=1", "'+a", "'-a", "'@a", "'\ta", "'\ra", "a=1", "", "-5", "+3.5e4", "-1,234.50"]
    assert [csvsafe.cell(v) for v in (-5, 2.5, None, Decimal("-1.5"))] == [-5, 2.5, None, Decimal("-1.5")]
    assert all(csvsafe.unquote(csvsafe.cell(v)) == v for v in [*EVIL, "-5", "ok", "'quoted"])


def test_web_exports(shop: Settings) -> None:
    """The issue's path: the link arrives through capture, then the funnel export."""
    url = open_appdb(shop)
    accounts.add_user(url, "admin@example.com", PASSWORD, "admin")
    key = accounts.create_api_key(url, "sdk", "capture")[1]
    a = create_app(shop, flush_interval=None)
    try:
        c = TestClient(a, headers={"accept-language": "en"})
        csrf = sign_in(c, "admin@example.com")
        c.headers["X-CSRF-Token"] = csrf
        now = clock.now()
        r = c.post("/api/v1/capture", headers={"Authorization": f"Bearer {key}"}, json={"events": [
            {"event_id": "cap-1", "event": '=HYPERLINK("http://evil.example","captured")', "user_id": "=cmd()",
             "ts": (now - dt.timedelta(hours=1)).isoformat() + "Z"}]})
        assert r.json()["accepted"] == 1
        assert c.post("/api/v1/capture/flush").json()["moved"] == 1
        start = (now - dt.timedelta(days=2)).date().isoformat()
        q = {"steps": [{"event": '=HYPERLINK("http://evil.example","captured")'}, {"event": "view"}],
             "dates": {"from": start, "to": now.date().isoformat()}}
        r = c.get("/analysis/funnel/export.csv?query=" + quote(json.dumps(q)))
        assert r.status_code == 200, r.text
        assert_safe(r.content.decode("utf-8-sig"), '=HYPERLINK("http://evil.example","captured")')
        q = {"steps": [{"event": "view"}, {"event": LINK}], "dates": {"from": "2026-03-01", "to": "2026-04-30"},
             "breakdown": {"property": "src"}}
        r = c.get("/analysis/funnel/export.csv?query=" + quote(json.dumps(q)))
        assert r.status_code == 200, r.text
        assert_safe(r.content.decode("utf-8-sig"), LINK, "=1+1")
        q = {"start_event": "view", "dates": {"from": "2026-03-01", "to": "2026-03-31"}, "breakdown": {"property": "src"}}
        r = c.get("/analysis/retention/export.csv?query=" + quote(json.dumps(q)))
        assert r.status_code == 200, r.text
        assert_safe(r.text, "=1+1")
        r = c.get("/analysis/rfm/export.csv?query=" + quote(json.dumps({"as_of": "2026-04-30"})))
        assert r.status_code == 200, r.text
        assert_safe(r.content.decode("utf-8-sig"))
        r = c.get("/analysis/rfm/members.csv?query=" + quote(json.dumps({"as_of": "2026-04-30"})))
        assert r.status_code == 200, r.text
        assert_safe(r.text, *EVIL)
        # A class named in Chinese (as the docs allow) used to fail the answer's header.
        r = c.get("/analysis/rfm/members.csv?group=" + quote("重要价值客户") + "&query=" + quote(json.dumps({"as_of": "2026-04-30"})))
        assert r.status_code == 200, r.text
        assert "filename*=UTF-8''rfm-%E9%87%8D" in r.headers["content-disposition"]
        assert_safe(r.text)
    finally:
        a.state.journal.close()


def test_cli_format_csv_and_export_users(shop: Settings, tmp_path: Path) -> None:
    period = ("--from", "2026-03-01", "--to", "2026-04-30")
    assert_safe(cli(shop, "funnel", "view", LINK, *period, "--format", "csv"), LINK)
    assert_safe(cli(shop, "trends", "view", "--by", "src", *period, "--format", "csv"), "=1+1")
    for args in (
        ("funnel", "view", LINK, *period, "--export-step", "2", "--converted"),
        ("retention", "--start", "view", "--from", "2026-03-01", "--to", "2026-03-31", "--export-period", "0"),
        ("lifecycle", "--grain", "month", *period, "--stage", "new", "--period", "2026-03-01"),
        ("rfm", "--as-of", "2026-04-30"),
        ("clv", "--calibration-end", "2026-04-30"),
    ):
        out = tmp_path / f"{args[0]}.csv"
        cli(shop, *args, "--export-users", str(out))
        rows = assert_safe(out.read_bytes().decode("utf-8"), *EVIL)
        assert rows[0][0] == "user_id"


def test_export_users_helper(shop: Settings, tmp_path: Path) -> None:
    from yunying.analytics.common import export_users

    with Warehouse(shop) as wh:
        n = export_users(wh, wh.table("users").select("user_id"), tmp_path / "u.csv")
    assert n == 46
    assert_safe((tmp_path / "u.csv").read_bytes().decode("utf-8"), *EVIL)


def test_segment_export_round_trips_through_tags(shop: Settings, tmp_path: Path) -> None:
    ids = tmp_path / "ids.csv"
    TAGGED = EVIL[:4]  # tags strip surrounding whitespace, so not the tab and CR ones
    with ids.open("w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["user_id"])
        w.writerows([u] for u in TAGGED)
    cli(shop, "tag", "add", "evil", "--csv", str(ids))
    seg = tmp_path / "seg.yaml"
    seg.write_text("name: evil_ones\nrule:\n  tag: evil\n", encoding="utf-8")
    cli(shop, "segment", "create", str(seg))
    out = tmp_path / "members.csv"
    cli(shop, "segment", "export", "evil_ones", "--out", str(out))
    assert_safe(out.read_bytes().decode("utf-8"), *TAGGED)
    # The export loads back as the same users (the quote is undone for yunying's own lists).
    cli(shop, "tag", "add", "evil2", "--csv", str(out))
    seg.write_text("name: evil_again\nrule:\n  tag: evil2\n", encoding="utf-8")
    cli(shop, "segment", "create", str(seg))
    again = tmp_path / "again.csv"
    cli(shop, "segment", "export", "evil_again", "--out", str(again))
    assert sorted(r[0] for r in list(csv.reader(io.StringIO(again.read_bytes().decode("utf-8"))))[1:]) == sorted("'" + u for u in TAGGED)


def test_quarantine_export(tmp_path: Path) -> None:
    settings = make_project(tmp_path)
    data = tmp_path / "events.csv"
    data.write_text(
        "event_id,event,user_id,ts\n"
        f'q1,"{LINK.replace(chr(34), chr(34) * 2)}",u1,not-a-time\n'
        "q2,@SUM(1+1),-2+3,also-bad\n"
        "q3,view,u3,2026-03-01T00:00:00Z\n"
        "=1+1,view,u4,2026-03-01T00:00:00Z,extra\n",
        encoding="utf-8",
    )
    cli(settings, "import", "events", str(data))
    out = tmp_path / "fix.csv"
    doc = json.loads(cli(settings, "quarantine", "list", "-f", "json"))
    cli(settings, "quarantine", "export", doc["imports"][-1]["import_id"], str(out))
    rows = assert_safe(out.read_bytes().decode("utf-8"), LINK, "@SUM(1+1)", "-2+3", "=1+1")
    assert rows[0] == ["event_id", "event", "user_id", "ts"]
