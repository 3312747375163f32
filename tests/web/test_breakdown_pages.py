"""Retention and stickiness breakdowns through the HTTP API, the pages and the CSV export.

The web seed: u1, u2, u3 are active every day 2026-03-01..05 (10:00 local); users' channels
are u1 ads, u2 seo, u3 ads. 2026-03-02 is a Monday.
"""

from __future__ import annotations

import csv
import io
import json
import re
from typing import Any
from urllib.parse import quote

from fastapi.testclient import TestClient

RETENTION = {
    "start_event": "view", "periods": 3, "dates": {"from": "2026-03-01", "to": "2026-03-05"},
    "breakdown": {"property": "user.channel"},
}
STICKINESS = {"dates": {"from": "2026-03-02", "to": "2026-03-08"}, "breakdown": {"property": "user.channel"}}


def test_api_breakdowns_are_the_cli_documents(clients: dict[str, TestClient]) -> None:
    from yunying.analytics.retention import RetentionQuery, run_retention
    from yunying.analytics.stickiness import StickinessQuery, run_stickiness
    from yunying.warehouse.engine import Warehouse

    c = clients["viewer"]
    r = c.post("/api/v1/analytics/retention", json=RETENTION)
    assert r.status_code == 200, r.text
    body = r.json()
    got = [(b["value"], b["total"]["size"], b["cohorts"][0]["retained"]) for b in body["breakdowns"]]
    assert got == [("ads", 2, [2, 2, 2, 2]), ("seo", 1, [1, 1, 1, 1])]
    s = c.post("/api/v1/analytics/stickiness", json=STICKINESS)
    assert s.status_code == 200, s.text
    sb = s.json()
    assert [(b["value"], b["distribution"][:5]) for b in sb["breakdowns"]] == [
        ("ads", [0, 0, 0, 2, 0]), ("seo", [0, 0, 0, 1, 0])
    ]
    settings = c.app.state.settings  # type: ignore[attr-defined]
    with Warehouse(settings) as wh:
        cli_r = json.loads(run_retention(wh, RetentionQuery.model_validate(RETENTION)).model_dump_json())
        cli_s = json.loads(run_stickiness(wh, StickinessQuery.model_validate(STICKINESS)).model_dump_json())
    assert body == cli_r and sb == cli_s
    plain = c.post("/api/v1/analytics/retention", json={**RETENTION, "breakdown": None}).json()
    assert plain["breakdowns"] == [] and plain["cohorts"] == body["cohorts"]


def test_bad_breakdown_is_a_422_naming_the_field(clients: dict[str, TestClient]) -> None:
    c = clients["viewer"]
    for name, q in (("retention", RETENTION), ("stickiness", STICKINESS)):
        r = c.post(f"/api/v1/analytics/{name}", json={**q, "breakdown": {"property": "os.name"}})
        assert r.status_code == 422 and "breakdown" in r.json()["message"], r.text
        assert "Traceback" not in r.text
        r = c.post(f"/api/v1/analytics/{name}", json={**q, "breakdown": {"property": "os", "limit": 0}})
        assert r.status_code == 422 and "limit" in r.json()["message"]


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "$ref"] + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def test_openapi_documents_the_breakdowns(clients: dict[str, TestClient]) -> None:
    doc = clients["viewer"].get("/api/v1/openapi.json").json()
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.startswith("#/components/schemas/") and ref.rsplit("/", 1)[1] in schemas, ref
    assert "breakdown" in schemas["RetentionQuery"]["properties"]
    assert "breakdown" in schemas["StickinessQuery"]["properties"]
    assert "breakdowns" in schemas["RetentionResult"]["properties"]
    assert {"value", "cohorts", "total", "summary"} <= set(schemas["RetentionBreakdown"]["properties"])
    assert {"value", "distribution", "share"} <= set(schemas["StickinessBreakdown"]["properties"])


def _option(html: str) -> dict[str, Any]:
    """The ECharts option the page embeds for its main chart."""
    m = re.search(r'<script type="application/json" class="echart-option">(.*?)</script>', html, re.S)
    assert m is not None, html[:500]
    return json.loads(m.group(1))


def test_pages_show_one_row_or_line_per_value(clients: dict[str, TestClient]) -> None:
    c = clients["viewer"]
    html = c.post("/analysis/retention/run", data={"query": json.dumps(RETENTION)}).text
    assert 'data-chart="retention"' in html
    heat = _option(html)
    assert heat["yAxis"]["data"] == ["All users (3)", "ads (2)", "seo (1)"]
    html = c.post("/analysis/stickiness/run", data={"query": json.dumps(STICKINESS)}).text
    opt = _option(html)
    assert 'data-chart="stickiness"' in html and opt["series"][0]["type"] == "heatmap"
    # everyone was active 4 days (03-02..05) of that week; ads has 2 user-weeks, seo 1
    assert opt["yAxis"]["data"] == ["All users (3)", "ads (2)", "seo (1)"]
    full = [(d["value"][1], d["value"][0]) for d in opt["series"][0]["data"] if d["value"][2] == 100.0]
    assert full == [(0, 3), (1, 3), (2, 3)]  # row, column "4 d"
    assert "Average days: All users 4.00 · ads 4.00 · seo 4.00" in html
    # without a breakdown: cohort rows, a bar per day count
    html = c.post("/analysis/retention/run", data={"query": json.dumps({**RETENTION, "breakdown": None})}).text
    assert _option(html)["yAxis"]["data"][0].startswith("All cohorts") and "ads (" not in html
    html = c.post("/analysis/stickiness/run", data={"query": json.dumps({**STICKINESS, "breakdown": None})}).text
    assert _option(html)["series"][0]["type"] == "bar"


def test_retention_csv_export_has_the_breakdown_column(clients: dict[str, TestClient]) -> None:
    c = clients["viewer"]
    r = c.get("/analysis/retention/export.csv?query=" + quote(json.dumps(RETENTION)))
    assert r.status_code == 200, r.text
    rows = list(csv.reader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert rows[0] == ["breakdown", "cohort", "size", "p0", "p1", "p2", "p3"]
    assert [(x[0], x[2]) for x in rows[1:]] == [
        ("", "3"), ("", "3"), ("ads", "2"), ("ads", "2"), ("seo", "1"), ("seo", "1")
    ]
    plain = c.get("/analysis/retention/export.csv?query=" + quote(json.dumps({**RETENTION, "breakdown": None})))
    assert plain.content.decode("utf-8-sig").splitlines()[0] == "cohort,size,p0,p1,p2,p3"
