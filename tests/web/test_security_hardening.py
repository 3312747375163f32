"""Security items of issue 13 through a running ``yunying serve``: the demo account is never
revived, and X-Forwarded-For is believed only from configured proxies."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from tests.conftest import make_project
from tests.web.server import Server
from yunying.appdb import open_appdb, session_scope
from yunying.web.accounts import add_user, hash_password, update_user
from yunying.web.models import AuditEntry, User

pytestmark = pytest.mark.xdist_group("web")

DEMO = "demo@yunying.local"


def _demo(url: str) -> User:
    with session_scope(url) as s:
        u = s.scalar(select(User).where(User.email == DEMO))
        assert u is not None
        return u


def test_serve_demo_never_revives_a_disabled_demo_admin(tmp_path: Path) -> None:
    url = open_appdb(make_project(tmp_path))
    Server(tmp_path, "--demo").stop()
    first = _demo(url)
    assert first.active and first.role == "admin"
    # An admin disables it, demotes it and changes its password.
    update_user(url, DEMO, role="viewer", active=False, actor="admin@example.com")
    with session_scope(url) as s:
        u = s.scalar(select(User).where(User.email == DEMO))
        assert u is not None
        u.password_hash = hash_password("a-private-password")
    changed = _demo(url)

    Server(tmp_path, "--demo").stop()
    after = _demo(url)
    assert (after.active, after.role, after.password_hash) == (False, "viewer", changed.password_hash)
    log = (tmp_path / "server.log").read_text()
    assert "exists and was left as it is" in log
    with session_scope(url) as s:
        actions = [(a.actor, a.action, a.target) for a in s.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert ("demo", "user.add", DEMO) in actions  # the creation is audited
    assert actions[-1] == ("demo", "user.demo_kept", DEMO)  # and so is leaving it alone


def _attempt(c: httpx.Client, base: str, email: str, password: str, forwarded_for: str) -> int:
    page = c.get(base + "/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    r = c.post(
        base + "/login",
        data={"email": email, "password": password, "csrf_token": token.group(1), "next": "/"},
        headers={"X-Forwarded-For": forwarded_for},
    )
    return r.status_code


def test_spoofed_forwarded_for_gets_no_fresh_sign_in_budget(tmp_path: Path) -> None:
    url = open_appdb(make_project(tmp_path))
    add_user(url, "ana@example.com", "correct-horse-1", "viewer")
    server = Server(tmp_path)
    try:
        with httpx.Client(timeout=30) as c:
            for i in range(5):
                assert _attempt(c, server.url, "ana@example.com", "wrong-password", f"203.0.113.{i}") == 400
            # A new claimed address is the same client (127.0.0.1): still throttled.
            assert _attempt(c, server.url, "ana@example.com", "correct-horse-1", "198.51.100.7") == 429
    finally:
        server.stop()


def test_forwarded_for_is_believed_from_a_configured_proxy(tmp_path: Path) -> None:
    (tmp_path / "yunying.toml").write_text('[web]\ntrusted_proxies = ["127.0.0.1"]\n', encoding="utf-8")
    url = open_appdb(make_project(tmp_path))
    add_user(url, "ana@example.com", "correct-horse-1", "viewer")
    server = Server(tmp_path)
    try:
        with httpx.Client(timeout=30) as c:
            for _ in range(5):
                assert _attempt(c, server.url, "ana@example.com", "wrong-password", "203.0.113.9") == 400
            assert _attempt(c, server.url, "ana@example.com", "correct-horse-1", "203.0.113.9") == 429
            # Behind the trusted proxy, another real client keeps its own budget.
            assert _attempt(c, server.url, "ana@example.com", "correct-horse-1", "198.51.100.7") == 303
    finally:
        server.stop()
