"""Web fixtures: a project with a little data, the app, and a signed-in client per role."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from decimal import Decimal

import pyarrow as pa
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from yunying.appdb import open_appdb
from yunying.config import Settings
from yunying.warehouse.engine import Warehouse
from yunying.web import accounts
from yunying.web.app import create_app

PASSWORD = "correct-horse-1"
ROLES = ("admin", "analyst", "approver", "operator", "viewer")


def seed(settings: Settings) -> None:
    """Three users over a few days: view → add_to_cart → pay, and their orders."""
    base = dt.datetime(2026, 3, 1, 2, 0)
    events = []
    plan = {"u1": ["view", "add_to_cart", "pay"], "u2": ["view", "add_to_cart"], "u3": ["view"]}
    n = 0
    for day in range(5):
        for user, steps in plan.items():
            for k, ev in enumerate(steps):
                n += 1
                events.append(
                    (f"e{n}", ev, user, base + dt.timedelta(days=day, minutes=k), None, f"s{user}{day}", '{"src":"app"}')
                )
    cols = list(zip(*events, strict=True))
    wh = Warehouse(settings, "duckdb")
    try:
        wh.append_arrow(
            "events",
            pa.table({"event_id": cols[0], "event": cols[1], "user_id": cols[2], "ts": cols[3],
                      "account_id": pa.array(cols[4], pa.string()), "session_id": cols[5], "properties": cols[6]}),
        )
        wh.append_arrow(
            "users",
            pa.table({"user_id": ["u1", "u2", "u3"], "first_seen": [base] * 3, "channel": ["ads", "seo", "ads"],
                      "properties": pa.array([None] * 3, pa.string())}),
        )
        wh.append_arrow(
            "orders",
            pa.table({"order_id": ["o1", "o2"], "user_id": ["u1", "u1"], "ts": [base, base + dt.timedelta(days=2)],
                      "amount": pa.array([Decimal("120.50"), Decimal("80.00")], pa.decimal128(18, 2)),
                      "currency": ["CNY", "CNY"], "status": ["paid", "refunded"],
                      "properties": pa.array([None, None], pa.string())}),
        )
    finally:
        wh.close()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """One project per test module: signing in (argon2) is deliberately slow."""
    from tests.conftest import make_project

    settings = make_project(tmp_path_factory.mktemp("web"))
    seed(settings)
    url = open_appdb(settings)
    for role in ROLES:
        accounts.add_user(url, f"{role}@example.com", PASSWORD, role)
    # Spare accounts for tests that sign out, disable or lock an account.
    for i in range(3):
        accounts.add_user(url, f"spare{i}@example.com", PASSWORD, "viewer")
    return settings


@pytest.fixture(scope="module")
def app(project: Settings) -> Iterator[FastAPI]:
    a = create_app(project, flush_interval=None)
    yield a
    a.state.journal.close()


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> str:
    """Sign in through the real form; returns the session's CSRF token."""
    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    r = client.post(
        "/login", data={"email": email, "password": password, "csrf_token": token.group(1), "next": "/"},
        follow_redirects=False,
    )
    assert r.status_code == 303, r.text
    me = client.get("/api/v1/me")
    assert me.status_code == 200, me.text
    return str(me.json()["csrf_token"])


@pytest.fixture(scope="module")
def clients(app: FastAPI) -> Iterator[dict[str, TestClient]]:
    """One signed-in client per role (plus "anon"); each has its CSRF header set."""
    out: dict[str, TestClient] = {}
    for role in ROLES:
        c = TestClient(app, headers={"accept-language": "en"}, raise_server_exceptions=False)
        c.__enter__()
        csrf = sign_in(c, f"{role}@example.com")
        c.headers["X-CSRF-Token"] = csrf
        out[role] = c
    anon = TestClient(app, headers={"accept-language": "en"}, raise_server_exceptions=False)
    anon.__enter__()
    out["anon"] = anon
    yield out
    for c in out.values():
        c.__exit__(None, None, None)


@pytest.fixture(scope="module")
def capture_key(project: Settings) -> str:
    _key, secret = accounts.create_api_key(project.appdb_url, "sdk", "capture")
    return secret
