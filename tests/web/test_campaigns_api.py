"""Campaigns over HTTP: the whole lifecycle, approval by the signed-in user's role, denials."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from yunying import clock
from yunying.config import Settings
from yunying.web import accounts

SEGMENT = {"name": "camp_viewers", "rule": {"event": {"name": "view"}}}


def _local(delta: dt.timedelta) -> str:
    # The project's zone is Asia/Shanghai: a naive time in the body is wall-clock there.
    return (clock.now() + dt.timedelta(hours=8) + delta).replace(microsecond=0).isoformat()


def spec(cid: str, **extra: Any) -> dict[str, Any]:
    return {
        "id": cid, "name": "Win back", "goal_metric": "gmv", "segment": SEGMENT["name"],
        "starts_at": _local(dt.timedelta(hours=-1)), "ends_at": _local(dt.timedelta(days=7)),
        "budget": "5000", "channel": "push", "holdout_share": 0.2, "owner": "小王", **extra,
    }


def _segment(clients: dict[str, TestClient]) -> None:
    r = clients["operator"].post("/api/v1/segments", json=SEGMENT)
    assert r.status_code in (201, 409), r.text


def test_whole_lifecycle_through_http(clients: dict[str, TestClient]) -> None:
    _segment(clients)
    op, approver = clients["operator"], clients["approver"]
    r = op.post("/api/v1/campaigns", json=spec("life"))
    assert r.status_code == 201, r.text
    assert r.json()["status"] == "draft" and r.json()["created_by"] == "operator@example.com"
    # Scheduling needs an approval first (409, in words).
    r = op.post("/api/v1/campaigns/life/schedule")
    assert r.status_code == 409 and r.json()["error"] == "campaign.needs_approval"
    r = approver.post("/api/v1/campaigns/life/approve")
    assert r.status_code == 200, r.text
    c = r.json()
    assert (c["approved_by"], c["approved_role"]) == ("approver@example.com", "approver")
    for action, status in (("schedule", "scheduled"), ("start", "running")):
        r = op.post(f"/api/v1/campaigns/life/{action}")
        assert r.status_code == 200 and r.json()["status"] == status, r.text
    r = op.post("/api/v1/campaigns/life/assign", json={})
    assert r.status_code == 200, r.text
    a = r.json()
    assert a["members"] == 3 and a["treatment"] + a["holdout"] == 3 and a["new_events"] == 3
    assert op.post("/api/v1/campaigns/life/assign").json()["new_events"] == 0  # idempotent
    assert op.post("/api/v1/campaigns/life/end").json()["status"] == "ended"
    r = op.post("/api/v1/campaigns/life/review", json={"notes": "GMV +8% vs 对照组"})
    assert r.status_code == 200 and r.json()["status"] == "reviewed"
    got = clients["viewer"].get("/api/v1/campaigns/life").json()
    assert [t["action"] for t in got["transitions"]] == [
        "create", "approve", "schedule", "start", "assign", "assign", "end", "review"
    ]
    assert {t["actor"] for t in got["transitions"]} == {"operator@example.com", "approver@example.com"}
    assert any(x["id"] == "life" for x in clients["viewer"].get("/api/v1/campaigns?status=reviewed").json()["campaigns"])
    # The audit log says who did what.
    log = clients["admin"].get("/api/v1/audit?limit=50").json()
    assert any(e["action"] == "campaign.approve" and e["actor"] == "approver@example.com" and e["target"] == "life" for e in log)
    # A wrong step is a 409 with the statuses in words, never a 500.
    r = op.post("/api/v1/campaigns/life/start")
    assert r.status_code == 409 and r.json()["error"] == "campaign.bad_transition"


def test_roles_decide_not_the_body(clients: dict[str, TestClient]) -> None:
    _segment(clients)
    r = clients["viewer"].post("/api/v1/campaigns", json=spec("nope"))
    assert r.status_code == 403 and r.json()["error"] == "web.forbidden"
    assert clients["operator"].post("/api/v1/campaigns", json=spec("roles")).status_code == 201
    # An operator cannot approve, nor can an analyst; a role in the body is not a field.
    for role in ("operator", "analyst", "viewer"):
        r = clients[role].post("/api/v1/campaigns/roles/approve")
        assert r.status_code == 403, (role, r.text)
    r = clients["approver"].post("/api/v1/campaigns/roles/approve", json={"role": "admin"})
    assert r.status_code == 200 and r.json()["approved_role"] == "approver"
    # The approver only approves: running a campaign is an operator's.
    assert clients["approver"].post("/api/v1/campaigns/roles/schedule").status_code == 403
    assert clients["admin"].post("/api/v1/campaigns/roles/schedule").status_code == 200


def test_api_keys_approve_only_for_a_user_who_may(app: FastAPI, project: Settings, clients: dict[str, TestClient]) -> None:
    _segment(clients)
    url = project.appdb_url
    assert clients["operator"].post("/api/v1/campaigns", json=spec("keys")).status_code == 201
    plain = accounts.create_api_key(url, "ci", "full")[1]  # no user behind it
    ops = accounts.create_api_key(url, "ops", "full", actor="operator@example.com")[1]
    boss = accounts.create_api_key(url, "boss", "full", actor="approver@example.com")[1]
    boss_read = accounts.create_api_key(url, "boss-read", "read", actor="approver@example.com")[1]
    c = TestClient(app, raise_server_exceptions=False)
    for key in (plain, ops, boss_read):
        r = c.post("/api/v1/campaigns/keys/approve", headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 403, r.text
    r = c.post("/api/v1/campaigns/keys/approve", headers={"Authorization": f"Bearer {boss}"})
    assert r.status_code == 200, r.text
    assert (r.json()["approved_by"], r.json()["approved_role"]) == ("approver@example.com", "approver")
    log = clients["admin"].get("/api/v1/audit?limit=20").json()
    assert any(e["action"] == "campaign.approve" and e["target"] == "keys"
               and e["actor"].startswith("approver@example.com (via apikey:") for e in log)


def test_bad_bodies_and_unknown_ids_are_4xx(clients: dict[str, TestClient]) -> None:
    _segment(clients)
    op = clients["operator"]
    r = op.post("/api/v1/campaigns", json={**spec("bad"), "surprise": 1})
    assert r.status_code == 422 and r.json()["error"] == "web.invalid"
    r = op.post("/api/v1/campaigns", json=spec("bad", ends_at=_local(dt.timedelta(days=-3))))
    assert r.status_code == 422
    r = op.post("/api/v1/campaigns", json=spec("bad", segment="nobody"))
    assert r.status_code == 404 and r.json()["error"] == "segment.not_found"
    assert op.get("/api/v1/campaigns/ghost").status_code == 404
    assert op.post("/api/v1/campaigns/ghost/start").status_code == 404
    assert op.post("/api/v1/campaigns/life/review", json={"notes": ""}).status_code == 422
    assert op.get("/api/v1/campaigns?status=lost").status_code == 400


def test_create_with_an_idempotency_key(clients: dict[str, TestClient]) -> None:
    _segment(clients)
    op = clients["operator"]
    h = {"Idempotency-Key": "create-idem-1"}
    first = op.post("/api/v1/campaigns", json=spec("idem"), headers=h)
    assert first.status_code == 201
    again = op.post("/api/v1/campaigns", json=spec("idem"), headers=h)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert again.json()["id"] == "idem"
    assert op.post("/api/v1/campaigns", json=spec("idem")).status_code == 409  # no key: it exists
    r = op.post("/api/v1/campaigns", json=spec("other"), headers=h)
    assert r.status_code == 409 and r.json()["error"] == "web.idempotency_reused"
