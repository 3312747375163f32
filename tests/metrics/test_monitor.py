"""Targets with pacing, anomaly detection and alert rules, with a real webhook receiver."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.metrics import data
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.metrics import (
    AlertRule,
    Target,
    check_alerts,
    detect,
    load_alerts,
    load_registry,
    load_targets,
    send_webhook,
    target_status,
)
from yunying.metrics.spec import Registry
from yunying.warehouse.engine import Warehouse

START = dt.date(2026, 9, 7)  # a Monday
LAST = dt.date(2026, 10, 11)  # Sunday, five weeks later


def weekly(day: dt.date) -> int:
    """Weekends are twice as busy, with a small wobble that repeats."""
    base = 20 if day.weekday() >= 5 else 10
    return base + (day.toordinal() % 3) - 1


def load_traffic(wh: Warehouse, planted: dict[dt.date, int] | None = None) -> None:
    rows = []
    d = START
    while d <= LAST:
        n = (planted or {}).get(d, weekly(d))
        for i in range(n):
            rows.append({"event": "view", "user_id": f"u{i}", "ts": dt.datetime(d.year, d.month, d.day, 3)})
        d += dt.timedelta(days=1)
    data.load(wh, "events", rows)


@pytest.fixture
def reg(settings: Settings) -> Registry:
    return load_registry(settings, ["ecommerce"])


def test_detect_ignores_weekly_seasonality_and_finds_a_spike() -> None:
    series = [(START + dt.timedelta(days=i), float(weekly(START + dt.timedelta(days=i)))) for i in range(35)]
    assert not any(a.anomaly for a in detect(series, START + dt.timedelta(days=28)))
    bad = list(series)
    bad[-1] = (bad[-1][0], 5.0)  # a Sunday at a quarter of normal
    hits = [a for a in detect(bad, START + dt.timedelta(days=28)) if a.anomaly]
    assert [a.day for a in hits] == [LAST] and hits[0].score is not None and hits[0].score < -3.5
    assert not any(a.anomaly for a in detect(bad, START + dt.timedelta(days=28), direction="up"))


def test_alert_fires_on_planted_anomaly_only(wh: Warehouse, reg: Registry) -> None:
    load_traffic(wh, {dt.date(2026, 10, 10): 4})
    rule = AlertRule(name="pv_drop", metric="pv", kind="anomaly", direction="down", days=14)
    report = check_alerts(wh, reg, [rule], LAST)
    assert [e.day for e in report.fired] == [dt.date(2026, 10, 10)]
    assert report.fired[0].value == 4 and report.fired[0].expected == pytest.approx(20.0, abs=1)
    assert "Page views" in report.fired[0].message


def test_no_alert_on_normal_weekly_pattern(wh: Warehouse, reg: Registry) -> None:
    load_traffic(wh)
    rule = AlertRule(name="pv_any", metric="pv", kind="anomaly", direction="both", days=14)
    assert check_alerts(wh, reg, [rule], LAST).fired == []


def test_threshold_and_target_alerts(wh: Warehouse, reg: Registry) -> None:
    load_traffic(wh)
    thr = AlertRule(name="pv_low", metric="pv", kind="threshold", op="<", value=10, days=7)
    fired = check_alerts(wh, reg, [thr], LAST).fired
    week = [LAST - dt.timedelta(days=i) for i in range(6, -1, -1)]
    assert [e.day for e in fired] == [d for d in week if weekly(d) < 10] and fired
    target = Target(metric="pv", period="2026-10", value=1000)
    st = target_status(wh, reg, target, LAST)
    assert st.actual == sum(weekly(dt.date(2026, 10, d)) for d in range(1, 12))
    assert (st.elapsed_days, st.total_days) == (11, 31)
    # Pacing: the remaining 20 days at the mean of the same weekday over the last four weeks.
    hist = [LAST - dt.timedelta(days=i) for i in range(28)]
    rest = 0.0
    for k in range(12, 32):
        same = [weekly(h) for h in hist if h.weekday() == dt.date(2026, 10, k).weekday()]
        rest += sum(same) / len(same)
    assert st.forecast == pytest.approx(st.actual + rest) and st.on_track is False
    tgt_rule = AlertRule(name="pv_plan", metric="pv", kind="target")
    fired = check_alerts(wh, reg, [tgt_rule], LAST, [target]).fired
    assert len(fired) == 1 and fired[0].expected == 1000


class _Hook(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Hook.received.append(json.loads(body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def hook() -> Iterator[str]:
    _Hook.received = []
    server = HTTPServer(("127.0.0.1", 0), _Hook)
    th = threading.Thread(target=server.serve_forever, daemon=True)
    th.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/alerts"
    server.shutdown()
    server.server_close()


def test_check_command_exits_nonzero_and_posts_webhook(wh: Warehouse, settings: Settings, hook: str) -> None:
    from yunying.cli import app

    load_traffic(wh, {dt.date(2026, 10, 10): 4})
    wh.close()
    alerts = settings.project_dir / "metrics" / "alerts"
    alerts.mkdir(parents=True)
    (alerts / "traffic.yaml").write_text(
        f"webhook: {hook}\nalerts:\n  - name: pv_drop\n    metric: pv\n    direction: down\n    days: 3\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    res = runner.invoke(app, ["metrics", "check", "-p", str(settings.project_dir), "--as-of", "2026-10-11"])
    assert res.exit_code == 1, res.output
    assert "pv_drop" in res.output
    assert len(_Hook.received) == 1
    assert _Hook.received[0]["fired"][0]["day"] == "2026-10-10"
    quiet = runner.invoke(app, ["metrics", "check", "-p", str(settings.project_dir), "--as-of", "2026-10-05"])
    assert quiet.exit_code == 0, quiet.output
    assert len(_Hook.received) == 1


def test_alert_and_target_files_are_validated(settings: Settings, reg: Registry) -> None:
    folder = settings.project_dir / "metrics" / "alerts"
    folder.mkdir(parents=True)
    (folder / "a.yaml").write_text("alerts:\n  - name: x\n    metric: pv\n    kind: sometimes\n", encoding="utf-8")
    with pytest.raises(YunyingError) as e:
        load_alerts(settings, reg)
    assert "a.yaml:4" in e.value.message("en")
    (folder / "a.yaml").write_text("alerts:\n  - name: x\n    metric: nope\n", encoding="utf-8")
    with pytest.raises(YunyingError, match="Unknown metric 'nope'"):
        load_alerts(settings, reg)
    tfolder = settings.project_dir / "metrics" / "targets"
    tfolder.mkdir(parents=True)
    (tfolder / "t.yaml").write_text("targets:\n  - {metric: gmv, period: 2026-13, value: 5}\n", encoding="utf-8")
    with pytest.raises(YunyingError, match="not a period"):
        load_targets(settings, reg)


def test_webhook_failure_is_a_clear_error() -> None:
    from yunying.metrics.monitor import AlertReport

    with pytest.raises(YunyingError) as e:
        send_webhook("http://127.0.0.1:9/none", AlertReport(as_of=LAST, evaluated=0, fired=[]), timeout=2)
    assert "Webhook http://127.0.0.1:9/none failed" in e.value.message("en")
