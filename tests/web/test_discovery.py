"""The web finds its domain modules as the CLI finds its commands: no app.py edit per domain."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.routing import APIRouter, iter_route_contexts

from yunying.web import app as web_app
from yunying.web.domains import include_all, modules


def test_every_domain_module_is_found_and_included() -> None:
    names = [m.__name__.rsplit(".", 1)[1] for m in modules()]
    assert names == ["campaigns", "experiments", "reports", "segments", "tools"]
    for m in modules():
        assert isinstance(m.api_router, APIRouter)
        assert all(str(c.path).startswith("/api/v1/") for c in iter_route_contexts(m.api_router.routes))
    fresh = FastAPI()
    assert include_all(fresh) == names
    paths = {str(ctx.path) for ctx in iter_route_contexts(fresh.routes)}
    assert {"/api/v1/segments", "/api/v1/campaigns/{campaign_id}/approve", "/api/v1/tools",
            "/api/v1/experiments/power", "/api/v1/reports/campaigns/{campaign_id}"} <= paths
    # A module's error statuses join the app's table.
    assert web_app._status_for("campaign.not_found") == 404
    assert web_app._status_for("campaign.bad_transition") == 409
    assert web_app._status_for("segment.rule_invalid") == 400
