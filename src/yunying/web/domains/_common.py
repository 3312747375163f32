"""What the domain routers share: the project, the warehouse gate, who acts, the audit log
and the ``Idempotency-Key`` of creates. Nothing here knows a domain's rules."""

from typing import Any

from fastapi import Request
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select

from yunying.appdb import session_scope
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.web.accounts import Principal, audit
from yunying.web.api import ERRORS
from yunying.web.models import AuditEntry

__all__ = ["ERRORS", "IDEMPOTENCY_DOC", "Strict", "acted", "actor_role", "replayed", "settings", "warehouse", "write_warehouse"]

IDEMPOTENCY_DOC = (
    "Optional. Sending the same key again returns the resource the first request created "
    "(header Idempotent-Replayed: true) instead of an 'exists' error."
)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def warehouse(request: Request, fn: Any) -> Any:
    """Run ``fn(wh)`` on a read-only warehouse, uncached (evaluations that depend on the
    time, like a segment's rule; their results go to the app database)."""
    return request.app.state.gate.run(None, fn)


def write_warehouse(request: Request, fn: Any) -> Any:
    """Run ``fn(wh)`` on the warehouse read-write (assignment events), holding the gate
    alone as the capture flush does, and closing the file right after so the CLI can open
    it. A file another process holds is a 503 ``web.warehouse_busy``."""
    from yunying.warehouse.engine import Warehouse
    from yunying.web.analyses import busy_as_503

    s = settings(request)
    with request.app.state.gate.exclusive(), busy_as_503(), Warehouse(s, lock_wait=s.web.lock_wait) as wh:
        return fn(wh)


def actor_role(p: Principal) -> tuple[str, str]:
    """The person recorded (a user's email, also for a user's API key) and the role the
    domain checks. Never taken from the request: an API key without a user acts within its
    scope as an operator, and cannot approve (its scope lacks ``campaigns.approve``)."""
    return p.person, p.role or "operator"


def acted(request: Request, p: Principal, action: str, target: str, key: str | None = None, detail: str = "") -> None:
    """Write the act to the audit log; a create's idempotency key is kept with it."""
    text = f"idempotency_key={key}" if key else detail
    actor = p.name if p.person == p.name else f"{p.person} (via {p.name})"  # a user's API key
    audit(request.app.state.appdb_url, actor[:254], action, target, text)


def replayed(request: Request, action: str, key: str | None, target: str) -> bool:
    """Whether ``key`` already created ``target`` by ``action``; the key reused for another
    target is refused (409)."""
    if not key:
        return False
    with session_scope(request.app.state.appdb_url) as s:
        done = s.scalar(
            select(AuditEntry.target)
            .where(AuditEntry.action == action, AuditEntry.detail == f"idempotency_key={key}")
            .order_by(AuditEntry.id)
            .limit(1)
        )
    if done is None:
        return False
    if done != target:
        raise YunyingError("web.idempotency_reused", ikey=key[:64], target=done)
    return True
