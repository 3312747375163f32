"""Property-based run of every API operation from the OpenAPI document: no server errors."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from yunying.config import Settings
from yunying.web.accounts import create_api_key


@pytest.fixture(scope="module")
def full_key(project: Settings) -> str:
    # Generated ids hit small numbers: keep the key the run uses away from them.
    for i in range(40):
        create_api_key(project.appdb_url, f"filler-{i}", "read")
    return create_api_key(project.appdb_url, "schemathesis", "full")[1]


# Ids at and past the 64-bit edge, and other values a path parameter should refuse cleanly.
EXTREME_IDS = [0, -1, 2**63 - 1, 2**63, 2**64, 10**30]


def _strategies(op: Any) -> list[Any]:
    """Wider than the schema: valid cases (positive), schema-violating ones (negative), and
    every integer path parameter at the extremes."""
    out = [op.as_strategy(GenerationMode.POSITIVE), op.as_strategy(GenerationMode.NEGATIVE)]
    params = [p for p in op.path_parameters if p.definition.get("schema", {}).get("type") == "integer"]
    for p in params:
        for v in EXTREME_IDS:
            out.append(op.as_strategy(GenerationMode.POSITIVE, path_parameters={p.name: v}))
    return out


def test_api_never_fails_with_a_server_error(app: FastAPI, full_key: str) -> None:
    """Each operation of the OpenAPI document: positive and negative cases and extreme ids."""
    schema = schemathesis.openapi.from_asgi("/api/v1/openapi.json", app)
    headers = {"Authorization": f"Bearer {full_key}", "accept-language": "en"}
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) >= 25
    seen: list[int] = []
    skipped: list[str] = []
    for op in operations:
        for i, strategy in enumerate(_strategies(op)):

            @given(case=strategy)
            @settings(max_examples=12 if i < 2 else 1, deadline=None, suppress_health_check=list(HealthCheck),
                      derandomize=True, database=None)
            def check(case: Any) -> None:
                response = case.call(headers=headers, timeout=60)
                seen.append(response.status_code)
                case.validate_response(response, checks=[not_a_server_error])
                assert "Traceback" not in response.text

            try:
                check()
            except Unsatisfiable:  # an operation with nothing to violate (no parameters, no body)
                assert i > 0, op.label
                skipped.append(op.label)
    # The run really exercised the API, with successes and refusals.
    assert len(seen) >= 12 * len(operations)
    assert any(200 <= s < 300 for s in seen) and any(400 <= s < 500 for s in seen)
    assert not [s for s in seen if s >= 500]
    print(f"\nschemathesis: {len(seen)} requests over {len(operations)} operations, statuses {dict(Counter(seen))}")
