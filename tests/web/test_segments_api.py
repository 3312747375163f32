"""Segments and tags over HTTP: the same specs and results as the CLI, roles, CSV safety."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pyarrow as pa
from fastapi.testclient import TestClient

from yunying import csvsafe
from yunying.config import Settings
from yunying.segments import service
from yunying.warehouse.engine import Warehouse

PAYERS = {"name": "payers", "description": "paid once", "rule": {"event": {"name": "pay"}}}


def test_create_preview_refresh_members_history(clients: dict[str, TestClient], project: Settings) -> None:
    op, viewer = clients["operator"], clients["viewer"]
    # Preview first: the size without saving anything.
    r = viewer.post("/api/v1/segments/preview", json={"rule": {"event": {"name": "add_to_cart"}}, "sample": 5})
    assert r.status_code == 200 and r.json()["size"] == 2 and r.json()["sample"] == ["u1", "u2"]
    assert viewer.get("/api/v1/segments/payers").status_code == 404
    r = op.post("/api/v1/segments", json=PAYERS)
    assert r.status_code == 201, r.text
    assert (r.json()["name"], r.json()["size"], r.json()["joined"]) == ("payers", 1, 1)
    # The same object as the domain (and the CLI's --format json) returns.
    got = viewer.get("/api/v1/segments/payers").json()
    assert got == service.get_segment(project, "payers").model_dump(mode="json")
    assert any(s["name"] == "payers" for s in viewer.get("/api/v1/segments").json()["segments"])
    r = op.post("/api/v1/segments/payers/refresh")
    assert r.status_code == 200 and (r.json()["joined"], r.json()["left"]) == (0, 0)
    page = viewer.get("/api/v1/segments/payers/members?limit=1").json()
    assert page["total"] == 1 and [m["user_id"] for m in page["members"]] == ["u1"]
    hist = viewer.get("/api/v1/segments/payers/history").json()
    assert [(e["user_id"], e["change"]) for e in hist["entries"]] == [("u1", "joined")]
    assert viewer.get("/api/v1/segments/payers/history?user=u2").json()["entries"] == []


def test_roles_and_bad_bodies(clients: dict[str, TestClient]) -> None:
    r = clients["viewer"].post("/api/v1/segments", json={**PAYERS, "name": "v"})
    assert r.status_code == 403 and "segments.write" in r.json()["message"]
    assert clients["viewer"].post("/api/v1/segments/nope/refresh").status_code == 403
    op = clients["analyst"]  # analysts build segments too
    r = op.post("/api/v1/segments", json={"name": "bad", "rule": {"event": {"name": "pay", "times": 0}}})
    assert r.status_code == 400 and r.json()["error"] == "segment.rule_invalid"
    assert "rule.event.times" in r.json()["message"]
    r = op.post("/api/v1/segments", json={"name": "bad", "rule": {}, "colour": "red"})
    assert r.status_code == 422 and r.json()["error"] == "web.invalid"
    r = op.post("/api/v1/segments/preview", json={"rule": {"or": []}})
    assert r.status_code == 400
    assert clients["viewer"].get("/api/v1/segments/ghost/members").status_code == 404
    assert clients["viewer"].get("/api/v1/segments/ghost/export.csv").status_code == 404


def test_static_segment_refuses_refresh_and_idempotent_create(clients: dict[str, TestClient]) -> None:
    op = clients["operator"]
    body = {"name": "frozen", "kind": "static", "rule": {"event": {"name": "view"}}}
    h = {"Idempotency-Key": "seg-frozen-1"}
    assert op.post("/api/v1/segments", json=body, headers=h).status_code == 201
    again = op.post("/api/v1/segments", json=body, headers=h)
    assert again.status_code == 200 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["size"] == 3
    assert op.post("/api/v1/segments", json=body).status_code == 409
    r = op.post("/api/v1/segments/frozen/refresh")
    assert r.status_code == 409 and r.json()["error"] == "segment.static_frozen"


def test_export_is_formula_neutralised(clients: dict[str, TestClient], project: Settings) -> None:
    # The export goes through yunying.csvsafe, like every CSV yunying writes.
    for bad in ("=HYPERLINK(1)", "+A1", "-A1", "@SUM(A1)", "\tx", "\rx"):
        assert csvsafe.cell(bad) == "'" + bad
    assert csvsafe.cell("u1") == "u1"
    # Users whose ids a spreadsheet would run: the export quotes them.
    ids = ["=cmd|' /C calc'!A0", "+SUM(1)", "u1"]
    wh = Warehouse(project, "duckdb")
    try:
        n = len(ids)
        wh.append_arrow("events", pa.table({
            "event_id": [f"odd{i}" for i in range(n)], "event": ["odd_evt"] * n, "user_id": ids,
            "ts": [dt.datetime(2026, 3, 4)] * n, "account_id": pa.nulls(n, pa.string()),
            "session_id": pa.nulls(n, pa.string()), "properties": pa.nulls(n, pa.string()),
        }))
        wh.append_arrow("users", pa.table({
            "user_id": ids[:2], "first_seen": [dt.datetime(2026, 3, 4)] * 2, "channel": ["ads"] * 2,
            "properties": pa.nulls(2, pa.string()),
        }))
    finally:
        wh.close()
    seg = {"name": "odd", "kind": "static", "rule": {"event": {"name": "odd_evt"}}}
    r = clients["operator"].post("/api/v1/segments", json=seg)
    assert r.status_code == 201 and r.json()["size"] == 3, r.text
    r = clients["viewer"].get("/api/v1/segments/odd/export.csv")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["user_id", "joined_at"]
    assert sorted(x[0] for x in rows[1:]) == sorted(["'=cmd|' /C calc'!A0", "'+SUM(1)", "u1"])


def test_tags(clients: dict[str, TestClient]) -> None:
    op, viewer = clients["operator"], clients["viewer"]
    assert viewer.post("/api/v1/tags/vip/users", json={"user_ids": ["u1"]}).status_code == 403
    r = op.post("/api/v1/tags/vip/users", json={"user_ids": ["u1", "u2", "u1"]})
    assert r.status_code == 200, r.text
    assert op.post("/api/v1/tags/vip/users", json={"user_ids": ["u1"]}).json()["changed"] == 0
    counts = {c["tag"]: c["users"] for c in viewer.get("/api/v1/tags").json()["counts"]}
    assert counts["vip"] == 2
    rows = viewer.get("/api/v1/tags?tag=vip").json()["rows"]
    assert {x["user_id"] for x in rows} == {"u1", "u2"} and rows[0]["added_by"] == "operator@example.com"
    assert op.post("/api/v1/tags/vip/remove", json={"user_ids": ["u2"]}).json()["changed"] == 1
    assert [x["tag"] for x in viewer.get("/api/v1/tags?user=u2").json()["rows"]] == []
    assert op.post("/api/v1/tags/vip/users", json={"user_ids": []}).status_code == 422
    r = op.post("/api/v1/tags/bad%20tag/users", json={"user_ids": ["u1"]})
    assert r.status_code == 400 and r.json()["error"] == "tag.bad_name"
