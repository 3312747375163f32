"""Accounts and access: users, roles and their permissions, sessions, API keys, audit log.

The CLI (`yunying user …`, `yunying apikey …`) and the web app share these functions, so
a user disabled from the terminal is signed out of the browser on the next request.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Literal

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, select

from yunying.appdb import session_scope
from yunying.errors import YunyingError
from yunying.web.models import ApiKey, AuditEntry, User, WebSession, utcnow

Role = Literal["admin", "analyst", "approver", "operator", "viewer"]
ROLES: tuple[str, ...] = ("admin", "analyst", "approver", "operator", "viewer")
Scope = Literal["capture", "read", "full"]
SCOPES: tuple[str, ...] = ("capture", "read", "full")

# Every route names exactly one of these; docs/web.md shows the same matrix.
PERMISSIONS: dict[str, str] = {
    "public": "anyone, signed in or not (sign-in page, static files, shared links)",
    "read": "see the overview, analyses, metrics, saved insights and dashboards",
    "insights.write": "create, change, share and delete saved insights and dashboards",
    "data.view": "see data status and the quarantine",
    "data.flush": "move captured events into the warehouse now",
    "data.delete": "delete warehouse rows by key, filter or time window (audited)",
    "capture": "send events to the capture endpoint",
    "alerts.view": "see alerts",
    "users.manage": "add, change and disable users",
    "apikeys.manage": "create, list and revoke API keys",
    "audit.read": "read the audit log",
    "segments.write": "create and refresh segments, tag users",
    "campaigns.write": "create campaigns and run them: schedule, start, end, review, assign",
    "campaigns.approve": "approve campaigns (a signed-in user, or an API key whose user, holds the role)",
    "tools.write": "create incentive tools and generate their codes",
    "experiments.write": "create experiments and assign users to them",
}

# Approval is a person's act: an API key carries it only when the user who owns the key
# (the key's ``created_by``) holds it through their role. See ``key_principal``.
PERSONAL_PERMISSIONS = frozenset({"campaigns.approve"})

_READ = frozenset({"public", "read", "alerts.view"})
_ACT = frozenset({"segments.write", "campaigns.write", "tools.write", "experiments.write"})

ROLE_PERMISSIONS: dict[str, frozenset[str]] = {
    "viewer": _READ,
    "approver": _READ | {"campaigns.approve"},
    "operator": _READ | {"data.view", "data.flush", "capture"} | _ACT,
    "analyst": _READ | {"data.view", "insights.write", "segments.write", "experiments.write"},
    "admin": frozenset(PERMISSIONS),
}

SCOPE_PERMISSIONS: dict[str, frozenset[str]] = {
    "capture": frozenset({"public", "capture"}),
    "read": frozenset({"public", "read", "alerts.view", "data.view"}),
    "full": frozenset(PERMISSIONS) - PERSONAL_PERMISSIONS,
}

KEY_PREFIX = "yyk_"
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")
_hasher = PasswordHasher()


@dataclass(frozen=True)
class Principal:
    """Who is calling: a signed-in user or an API key."""

    kind: Literal["user", "apikey", "anonymous"]
    name: str
    permissions: frozenset[str]
    user_id: int | None = None
    role: str | None = None
    csrf_token: str | None = None
    language: str | None = None
    user_email: str | None = None  # an API key's owner, when the key belongs to a user

    def can(self, permission: str) -> bool:
        return permission in self.permissions

    @property
    def person(self) -> str:
        """Who is recorded as having acted: the user's email (also for a user's API key)."""
        return self.user_email or self.name


ANONYMOUS = Principal("anonymous", "anonymous", frozenset({"public"}))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def hash_password(password: str) -> str:
    if len(password) < 8:
        raise YunyingError("web.password_short")
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def audit(url: str, actor: str, action: str, target: str = "", detail: str = "") -> None:
    with session_scope(url) as s:
        s.add(AuditEntry(actor=actor, action=action, target=target[:254], detail=detail))


# -- users ------------------------------------------------------------------------------
def add_user(url: str, email: str, password: str, role: str, name: str = "", actor: str = "cli") -> User:
    email = email.strip().lower()
    if not _EMAIL.match(email):
        raise YunyingError("web.bad_email", email=email)
    if role not in ROLES:
        raise YunyingError("web.bad_role", role=role, roles=", ".join(ROLES))
    pw = hash_password(password)
    with session_scope(url) as s:
        if s.scalar(select(User).where(User.email == email)) is not None:
            raise YunyingError("web.user_exists", email=email)
        user = User(email=email, name=name or email.split("@")[0], password_hash=pw, role=role)
        s.add(user)
        s.flush()
    audit(url, actor, "user.add", email, f"role={role}")
    return user


def list_users(url: str) -> list[User]:
    with session_scope(url) as s:
        return list(s.scalars(select(User).order_by(User.id)))


def get_user(url: str, email: str) -> User:
    with session_scope(url) as s:
        user = s.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise YunyingError("web.user_unknown", email=email)
        return user


def update_user(
    url: str,
    email: str,
    *,
    role: str | None = None,
    active: bool | None = None,
    actor: str = "cli",
) -> User:
    if role is not None and role not in ROLES:
        raise YunyingError("web.bad_role", role=role, roles=", ".join(ROLES))
    with session_scope(url) as s:
        user = s.scalar(select(User).where(User.email == email.strip().lower()))
        if user is None:
            raise YunyingError("web.user_unknown", email=email)
        changes = []
        if role is not None and role != user.role:
            changes.append(f"role {user.role}->{role}")
            user.role = role
        if active is not None and active != user.active:
            changes.append(f"active {user.active}->{active}")
            user.active = active
            if not active:
                s.execute(delete(WebSession).where(WebSession.user_id == user.id))
    audit(url, actor, "user.update", user.email, "; ".join(changes))
    return user


def ensure_user(url: str, email: str, password: str, role: str) -> bool:
    """Create the user unless it exists (the demo admin); True when created.

    An existing account is never changed: an admin may have disabled it, changed its role
    or its password, and starting the server must not undo that. Both outcomes are audited.
    """
    with session_scope(url) as s:
        user = s.scalar(select(User).where(User.email == email))
        state = None if user is None else f"role={user.role}; active={user.active}"
    if state is not None:
        audit(url, "demo", "user.demo_kept", email, state)
        return False
    try:
        add_user(url, email, password, role, name="Demo", actor="demo")  # audited as user.add
    except YunyingError as e:
        if e.key != "web.user_exists":  # another process created it meanwhile: keep theirs
            raise
        audit(url, "demo", "user.demo_kept", email, "created meanwhile")
        return False
    return True


# -- sessions ---------------------------------------------------------------------------
def authenticate(url: str, email: str, password: str) -> User | None:
    with session_scope(url) as s:
        user = s.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        # Same work as a real check, so timing does not reveal which emails exist.
        verify_password(_DUMMY_HASH, password)
        return None
    if not verify_password(user.password_hash, password) or not user.active:
        return None
    return user


_DUMMY_HASH = _hasher.hash("not-a-real-password")


def create_session(url: str, user: User, max_age: int) -> tuple[str, str]:
    """A new random session token (returned once, stored hashed) and its CSRF token."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(24)
    with session_scope(url) as s:
        s.add(
            WebSession(
                token_hash=sha256(token),
                user_id=user.id,
                csrf_token=csrf,
                expires_at=utcnow() + dt.timedelta(seconds=max_age),
            )
        )
    return token, csrf


def session_principal(url: str, token: str) -> Principal | None:
    with session_scope(url) as s:
        row = s.execute(
            select(WebSession, User)
            .join(User, User.id == WebSession.user_id)
            .where(WebSession.token_hash == sha256(token))
        ).first()
        if row is None:
            return None
        sess, user = row
        if sess.expires_at < utcnow() or not user.active:
            s.delete(sess)
            return None
        return Principal(
            "user",
            user.email,
            ROLE_PERMISSIONS.get(user.role, frozenset({"public"})),
            user_id=user.id,
            role=user.role,
            csrf_token=sess.csrf_token,
            language=user.language,
        )


def end_session(url: str, token: str) -> None:
    with session_scope(url) as s:
        s.execute(delete(WebSession).where(WebSession.token_hash == sha256(token)))


# -- API keys ---------------------------------------------------------------------------
def create_api_key(url: str, name: str, scope: str, actor: str = "cli") -> tuple[ApiKey, str]:
    """Returns the row and the secret, which is shown once and stored only hashed."""
    if scope not in SCOPES:
        raise YunyingError("web.bad_scope", scope=scope, scopes=", ".join(SCOPES))
    name = name.strip()
    if not name or len(name) > 120:
        raise YunyingError("web.bad_key_name")
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    with session_scope(url) as s:
        key = ApiKey(
            name=name, prefix=secret[:10], key_hash=sha256(secret), scope=scope, created_by=actor
        )
        s.add(key)
        s.flush()
    audit(url, actor, "apikey.create", f"{key.id}:{name}", f"scope={scope}")
    return key, secret


def list_api_keys(url: str) -> list[ApiKey]:
    with session_scope(url) as s:
        return list(s.scalars(select(ApiKey).order_by(ApiKey.id)))


def revoke_api_key(url: str, key_id: int, actor: str = "cli") -> ApiKey:
    with session_scope(url) as s:
        key = s.get(ApiKey, key_id)
        if key is None:
            raise YunyingError("web.key_unknown", id=key_id)
        if key.revoked_at is None:
            key.revoked_at = utcnow()
    with _key_cache_lock:
        _key_cache.clear()
    audit(url, actor, "apikey.revoke", f"{key.id}:{key.name}")
    return key


# Capture SDKs send a key with every batch: remember answers briefly. A revocation made in
# this process clears the memory at once; one made elsewhere (the CLI, another worker)
# takes effect within KEY_CACHE_SECONDS.
KEY_CACHE_SECONDS = 5.0
_key_cache: dict[str, tuple[float, Principal | None]] = {}
_key_cache_lock = threading.Lock()


def key_principal(url: str, secret: str) -> Principal | None:
    if not secret.startswith(KEY_PREFIX):
        return None
    digest = sha256(secret)
    now = time.monotonic()
    with _key_cache_lock:
        hit = _key_cache.get(url + digest)
    if hit is not None and hit[0] > now:
        return hit[1]
    with session_scope(url) as s:
        key = s.scalar(select(ApiKey).where(ApiKey.key_hash == digest))
        p = None
        if key is not None and key.revoked_at is None:
            perms = SCOPE_PERMISSIONS[key.scope]
            owner = s.scalar(select(User).where(User.email == key.created_by, User.active.is_(True)))
            if owner is None:
                p = Principal("apikey", f"apikey:{key.id}:{key.name}", perms)
            else:
                # A full key also acts for its user in what only a person may do (approve),
                # when the user's role allows it; never more than the user's role.
                personal = ROLE_PERMISSIONS.get(owner.role, frozenset()) & PERSONAL_PERMISSIONS
                if key.scope == "full":
                    perms = perms | personal
                p = Principal(
                    "apikey", f"apikey:{key.id}:{key.name}", perms,
                    user_id=owner.id, role=owner.role, user_email=owner.email,
                )
    with _key_cache_lock:
        if len(_key_cache) > 10_000:
            _key_cache.clear()
        _key_cache[url + digest] = (now + KEY_CACHE_SECONDS, p)
    return p
