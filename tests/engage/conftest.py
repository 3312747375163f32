"""The engage suite runs on SQLite and on a real PostgreSQL server."""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal
from typing import Any

import pytest

from yunying.appdb import migrate
from yunying.config import Settings
from yunying.engage.schemas import ToolSpec

T0 = dt.datetime(2026, 11, 1, 0, 0, 0)
T1 = dt.datetime(2026, 12, 1, 0, 0, 0)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, settings: Settings) -> str:
    u = settings.appdb_url if request.param == "sqlite" else str(request.getfixturevalue("pg_url"))
    migrate(u)
    return u


def uid(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def spec(kind: str, rules: dict[str, Any], **kw: Any) -> ToolSpec:
    base: dict[str, Any] = {"id": uid(kind), "kind": kind, "name": kind, "starts_at": T0, "ends_at": T1,
                            "rules": rules, "campaign_id": "camp-1"}
    base.update(kw)
    return ToolSpec.model_validate(base)


def D(x: str) -> Decimal:
    return Decimal(x)
