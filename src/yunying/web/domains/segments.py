"""Segments (用户分群) and tags (用户标签) over HTTP: the calls ``yunying segment …`` and
``yunying tag …`` make, with the same models (a segment body is its YAML file as JSON)."""

import datetime as dt
import io
from typing import Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import Field

from yunying.segments import service, tags
from yunying.segments.rules import parse_rule
from yunying.segments.timeutil import to_utc_naive
from yunying.web.accounts import Principal
from yunying.web.domains._common import (
    ERRORS,
    IDEMPOTENCY_DOC,
    Strict,
    acted,
    replayed,
    settings,
    warehouse,
)
from yunying.web.security import require

error_status = {
    "segment.not_found": 404,
    "segment.exists": 409,
    "segment.static_frozen": 409,
    "web.idempotency_reused": 409,
}

api_router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["segments"])

AS_OF = Query(default=None, description="Evaluate relative periods as of this local time (default: now).")


class PreviewRequest(Strict):
    """A rule (the ``rule`` of a segment file) to size without saving."""

    rule: dict[str, Any]
    as_of: dt.datetime | None = Field(default=None, description="Local time in the project's zone; default now.")
    sample: int = Field(default=10, ge=0, le=1000, description="Example user ids to return.")


class TagUsers(Strict):
    user_ids: list[str] = Field(min_length=1, max_length=100_000)


def _utc(request: Request, at: dt.datetime | None) -> dt.datetime | None:
    return to_utc_naive(at, settings(request).timezone) if at else None


@api_router.get("/segments", response_model=service.SegmentList)
def list_segments(request: Request, p: Principal = Depends(require("read"))) -> service.SegmentList:
    """Segments with their size and last refresh (`yunying segment list`)."""
    return service.list_segments(settings(request))


@api_router.post("/segments", response_model=service.RefreshResult, status_code=201)
def create_segment(
    spec: service.SegmentSpec,
    request: Request,
    as_of: dt.datetime | None = AS_OF,
    idempotency_key: str | None = Header(default=None, max_length=128, description=IDEMPOTENCY_DOC),
    p: Principal = Depends(require("segments.write")),
) -> Any:
    """Save a segment (body: the segment file as JSON) and compute its members."""
    s = settings(request)
    if replayed(request, "segment.create", idempotency_key, spec.name):
        got = service.get_segment(s, spec.name)
        res = service.RefreshResult(name=got.name, size=got.size, joined=0, left=0,
                                    at=got.last_refreshed_at or got.created_at)
        return JSONResponse(res.model_dump(mode="json"), headers={"Idempotent-Replayed": "true"})
    at = _utc(request, as_of)
    res = warehouse(request, lambda wh: service.create_segment(s, wh, spec, as_of=at, by=p.person))
    acted(request, p, "segment.create", spec.name, idempotency_key)
    return res


@api_router.post("/segments/preview", response_model=service.PreviewResult)
def preview_segment(body: PreviewRequest, request: Request, p: Principal = Depends(require("read"))) -> service.PreviewResult:
    """Audience size of a rule and a few example ids, without saving (`yunying segment preview`)."""
    s = settings(request)
    rule = parse_rule(body.rule)
    at = _utc(request, body.as_of)
    return warehouse(request, lambda wh: service.preview(s, wh, rule, at, body.sample))  # type: ignore[no-any-return]


@api_router.get("/segments/{name}", response_model=service.SegmentSummary)
def get_segment(name: str, request: Request, p: Principal = Depends(require("read"))) -> service.SegmentSummary:
    """One segment with its rule."""
    return service.get_segment(settings(request), name)


@api_router.post("/segments/{name}/refresh", response_model=service.RefreshResult)
def refresh_segment(
    name: str, request: Request, as_of: dt.datetime | None = AS_OF, p: Principal = Depends(require("segments.write"))
) -> service.RefreshResult:
    """Recompute the members of a dynamic segment; joins and leaves are recorded."""
    s = settings(request)
    at = _utc(request, as_of)
    res = warehouse(request, lambda wh: service.refresh(s, wh, name, as_of=at))
    acted(request, p, "segment.refresh", name, detail=f"size={res.size} joined={res.joined} left={res.left}")
    return res  # type: ignore[no-any-return]


@api_router.get("/segments/{name}/members", response_model=service.MemberPage)
def segment_members(
    name: str,
    request: Request,
    offset: int = Query(default=0, ge=0),
    limit: int = Query(default=100, ge=1, le=10_000),
    p: Principal = Depends(require("read")),
) -> service.MemberPage:
    """Current members as of the last refresh, by user id, a page at a time."""
    return service.member_page(settings(request), name, offset, limit)


@api_router.get("/segments/{name}/history", response_model=service.MembershipHistory)
def segment_history(
    name: str, request: Request, user: str | None = Query(default=None, max_length=128),
    p: Principal = Depends(require("read")),
) -> service.MembershipHistory:
    """Who joined and who left, oldest first (one user's with ``user``)."""
    return service.history(settings(request), name, user)


@api_router.get(
    "/segments/{name}/export.csv",
    response_class=Response,
    responses={200: {"content": {"text/csv": {}}, "description": "user_id,joined_at"}},
)
def export_segment(name: str, request: Request, p: Principal = Depends(require("read"))) -> Response:
    """The members as CSV (``user_id,joined_at``); cells a spreadsheet would run as a
    formula (starting with = + - @, tab or CR) get a leading single quote."""
    rows = service.member_rows(settings(request), name)
    buf = io.StringIO(newline="")
    service.write_members_csv(rows, buf)
    acted(request, p, "segment.export", name, detail=f"rows={len(rows)}")
    return Response(
        buf.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="segment-{name}.csv"'.encode("ascii", "replace").decode()},
    )


# -- tags -------------------------------------------------------------------------------


@api_router.get("/tags", response_model=tags.TagList, tags=["tags"])
def list_tags(
    request: Request,
    tag: str | None = Query(default=None, max_length=64, description="Only this tag's users."),
    user: str | None = Query(default=None, max_length=128, description="Only this user's tags."),
    p: Principal = Depends(require("read")),
) -> tags.TagList:
    """Tags with user counts, or one tag's users, or one user's tags (`yunying tag list`)."""
    return tags.list_tags(settings(request), tag, user)


@api_router.post("/tags/{tag}/users", response_model=tags.TagChange, tags=["tags"])
def add_tag(tag: str, body: TagUsers, request: Request, p: Principal = Depends(require("segments.write"))) -> tags.TagChange:
    """Tag users (`yunying tag add`); users who have the tag already are left as they are."""
    res = tags.add_tag(settings(request), tag, body.user_ids, p.person)
    acted(request, p, "tag.add", tag, detail=f"requested={res.requested} changed={res.changed}")
    return res


@api_router.post("/tags/{tag}/remove", response_model=tags.TagChange, tags=["tags"])
def remove_tag(tag: str, body: TagUsers, request: Request, p: Principal = Depends(require("segments.write"))) -> tags.TagChange:
    """Remove a tag from users (`yunying tag remove`)."""
    res = tags.remove_tag(settings(request), tag, body.user_ids)
    acted(request, p, "tag.remove", tag, detail=f"requested={res.requested} changed={res.changed}")
    return res
