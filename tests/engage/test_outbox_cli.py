"""Outbox → warehouse (idempotent re-flush), the CLI end to end, migrations match the models."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from typer.testing import CliRunner

from tests.engage.conftest import spec, uid
from yunying.appdb import Base, engine_for, migrate, session_scope
from yunying.cli import app
from yunying.config import Settings
from yunying.engage import codes
from yunying.engage import service as S
from yunying.engage.models import Outbox
from yunying.engage.outbox import flush_into, flush_outbox
from yunying.engage.rules import Order, OrderLine
from yunying.engage.schemas import IssueRequest, RedeemRequest
from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse

AT = dt.datetime(2026, 11, 10)


def test_flush_outbox_is_idempotent(settings: Settings, wh: Warehouse) -> None:
    url = settings.appdb_url
    migrate(url)
    t = S.create_tool(url, spec("cashback", {"amount": "3"}))
    g = S.issue(url, IssueRequest(key=uid("i"), tool_id=t.id, user_id="u1", at=AT))
    S.redeem(url, RedeemRequest(key=uid("r"), tool_id=t.id, user_id="u1", grant_id=g.grant_id, at=AT,
                                order=Order(order_id="o1", lines=[OrderLine(product_id="p", amount=Decimal(9))])))
    assert flush_into(url, wh).appended == 2
    # A crash after appending but before marking sent: the re-flush appends nothing twice.
    with session_scope(url) as s:
        s.execute(sa.update(Outbox).values(sent_at=None))
    again = flush_into(url, wh)
    assert again.sent == 2 and again.appended == 0
    ev = wh.execute(wh.table("events").order_by("event_id"))
    assert list(ev["event"]) == ["coupon_issued", "cashback_credited"]
    props = json.loads(ev["properties"].iloc[1])
    assert props["tool_id"] == t.id and props["campaign_id"] == "camp-1" and props["amount"] == "3.00"
    assert flush_into(url, wh).sent == 0


def test_cli_end_to_end(settings: Settings, tmp_path: Path) -> None:
    r = CliRunner()
    p = ["-p", str(settings.project_dir)]
    f = tmp_path / "sale.yaml"
    f.write_text("id: s1\nkind: flash_sale\nname: 秒杀\nstarts_at: 2026-11-11T00:00:00\n"
                 "ends_at: 2026-11-11T01:00:00\nstock: 2\nper_user_limit: 1\n"
                 "rules: {price: 9.9, list_price: 99}\n", encoding="utf-8")
    assert r.invoke(app, ["tool", "create", str(f), *p]).exit_code == 0
    ok = r.invoke(app, ["tool", "redeem", "s1", "-u", "a", "--key", "k1", "--at", "2026-11-11T00:59:59",
                        "-f", "json", *p])
    assert ok.exit_code == 0, ok.output
    assert json.loads(ok.output)["amount"] == "89.10"
    replay = r.invoke(app, ["tool", "redeem", "s1", "-u", "a", "--key", "k1", "-f", "json", *p])
    assert json.loads(replay.output)["replayed"] is True
    late = r.invoke(app, ["tool", "redeem", "s1", "-u", "b", "--at", "2026-11-11T01:00:00", *p])
    assert isinstance(late.exception, YunyingError) and late.exception.key == "engage.outside_window"
    # The real command: a clear message, exit 2, no traceback.
    env = {**os.environ, "YUNYING_LANGUAGE": "en"}
    bad = subprocess.run([sys.executable, "-c", "from yunying.cli import main; main()", "tool", "redeem", "s1",
                          "-u", "b", "--at", "2026-11-11T01:00:00", *p], capture_output=True, text=True, env=env)
    assert bad.returncode == 2 and "valid from" in bad.stderr and "Traceback" not in bad.stderr
    csv = r.invoke(app, ["tool", "list", "-f", "csv", *p])
    assert "s1,flash_sale" in csv.output and ",1,1," in csv.output
    led = r.invoke(app, ["tool", "ledger", "-f", "json", *p])
    assert json.loads(led.output)["unbalanced"] == []
    out = tmp_path / "codes.txt"
    assert r.invoke(app, ["tool", "codes", "s1", "-n", "50", "--out", str(out), *p]).exit_code == 0
    assert all(codes.well_formed(c) for c in out.read_text().split())
    assert r.invoke(app, ["points", "earn", "a", "--points", "10", "--at", "2026-01-01T00:00:00", *p]).exit_code == 0
    st = r.invoke(app, ["points", "statement", "a", "-f", "json", *p])
    assert json.loads(st.output)["balance"] == 10
    assert r.invoke(app, ["tier", "set", "普通=0", "银卡=10", *p]).exit_code == 0
    ev = r.invoke(app, ["tier", "evaluate", "--at", "2026-01-02T00:00:00", "-f", "json", *p])
    assert json.loads(ev.output)["changes"][0]["new"] == "银卡"
    assert flush_outbox(settings).sent >= 2


def test_migration_matches_models(settings: Settings) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = settings.appdb_url
    migrate(url)
    with engine_for(url).connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
    mine = [d for d in diff if "engage_" in repr(d)]
    assert mine == []


def test_million_codes_are_fast_and_unique() -> None:
    t = time.perf_counter()
    batch = codes.generate(1_000_000)
    assert time.perf_counter() - t < 10
    assert len(batch) >= 999_990 and len(set(batch)) == len(batch)
    assert all(codes.well_formed(c) for c in batch[:1000])
    assert not codes.well_formed(batch[0][:-1] + ("0" if batch[0][-1] != "0" else "1"))
