"""One dependency decides access: ``require("permission")`` on every route.

The caller is an API key (``Authorization: Bearer yyk_…`` or ``X-API-Key``) or a signed-in
user (session cookie). Cookie-authenticated writes must carry the session's CSRF token
(form field ``csrf_token`` or header ``X-CSRF-Token``); API keys need none because browsers
never send them on their own.
"""

from __future__ import annotations

import hmac
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request

from yunying.web.accounts import ANONYMOUS, PERMISSIONS, Principal, key_principal, session_principal

SESSION_COOKIE = "yy_session"
LANG_COOKIE = "yy_lang"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class Denied(Exception):
    """Not signed in (401) or not allowed (403); handled per client (JSON or redirect)."""

    def __init__(self, status: int, key: str, **params: Any) -> None:
        super().__init__(key)
        self.status = status
        self.key = key
        self.params = params


async def principal_of(request: Request) -> Principal:
    cached = getattr(request.state, "principal", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    url: str = request.app.state.appdb_url
    p: Principal | None = None
    auth = request.headers.get("authorization", "")
    secret = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key", "")
    if secret:
        p = await _in_thread(request, key_principal, url, secret)
        if p is None:
            raise Denied(401, "web.bad_key")
    else:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            p = await _in_thread(request, session_principal, url, token)
    p = p or ANONYMOUS
    request.state.principal = p
    return p


async def _in_thread(request: Request, fn: Callable[..., Any], *args: Any) -> Any:
    from starlette.concurrency import run_in_threadpool

    return await run_in_threadpool(fn, *args)


def require(permission: str) -> Callable[[Request], Awaitable[Principal]]:
    """The dependency every route declares; the route walker test reads ``.permission``."""
    if permission not in PERMISSIONS:
        raise ValueError(f"unknown permission {permission}")

    async def dependency(request: Request) -> Principal:
        p = await principal_of(request)
        if permission != "public":
            if p.kind == "anonymous":
                raise Denied(401, "web.sign_in_required")
            if not p.can(permission):
                raise Denied(403, "web.forbidden", permission=permission)
            if p.kind == "user" and request.method not in SAFE_METHODS:
                await check_csrf(request, p)
        return p

    dependency.permission = permission  # type: ignore[attr-defined]
    return dependency


async def check_csrf(request: Request, p: Principal) -> None:
    sent = request.headers.get("x-csrf-token")
    if not sent and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()
        value = form.get("csrf_token")
        sent = value if isinstance(value, str) else None
    if not sent or not p.csrf_token or not hmac.compare_digest(sent, p.csrf_token):
        raise Denied(403, "web.csrf")


class RateLimiter:
    """Sign-in attempts: at most ``limit`` failures per ``window`` seconds per key (ip+email).

    In memory, per worker process: with N workers an attacker gets N× the budget, which
    still stops online guessing; docs/web.md says so.
    """

    def __init__(self, limit: int = 5, window: float = 300.0) -> None:
        self.limit = limit
        self.window = window
        self._hits: dict[str, deque[float]] = {}
        self._lock = threading.Lock()

    def _trim(self, key: str, now: float) -> deque[float]:
        q = self._hits.setdefault(key, deque())
        while q and q[0] < now - self.window:
            q.popleft()
        return q

    def blocked(self, key: str) -> bool:
        with self._lock:
            return len(self._trim(key, time.monotonic())) >= self.limit

    def failure(self, key: str) -> None:
        with self._lock:
            self._trim(key, time.monotonic()).append(time.monotonic())

    def reset(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)
