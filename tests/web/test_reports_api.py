"""Review reports over HTTP: campaign and experiment, as JSON, HTML and PDF."""

from __future__ import annotations

import datetime as dt

from fastapi.testclient import TestClient

from yunying import clock

BTN = {
    "id": "rep", "variants": [{"key": "control"}, {"key": "green"}],
    "metrics": [{"id": "paid", "kind": "proportion", "measure": {"source": "orders", "agg": "any"}}],
}


def _local(delta: dt.timedelta) -> str:
    return (clock.now() + dt.timedelta(hours=8) + delta).replace(microsecond=0).isoformat()


def test_experiment_report_in_three_formats(clients: dict[str, TestClient]) -> None:
    op, viewer = clients["operator"], clients["viewer"]
    assert op.post("/api/v1/experiments", json=BTN).status_code == 201
    assert op.post("/api/v1/experiments/rep/assign").status_code == 200
    r = viewer.get("/api/v1/reports/experiments/rep")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["kind"] == "experiment" and doc["id"] == "rep" and doc["lang"] == "en" and doc["headline"]
    zh = viewer.get("/api/v1/reports/experiments/rep?lang=zh_CN").json()
    assert zh["lang"] == "zh_CN" and zh["title"] != doc["title"]
    r = viewer.get("/api/v1/reports/experiments/rep?format=html")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html") and "<svg" in r.text
    r = viewer.get("/api/v1/reports/experiments/rep", headers={"accept": "application/pdf"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")
    assert viewer.get("/api/v1/reports/experiments/ghost").status_code == 404
    assert viewer.get("/api/v1/reports/experiments/rep?format=docx").status_code == 422
    assert clients["anon"].get("/api/v1/reports/experiments/rep").status_code == 401


def test_campaign_report(clients: dict[str, TestClient]) -> None:
    op = clients["operator"]
    assert op.post("/api/v1/segments", json={"name": "rep_all", "rule": {"event": {"name": "view"}}}).status_code == 201
    spec = {"id": "rep-c", "name": "Review me", "goal_metric": "gmv", "segment": "rep_all",
            "starts_at": _local(dt.timedelta(hours=-1)), "ends_at": _local(dt.timedelta(days=3)),
            "budget": "100", "channel": "push", "owner": "小王"}
    assert op.post("/api/v1/campaigns", json=spec).status_code == 201
    assert clients["admin"].post("/api/v1/campaigns/rep-c/approve").status_code == 200
    for step in ("schedule", "start", "assign"):
        assert op.post(f"/api/v1/campaigns/rep-c/{step}").status_code == 200, step
    viewer = clients["viewer"]
    r = viewer.get("/api/v1/reports/campaigns/rep-c")
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "campaign" and r.json()["id"] == "rep-c"
    r = viewer.get("/api/v1/reports/campaigns/rep-c?format=pdf")
    assert r.status_code == 200 and r.content.startswith(b"%PDF-")
    assert 'filename="campaign-rep-c.pdf"' in r.headers["content-disposition"]
    assert viewer.get("/api/v1/reports/campaigns/rep-c?format=html").text.lstrip().lower().startswith("<!doctype html")
    assert viewer.get("/api/v1/reports/campaigns/ghost").status_code == 404
