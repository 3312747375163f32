"""Schemathesis on the routes of web/domains/ (segments, tags, campaigns, tools,
experiments, reports) with more cases each than the whole-API run, as a full key that
belongs to the admin (so approval is reachable too): no server errors."""

from __future__ import annotations

from typing import Any

import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings

from yunying.config import Settings
from yunying.web.accounts import create_api_key

PREFIXES = ("/api/v1/segments", "/api/v1/tags", "/api/v1/campaigns", "/api/v1/tools", "/api/v1/ledger",
            "/api/v1/experiments", "/api/v1/reports")


def test_domain_routes_never_fail_with_a_server_error(app: FastAPI, project: Settings) -> None:
    from schemathesis.checks import not_a_server_error

    key = create_api_key(project.appdb_url, "schemathesis-domains", "full", actor="admin@example.com")[1]
    headers = {"Authorization": f"Bearer {key}", "accept-language": "en"}
    # A segment for generated requests to find (name "a"; short names are generated often).
    from fastapi.testclient import TestClient

    c = TestClient(app, headers=headers)
    assert c.post("/api/v1/segments", json={"name": "a", "rule": {"event": {"name": "view"}}}).status_code == 201
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    ops = [r.ok() for r in schema.get_all_operations()]
    ops = [op for op in ops if op.path.startswith(PREFIXES)]
    assert len(ops) == 37, [op.path for op in ops]  # every domain route is in the document
    seen: list[int] = []
    for op in ops:

        @given(case=op.as_strategy())
        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True, database=None)
        def check(case: Any) -> None:
            response = case.call(headers=headers, timeout=60)
            seen.append(response.status_code)
            case.validate_response(response, checks=[not_a_server_error])
            assert "Traceback" not in response.text

        check()
    assert len(seen) >= 10 * len(ops)
    assert any(200 <= s < 300 for s in seen) and any(400 <= s < 500 for s in seen)
