"""Campaigns (活动) over HTTP: create, list, show, the lifecycle and assignment, calling
``yunying.engage.campaigns`` as ``yunying campaign …`` does, with the same models.

Who acts is the signed-in user (or the user an API key belongs to), never a name or role in
the body: approval needs ``campaigns.approve`` (roles approver and admin) and records the
user's email and role as the approver.
"""

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from yunying.engage import campaigns as svc
from yunying.segments.timeutil import to_utc_naive
from yunying.web.accounts import Principal
from yunying.web.domains._common import (
    ERRORS,
    IDEMPOTENCY_DOC,
    Strict,
    acted,
    actor_role,
    replayed,
    settings,
    write_warehouse,
)
from yunying.web.security import require

error_status = {
    "campaign.not_found": 404,
    "campaign.exists": 409,
    "campaign.forbidden": 403,
    "campaign.bad_transition": 409,
    "campaign.needs_approval": 409,
    "campaign.not_yet": 409,
    "campaign.already_over": 409,
    "campaign.cannot_assign": 409,
    "campaign.tools_over_budget": 409,
}

api_router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["campaigns"])


class ReviewRequest(Strict):
    notes: str = Field(min_length=1, max_length=20_000, description="Review conclusions (复盘结论).")


class AssignRequest(Strict):
    refresh: bool = Field(default=False, description="Refresh the (dynamic) segment first.")
    as_of: dt.datetime | None = Field(default=None, description="Segment evaluation time (local).")


@api_router.get("/campaigns", response_model=svc.CampaignList)
def list_campaigns(
    request: Request,
    status: str | None = Query(default=None, max_length=16, description="draft, scheduled, running, ended or reviewed"),
    p: Principal = Depends(require("read")),
) -> svc.CampaignList:
    """Campaigns by start time (`yunying campaign list`)."""
    return svc.list_campaigns(settings(request), status)


@api_router.post("/campaigns", response_model=svc.CampaignOut, status_code=201)
def create_campaign(
    spec: svc.CampaignSpec,
    request: Request,
    idempotency_key: str | None = Header(default=None, max_length=128, description=IDEMPOTENCY_DOC),
    p: Principal = Depends(require("campaigns.write")),
) -> Any:
    """Save a draft (body: the campaign file as JSON); its segment and tools must exist."""
    s = settings(request)
    if replayed(request, "campaign.create", idempotency_key, spec.id):
        out = svc.get_campaign(s, spec.id)
        return JSONResponse(out.model_dump(mode="json"), status_code=201, headers={"Idempotent-Replayed": "true"})
    actor, role = actor_role(p)
    out = svc.create_campaign(s, spec, actor, role)
    acted(request, p, "campaign.create", out.id, idempotency_key)
    return out


@api_router.get("/campaigns/{campaign_id}", response_model=svc.CampaignOut)
def get_campaign(campaign_id: str, request: Request, p: Principal = Depends(require("read"))) -> svc.CampaignOut:
    """One campaign with its history of status changes and its tools' figures."""
    return svc.get_campaign(settings(request), campaign_id)


def _act(request: Request, p: Principal, campaign_id: str, action: str, note: str = "") -> svc.CampaignOut:
    actor, role = actor_role(p)
    out = svc.transition(settings(request), campaign_id, action, actor, role, note=note)
    acted(request, p, f"campaign.{action}", campaign_id, detail=f"by={actor}; role={role}")
    return out


@api_router.post("/campaigns/{campaign_id}/approve", response_model=svc.CampaignOut)
def approve_campaign(campaign_id: str, request: Request, p: Principal = Depends(require("campaigns.approve"))) -> svc.CampaignOut:
    """Approve a draft: the signed-in user (or the API key's user) is recorded as approver."""
    return _act(request, p, campaign_id, "approve")


@api_router.post("/campaigns/{campaign_id}/schedule", response_model=svc.CampaignOut)
def schedule_campaign(campaign_id: str, request: Request, p: Principal = Depends(require("campaigns.write"))) -> svc.CampaignOut:
    """Schedule an approved draft (its tools' budgets must fit the campaign's)."""
    return _act(request, p, campaign_id, "schedule")


@api_router.post("/campaigns/{campaign_id}/start", response_model=svc.CampaignOut)
def start_campaign(campaign_id: str, request: Request, p: Principal = Depends(require("campaigns.write"))) -> svc.CampaignOut:
    """Start a scheduled campaign (not before its start time)."""
    return _act(request, p, campaign_id, "start")


@api_router.post("/campaigns/{campaign_id}/end", response_model=svc.CampaignOut)
def end_campaign(campaign_id: str, request: Request, p: Principal = Depends(require("campaigns.write"))) -> svc.CampaignOut:
    """End a running campaign."""
    return _act(request, p, campaign_id, "end")


@api_router.post("/campaigns/{campaign_id}/review", response_model=svc.CampaignOut)
def review_campaign(
    campaign_id: str, body: ReviewRequest, request: Request, p: Principal = Depends(require("campaigns.write"))
) -> svc.CampaignOut:
    """Record the review (复盘) of an ended campaign."""
    return _act(request, p, campaign_id, "review", body.notes)


@api_router.post("/campaigns/{campaign_id}/assign", response_model=svc.AssignResult)
def assign_campaign(
    campaign_id: str, request: Request, body: AssignRequest | None = None,
    p: Principal = Depends(require("campaigns.write")),
) -> svc.AssignResult:
    """Assign the segment's members to treatment or holdout (idempotent events)."""
    b = body or AssignRequest()
    s = settings(request)
    at = to_utc_naive(b.as_of, s.timezone) if b.as_of else None
    actor, role = actor_role(p)
    res = write_warehouse(request, lambda wh: svc.assign(s, wh, campaign_id, actor, role, refresh_segment=b.refresh, as_of=at))
    acted(request, p, "campaign.assign", campaign_id, detail=f"by={actor}; new={res.new_events}")
    return res  # type: ignore[no-any-return]
