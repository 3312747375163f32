"""Incentive tools over HTTP: the eight kinds from their specs, codes, budget and stock, ledger."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient

from yunying import clock

# Open around the clock's now (never fixed dates: the suite also runs years ahead).
_NOW = clock.now().replace(microsecond=0)
WINDOW = {
    "starts_at": (_NOW - dt.timedelta(days=30)).isoformat(),
    "ends_at": (_NOW + dt.timedelta(days=365)).isoformat(),
}

# One spec per kind, as a tool file would hold it (docs/tools.md).
KINDS: dict[str, dict[str, Any]] = {
    "voucher": {"rules": {"threshold": "100", "amount": "20"}, "budget": "1000", "requires_code": True},
    "cashback": {"rules": {"mode": "percent", "percent": "5", "max_discount": "50"}, "budget": "500"},
    "trial_credit": {"rules": {"principal": "10000", "annual_rate": "0.05", "term_days": 7}, "budget": "800"},
    "trial_class": {"rules": {"session_cost": "30"}, "stock": 30},
    "flash_sale": {"rules": {"price": "9.90", "list_price": "59.00"}, "stock": 100, "budget": "5000"},
    "rate_boost": {"rules": {"extra_rate": "0.01", "days": 30, "max_principal": "10000"}, "budget": "300"},
    "lottery": {"rules": {"prizes": [{"id": "cup", "name": "cup", "weight": 1, "stock": 5, "value": "20"}], "no_win_weight": 9}},
    "privileged": {"rules": {"price": "1.00", "list_price": "9.00"}, "stock": 10, "new_user_days": 7},
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_kind_is_created_from_its_spec(clients: dict[str, TestClient], kind: str) -> None:
    body = {"id": f"t-{kind}", "kind": kind, "name": kind, **WINDOW, **KINDS[kind]}
    r = clients["operator"].post("/api/v1/tools", json=body)
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["kind"] == kind and out["issued"] == 0 and out["budget_used"] == "0.00"
    got = clients["viewer"].get(f"/api/v1/tools/t-{kind}").json()
    assert (got["stock"], got["sold"]) == (KINDS[kind].get("stock"), 0)
    assert any(t["id"] == f"t-{kind}" for t in clients["viewer"].get("/api/v1/tools").json()["tools"])


def test_roles_bad_specs_and_codes(clients: dict[str, TestClient]) -> None:
    op, viewer = clients["operator"], clients["viewer"]
    body = {"id": "v-codes", "kind": "voucher", "name": "10 off", **WINDOW,
            "rules": {"threshold": "50", "amount": "10"}, "budget": "100", "requires_code": True}
    assert viewer.post("/api/v1/tools", json=body).status_code == 403
    assert clients["analyst"].post("/api/v1/tools", json=body).status_code == 403
    r = op.post("/api/v1/tools", json={**body, "rules": {"amount": "-1"}})
    assert r.status_code == 400 and r.json()["error"] == "engage.bad_rules"
    assert op.post("/api/v1/tools", json={**body, "kind": "coupon"}).status_code == 422
    assert op.post("/api/v1/tools", json={**body, "ends_at": "2025-01-01T00:00:00"}).status_code == 400
    h = {"Idempotency-Key": "tool-v-codes"}
    assert op.post("/api/v1/tools", json=body, headers=h).status_code == 201
    again = op.post("/api/v1/tools", json=body, headers=h)
    assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
    assert op.post("/api/v1/tools", json=body).status_code == 409
    # Codes: generated in bulk, listed by page, and only operators see them.
    r = op.post("/api/v1/tools/v-codes/codes", json={"count": 50})
    assert r.status_code == 201 and r.json() == {"tool_id": "v-codes", "created": 50, "codes": []}
    shown = op.post("/api/v1/tools/v-codes/codes", json={"count": 3, "show": True}).json()["codes"]
    assert len(shown) == 3 and all(len(c) == 13 for c in shown)
    page = op.get("/api/v1/tools/v-codes/codes?limit=10&unused=true").json()
    assert (page["total"], page["unused"], len(page["codes"])) == (53, 53, 10)
    assert viewer.get("/api/v1/tools/v-codes/codes").status_code == 403
    assert op.post("/api/v1/tools/v-codes/codes", json={"count": 0}).status_code == 422
    assert op.post("/api/v1/tools/ghost/codes", json={"count": 1}).status_code == 404
    assert viewer.get("/api/v1/tools/ghost").status_code == 404


def test_ledger_check(clients: dict[str, TestClient]) -> None:
    r = clients["viewer"].get("/api/v1/ledger")
    assert r.status_code == 200
    assert r.json()["unbalanced"] == []


def test_issue_and_redeem_through_the_api(clients: dict[str, TestClient]) -> None:
    """Redemptions arrive through the API: issue a voucher, redeem it on an order, replay."""
    op, viewer = clients["operator"], clients["viewer"]
    body = {"id": "v-redeem", "kind": "voucher", "name": "20 off 100", **WINDOW,
            "rules": {"threshold": "100", "amount": "20"}, "budget": "100"}
    assert op.post("/api/v1/tools", json=body).status_code == 201
    issue = {"key": "iss-1", "tool_id": "v-redeem", "user_id": "u1"}
    assert viewer.post("/api/v1/tools/issue", json=issue).status_code == 403
    r = op.post("/api/v1/tools/issue", json=issue)
    assert r.status_code == 200, r.text
    grant = r.json()["grant_id"]
    again = op.post("/api/v1/tools/issue", json=issue).json()
    assert again["grant_id"] == grant and again["replayed"] is True
    order = {"order_id": "o-100", "lines": [{"product_id": "p1", "amount": "120.00"}]}
    redeem = {"key": "red-1", "tool_id": "v-redeem", "user_id": "u1", "grant_id": grant, "order": order}
    r = op.post("/api/v1/tools/redeem", json=redeem)
    assert r.status_code == 200, r.text
    assert r.json()["amount"] == "20.00" and r.json()["order_id"] == "o-100"
    assert op.post("/api/v1/tools/redeem", json=redeem).json()["replayed"] is True
    t = viewer.get("/api/v1/tools/v-redeem").json()
    assert (t["issued"], t["budget_used"]) == (1, "20.00")
    assert viewer.get("/api/v1/ledger").json()["unbalanced"] == []
    # The grant is used: a second redemption with another key is refused (4xx, in words).
    r = op.post("/api/v1/tools/redeem", json={**redeem, "key": "red-2"})
    assert 400 <= r.status_code < 500 and r.json()["error"].startswith("engage.")
    r = op.post("/api/v1/tools/issue", json={**issue, "tool_id": "ghost", "key": "iss-x"})
    assert r.status_code == 404
