"""Every route declares a permission, and every role gets exactly what the matrix allows."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient

from yunying.web.accounts import PERMISSIONS, ROLE_PERMISSIONS, SCOPE_PERMISSIONS

FUNNEL = {"steps": [{"event": "view"}, {"event": "pay"}], "dates": {"from": "2026-03-01", "to": "2026-03-05"}}

# (method, route template, concrete path, json body or None, form data or None)
CASES: list[tuple[str, str, str, Any, Any]] = [
    ("GET", "/api/v1/me", "/api/v1/me", None, None),
    ("POST", "/api/v1/capture", "/api/v1/capture", {"events": []}, None),
    ("POST", "/api/v1/capture/flush", "/api/v1/capture/flush", None, None),
    ("GET", "/api/v1/data/status", "/api/v1/data/status", None, None),
    ("POST", "/api/v1/data/delete", "/api/v1/data/delete", {"table": "events", "keys": ["nope"], "dry_run": True}, None),
    ("GET", "/api/v1/overview", "/api/v1/overview", None, None),
    ("GET", "/api/v1/insights", "/api/v1/insights", None, None),
    ("POST", "/api/v1/insights", "/api/v1/insights", {"name": "o", "kind": "overview"}, None),
    ("GET", "/api/v1/insights/{insight_id}", "/api/v1/insights/999", None, None),
    ("GET", "/api/v1/insights/{insight_id}/result", "/api/v1/insights/999/result", None, None),
    ("PATCH", "/api/v1/insights/{insight_id}", "/api/v1/insights/999", {"name": "x"}, None),
    ("DELETE", "/api/v1/insights/{insight_id}", "/api/v1/insights/999", None, None),
    ("POST", "/api/v1/insights/{insight_id}/share", "/api/v1/insights/999/share", None, None),
    ("DELETE", "/api/v1/insights/{insight_id}/share", "/api/v1/insights/999/share", None, None),
    ("GET", "/api/v1/shared/insights/{token}", "/api/v1/shared/insights/nope", None, None),
    ("GET", "/api/v1/dashboards", "/api/v1/dashboards", None, None),
    ("POST", "/api/v1/dashboards", "/api/v1/dashboards", {"name": "d"}, None),
    ("GET", "/api/v1/dashboards/{dashboard_id}", "/api/v1/dashboards/999", None, None),
    ("PATCH", "/api/v1/dashboards/{dashboard_id}", "/api/v1/dashboards/999", {"name": "x"}, None),
    ("DELETE", "/api/v1/dashboards/{dashboard_id}", "/api/v1/dashboards/999", None, None),
    ("POST", "/api/v1/dashboards/{dashboard_id}/share", "/api/v1/dashboards/999/share", None, None),
    ("DELETE", "/api/v1/dashboards/{dashboard_id}/share", "/api/v1/dashboards/999/share", None, None),
    ("GET", "/api/v1/shared/dashboards/{token}", "/api/v1/shared/dashboards/nope", None, None),
    ("GET", "/api/v1/users", "/api/v1/users", None, None),
    ("POST", "/api/v1/users", "/api/v1/users", {"email": "bad", "password": "x", "role": "viewer"}, None),
    ("PATCH", "/api/v1/users/{user_id}", "/api/v1/users/999", {"active": True}, None),
    ("GET", "/api/v1/apikeys", "/api/v1/apikeys", None, None),
    ("POST", "/api/v1/apikeys", "/api/v1/apikeys", {"name": "k", "scope": "read"}, None),
    ("DELETE", "/api/v1/apikeys/{key_id}", "/api/v1/apikeys/999", None, None),
    ("GET", "/api/v1/audit", "/api/v1/audit", None, None),
    ("GET", "/api/v1/openapi.json", "/api/v1/openapi.json", None, None),
    ("GET", "/static/{path:path}", "/static/app.js", None, None),
    ("GET", "/healthz", "/healthz", None, None),
    ("GET", "/login", "/login", None, None),
    ("POST", "/login", "/login", None, {"email": "a@b.c", "password": "x", "csrf_token": "x"}),
    ("GET", "/lang/{lang}", "/lang/en", None, None),
    ("GET", "/", "/", None, None),
    ("GET", "/analysis/{name}", "/analysis/funnel", None, None),
    ("POST", "/analysis/{name}/run", "/analysis/funnel/run", None, {"steps": "view, pay", "query": '{"dates": {"from": "2026-03-01", "to": "2026-03-05"}}'}),
    ("GET", "/analysis/{name}/export.csv", "/analysis/funnel/export.csv?query=" + __import__("json").dumps(FUNNEL), None, None),
    ("GET", "/analysis/rfm/members.csv", "/analysis/rfm/members.csv?group=&query={}", None, None),
    ("GET", "/insights", "/insights", None, None),
    ("POST", "/api/v1/metrics/whatif", "/api/v1/metrics/whatif", {"metric": "gmv", "period": "2026-03", "changes": {"uv": "+5%"}}, None),
    ("GET", "/api/v1/alerts", "/api/v1/alerts", None, None),
    ("POST", "/api/v1/metrics/compute", "/api/v1/metrics/compute", {"names": ["orders"], "grain": "day"}, None),
    ("POST", "/api/v1/metrics/explain", "/api/v1/metrics/explain", {"metric": "gmv", "from": "2026-03-01", "to": "2026-03-02"}, None),
    ("POST", "/api/v1/metrics/goalseek", "/api/v1/metrics/goalseek", {"metric": "gmv", "period": "2026-03", "goal": "+10%", "driver": "uv"}, None),
    ("GET", "/metrics/tree", "/metrics/tree", None, None),
    ("POST", "/metrics/whatif/run", "/metrics/whatif/run", None, {"metric": "gmv", "period": "2026-03", "d_uv": "5"}),
    ("GET", "/alerts", "/alerts", None, None),
    ("POST", "/insights/save", "/insights/save", None, {"name": "n", "kind": "overview", "query": "{}"}),
    ("GET", "/s/i/{token}", "/s/i/nope", None, None),
    ("GET", "/s/d/{token}", "/s/d/nope", None, None),
    ("GET", "/data", "/data", None, None),
    ("POST", "/data/flush", "/data/flush", None, {}),
    ("GET", "/admin/users", "/admin/users", None, None),
    ("POST", "/admin/users", "/admin/users", None, {"email": "x@example.com", "password": "long-enough-1", "role": "viewer"}),
    ("POST", "/admin/users/{user_id}", "/admin/users/999", None, {"role": "viewer"}),
    ("GET", "/admin/apikeys", "/admin/apikeys", None, None),
    ("POST", "/admin/apikeys", "/admin/apikeys", None, {"name": "k", "scope": "read"}),
    ("POST", "/admin/apikeys/{key_id}/revoke", "/admin/apikeys/999/revoke", None, None),
    # web/domains/: segments and tags, campaigns, tools, experiments, reports
    ("GET", "/api/v1/segments", "/api/v1/segments", None, None),
    ("POST", "/api/v1/segments", "/api/v1/segments", {"name": "m", "rule": {}}, None),
    ("POST", "/api/v1/segments/preview", "/api/v1/segments/preview", {"rule": {"event": {"name": "pay"}}}, None),
    ("GET", "/api/v1/segments/{name}", "/api/v1/segments/nope", None, None),
    ("POST", "/api/v1/segments/{name}/refresh", "/api/v1/segments/nope/refresh", None, None),
    ("GET", "/api/v1/segments/{name}/members", "/api/v1/segments/nope/members", None, None),
    ("GET", "/api/v1/segments/{name}/history", "/api/v1/segments/nope/history", None, None),
    ("GET", "/api/v1/segments/{name}/export.csv", "/api/v1/segments/nope/export.csv", None, None),
    ("GET", "/api/v1/tags", "/api/v1/tags", None, None),
    ("POST", "/api/v1/tags/{tag}/users", "/api/v1/tags/vip/users", {"user_ids": []}, None),
    ("POST", "/api/v1/tags/{tag}/remove", "/api/v1/tags/vip/remove", {"user_ids": []}, None),
    ("GET", "/api/v1/campaigns", "/api/v1/campaigns", None, None),
    ("POST", "/api/v1/campaigns", "/api/v1/campaigns", {"id": "x"}, None),
    ("GET", "/api/v1/campaigns/{campaign_id}", "/api/v1/campaigns/nope", None, None),
    *[("POST", f"/api/v1/campaigns/{{campaign_id}}/{a}", f"/api/v1/campaigns/nope/{a}", None, None)
      for a in ("approve", "schedule", "start", "end", "assign")],
    ("POST", "/api/v1/campaigns/{campaign_id}/review", "/api/v1/campaigns/nope/review", {"notes": "ok"}, None),
    ("GET", "/api/v1/tools", "/api/v1/tools", None, None),
    ("POST", "/api/v1/tools", "/api/v1/tools", {"id": "x"}, None),
    ("GET", "/api/v1/tools/{tool_id}", "/api/v1/tools/nope", None, None),
    ("POST", "/api/v1/tools/{tool_id}/codes", "/api/v1/tools/nope/codes", {"count": 1}, None),
    ("GET", "/api/v1/tools/{tool_id}/codes", "/api/v1/tools/nope/codes", None, None),
    ("GET", "/api/v1/ledger", "/api/v1/ledger", None, None),
    ("POST", "/api/v1/tools/issue", "/api/v1/tools/issue", {"key": "k", "tool_id": "nope", "user_id": "u1"}, None),
    ("POST", "/api/v1/tools/redeem", "/api/v1/tools/redeem", {"key": "k", "tool_id": "nope", "user_id": "u1"}, None),
    ("GET", "/api/v1/experiments", "/api/v1/experiments", None, None),
    ("POST", "/api/v1/experiments", "/api/v1/experiments", {"id": "x"}, None),
    ("POST", "/api/v1/experiments/analyze", "/api/v1/experiments/analyze", {"experiment": "nope"}, None),
    ("POST", "/api/v1/experiments/power", "/api/v1/experiments/power", {"mde": 0.01, "baseline": 0.1}, None),
    ("GET", "/api/v1/experiments/{experiment_id}", "/api/v1/experiments/nope", None, None),
    ("GET", "/api/v1/experiments/{experiment_id}/assignment", "/api/v1/experiments/nope/assignment?user_id=u1", None, None),
    ("POST", "/api/v1/experiments/{experiment_id}/assign", "/api/v1/experiments/nope/assign", None, None),
    ("GET", "/api/v1/reports/campaigns/{campaign_id}", "/api/v1/reports/campaigns/nope", None, None),
    ("GET", "/api/v1/reports/experiments/{experiment_id}", "/api/v1/reports/experiments/nope", None, None),
]
SPECIAL = {("POST", "/logout")}  # ends the session: tested on its own


def route_permissions(app: FastAPI) -> dict[tuple[str, str], str]:
    """(method, path) → the permission its ``require`` dependency names, for every route."""
    out: dict[tuple[str, str], str] = {}
    for ctx in iter_route_contexts(app.routes):
        route = ctx.original_route
        assert isinstance(route, APIRoute), f"{route} is not an APIRoute: it cannot declare a permission"
        perms = [getattr(d.call, "permission", None) for d in route.dependant.dependencies]
        perms = [p for p in perms if p is not None]
        assert len(perms) == 1, f"{ctx.path} declares {perms}"
        for m in route.methods:
            out[(m, str(ctx.path))] = perms[0]
    return out


def test_every_route_declares_one_known_permission(app: FastAPI) -> None:
    perms = route_permissions(app)
    assert perms, "no routes"
    for key, perm in perms.items():
        assert perm in PERMISSIONS, key
    analysis_routes = {k for k in perms if k[1].startswith("/api/v1/analytics/")}
    covered = {(m, tpl) for m, tpl, *_ in CASES} | SPECIAL | analysis_routes
    assert set(perms) == covered, f"routes without a test case: {set(perms) - covered}"


def test_permission_matrix_is_documented() -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "web.md").read_text(encoding="utf-8")
    for perm in PERMISSIONS:
        assert f"`{perm}`" in doc, perm
    assert ROLE_PERMISSIONS["viewer"] < ROLE_PERMISSIONS["admin"]
    assert SCOPE_PERMISSIONS["capture"] == frozenset({"public", "capture"})


def _call(c: TestClient, method: str, path: str, body: Any, form: Any) -> Any:
    if form is not None:
        return c.request(method, path, data=form, follow_redirects=False)
    if body is not None:
        return c.request(method, path, json=body, follow_redirects=False)
    return c.request(method, path, follow_redirects=False)


@pytest.mark.parametrize("role", ["admin", "analyst", "approver", "operator", "viewer", "anon"])
def test_each_role_gets_what_the_matrix_allows(app: FastAPI, clients: dict[str, TestClient], role: str) -> None:
    perms = route_permissions(app)
    granted = ROLE_PERMISSIONS.get(role, frozenset({"public"}))
    cases = list(CASES)
    for m, tpl in perms:
        if tpl.startswith("/api/v1/analytics/"):
            name = tpl.rsplit("/", 1)[1]
            cases.append((m, tpl, tpl, FUNNEL if name == "funnel" else {}, None))
    c = clients[role]
    for method, tpl, path, body, form in cases:
        perm = perms[(method, tpl)]
        r = _call(c, method, path, body, form)
        where = f"{role} {method} {path} ({perm}) -> {r.status_code} {r.text[:200]}"
        if perm in granted:
            assert r.status_code not in (401, 403), where
            if not tpl.startswith("/api/v1/analytics/"):  # runners' own failures are tested elsewhere
                assert r.status_code < 500, where
        elif role == "anon":
            if path.startswith("/api/"):
                assert r.status_code == 401, where
                assert r.json()["error"] == "web.sign_in_required"
            else:
                assert r.status_code == 303 and r.headers["location"].startswith("/login"), where
        else:
            assert r.status_code == 403, where
            if path.startswith("/api/"):
                assert perm in r.json()["message"], where
            else:
                assert "text/html" in r.headers["content-type"], where


def test_api_key_scopes(app: FastAPI, project: Any) -> None:
    from yunying.web import accounts

    url = project.appdb_url
    keys = {s: accounts.create_api_key(url, f"k-{s}", s)[1] for s in ("capture", "read", "full")}
    c = TestClient(app)
    hdr = {s: {"Authorization": f"Bearer {k}"} for s, k in keys.items()}
    assert c.get("/api/v1/overview", headers=hdr["capture"]).status_code == 403
    assert c.post("/api/v1/capture", json={"events": []}, headers=hdr["capture"]).status_code == 200
    assert c.get("/api/v1/overview", headers=hdr["read"]).status_code == 200
    assert c.post("/api/v1/capture", json={"events": []}, headers=hdr["read"]).status_code == 403
    assert c.get("/api/v1/users", headers=hdr["full"]).status_code == 200
    # X-API-Key works too; a key needs no CSRF token.
    assert c.post("/api/v1/insights", json={"name": "a", "kind": "overview"}, headers={"X-API-Key": keys["full"]}).status_code == 201
    key_id = next(k.id for k in accounts.list_api_keys(url) if k.name == "k-read")
    admin_key = hdr["full"]
    assert c.delete(f"/api/v1/apikeys/{key_id}", headers=admin_key).json()["revoked_at"] is not None
    r = c.get("/api/v1/overview", headers=hdr["read"])
    assert r.status_code == 401 and r.json()["error"] == "web.bad_key"
    assert c.get("/api/v1/me", headers={"Authorization": "Bearer yyk_nope"}).status_code == 401


def test_cookie_writes_need_the_csrf_token(app: FastAPI) -> None:
    from tests.web.conftest import sign_in

    c = TestClient(app)
    token = sign_in(c, "admin@example.com")
    r = c.post("/api/v1/insights", json={"name": "a", "kind": "overview"})
    assert r.status_code == 403 and r.json()["error"] == "web.csrf"
    r = c.post("/api/v1/insights", json={"name": "a", "kind": "overview"}, headers={"X-CSRF-Token": "forged"})
    assert r.status_code == 403
    r = c.post("/admin/apikeys", data={"name": "k", "scope": "read", "csrf_token": token})
    assert r.status_code == 200 and "new-secret" in r.text
    r = c.post("/api/v1/insights", json={"name": "a", "kind": "overview"}, headers={"X-CSRF-Token": token})
    assert r.status_code == 201


def test_logout_ends_the_session(app: FastAPI) -> None:
    from tests.web.conftest import sign_in

    c = TestClient(app)
    c.headers["X-CSRF-Token"] = sign_in(c, "spare0@example.com")
    assert c.get("/api/v1/me").status_code == 200
    r = c.post("/logout", follow_redirects=False)
    assert r.status_code == 303
    assert c.get("/api/v1/me").status_code == 401


def test_disabled_user_is_signed_out(app: FastAPI, clients: dict[str, TestClient], project: Any) -> None:
    from tests.web.conftest import sign_in
    from yunying.web import accounts

    c = TestClient(app)
    sign_in(c, "spare1@example.com")
    assert c.get("/api/v1/me").status_code == 200
    accounts.update_user(project.appdb_url, "spare1@example.com", active=False, actor="admin@example.com")
    assert c.get("/api/v1/me").status_code == 401
    log = clients["admin"].get("/api/v1/audit").json()
    assert any(
        e["action"] == "user.update" and e["target"] == "spare1@example.com" and e["actor"] == "admin@example.com"
        for e in log
    )


def test_sign_in_is_rate_limited(app: FastAPI) -> None:
    import re

    c = TestClient(app)
    statuses = []
    for _ in range(7):
        page = c.get("/login")
        m = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
        assert m is not None
        r = c.post("/login", data={"email": "spare2@example.com", "password": "wrong-password", "csrf_token": m.group(1)})
        statuses.append(r.status_code)
    assert statuses[:5] == [400] * 5
    assert statuses[5:] == [429, 429]
    # Even the right password is refused while blocked.
    m = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
    assert m is not None
    from tests.web.conftest import PASSWORD

    r = c.post("/login", data={"email": "spare2@example.com", "password": PASSWORD, "csrf_token": m.group(1)}, follow_redirects=False)
    assert r.status_code == 429


def test_session_cookie_flags(app: FastAPI) -> None:
    import re

    from tests.web.conftest import PASSWORD

    c = TestClient(app)
    m = re.search(r'name="csrf_token" value="([^"]+)"', c.get("/login").text)
    assert m is not None
    r = c.post("/login", data={"email": "viewer@example.com", "password": PASSWORD, "csrf_token": m.group(1)}, follow_redirects=False)
    cookie = r.headers["set-cookie"]
    assert "yy_session=" in cookie and "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    # A login form posted without its cookie (cross-site) is refused.
    c2 = TestClient(app)
    r = c2.post("/login", data={"email": "viewer@example.com", "password": PASSWORD, "csrf_token": "guess"}, follow_redirects=False)
    assert r.status_code == 400
    # Open redirects are not followed.
    m = re.search(r'name="csrf_token" value="([^"]+)"', c2.get("/login").text)
    assert m is not None
    r = c2.post("/login", data={"email": "viewer@example.com", "password": PASSWORD, "csrf_token": m.group(1), "next": "//evil.example"}, follow_redirects=False)
    assert r.headers["location"] == "/"
