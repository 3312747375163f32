"""HTTP API under ``/api/v1``: the same pydantic models as the CLI, described by OpenAPI.

No ``from __future__ import annotations`` here: the analysis routes are built in a loop
and FastAPI must see each route's real query class, not a string.
"""

import datetime as dt
import secrets
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from yunying.appdb import session_scope
from yunying.errors import YunyingError
from yunying.i18n import t
from yunying.web import accounts
from yunying.web.accounts import Principal, audit
from yunying.web.analyses import Analysis, check_limits
from yunying.web.capture import (
    MAX_BYTES,
    MAX_EVENTS,
    CaptureResult,
    FlushResult,
    TimeWindow,
    capture_batch,
    dump_result,
    flush,
    parse_body,
    parse_ts,
)
from yunying.web.models import AuditEntry, Dashboard, Insight, User, utcnow
from yunying.web.security import require

# Row ids are 64-bit signed integers in every app database: a larger id names nothing (and
# would overflow the driver), so it is refused with 422 before any lookup.
MAX_ROW_ID = 2**63 - 1
RowId = Annotated[int, Path(ge=1, le=MAX_ROW_ID)]
BodyId = Annotated[int, Field(ge=1, le=MAX_ROW_ID)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    error: str
    message: str


class Me(BaseModel):
    kind: str
    name: str
    role: str | None
    permissions: list[str]
    csrf_token: str | None


class UserOut(BaseModel):
    id: int
    email: str
    name: str
    role: str
    active: bool
    created_at: dt.datetime


class UserIn(Strict):
    email: str = Field(min_length=3, max_length=254)
    password: str = Field(min_length=8, max_length=200)
    role: Literal["admin", "analyst", "approver", "operator", "viewer"]
    name: str = Field(default="", max_length=120)


class UserPatch(Strict):
    role: Literal["admin", "analyst", "approver", "operator", "viewer"] | None = None
    active: bool | None = None


class ApiKeyOut(BaseModel):
    id: int
    name: str
    prefix: str
    scope: str
    created_by: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class ApiKeyIn(Strict):
    name: str = Field(min_length=1, max_length=120)
    scope: Literal["capture", "read", "full"]


class ApiKeyCreated(ApiKeyOut):
    secret: str = Field(description="Shown once; only its hash is stored.")


class AuditOut(BaseModel):
    id: int
    at: dt.datetime
    actor: str
    action: str
    target: str
    detail: str


class InsightIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    kind: str = Field(min_length=1, max_length=32)
    query: dict[str, Any] = Field(default_factory=dict)


class InsightPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    query: dict[str, Any] | None = None


class InsightOut(BaseModel):
    id: int
    name: str
    kind: str
    query: dict[str, Any]
    owner: str
    shared: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class ShareOut(BaseModel):
    token: str
    url: str


class DashboardIn(Strict):
    name: str = Field(min_length=1, max_length=200)
    insight_ids: list[BodyId] = Field(default_factory=list, max_length=50)


class DashboardPatch(Strict):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    insight_ids: list[BodyId] | None = Field(default=None, max_length=50)


class DashboardOut(BaseModel):
    id: int
    name: str
    insight_ids: list[int]
    owner: str
    shared: bool
    created_at: dt.datetime
    updated_at: dt.datetime


class InsightRun(BaseModel):
    insight: InsightOut
    result: dict[str, Any]


class SharedDashboard(BaseModel):
    dashboard: DashboardOut
    insights: list[InsightRun]


class DataStatus(BaseModel):
    warehouse: dict[str, Any]
    capture: dict[str, int]


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorBody},
    401: {"model": ErrorBody},
    403: {"model": ErrorBody},
    404: {"model": ErrorBody},
    422: {"model": ErrorBody},
}

CAPTURE_SCHEMA: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["events"],
                    "additionalProperties": False,
                    "properties": {
                        "sent_at": {
                            "type": "string", "format": "date-time",
                            "description": "When the client sent the batch, by its own clock: "
                            "each event's ts is moved by (server time − sent_at).",
                        },
                        "events": {
                            "type": "array",
                            "maxItems": MAX_EVENTS,
                            "items": {
                                "type": "object",
                                "required": ["event_id", "event", "user_id", "ts"],
                                "properties": {
                                    "event_id": {"type": "string", "maxLength": 256},
                                    "event": {"type": "string", "maxLength": 256},
                                    "user_id": {"type": "string", "maxLength": 256},
                                    "ts": {"type": "string", "format": "date-time"},
                                    "account_id": {"type": "string", "maxLength": 256},
                                    "session_id": {"type": "string", "maxLength": 256},
                                    "properties": {"type": "object"},
                                },
                            },
                        }
                    },
                }
            }
        },
    }
}


def _insight_out(i: Insight) -> InsightOut:
    return InsightOut(
        id=i.id, name=i.name, kind=i.kind, query=i.query, owner=i.owner,
        shared=i.share_token is not None, created_at=i.created_at, updated_at=i.updated_at,
    )


def _dashboard_out(d: Dashboard) -> DashboardOut:
    return DashboardOut(
        id=d.id, name=d.name, insight_ids=d.insight_ids, owner=d.owner,
        shared=d.share_token is not None, created_at=d.created_at, updated_at=d.updated_at,
    )


def validate_query(
    analyses: dict[str, Analysis], kind: str, query: dict[str, Any], max_cells: int | None = None
) -> dict[str, Any]:
    """A saved insight stores a query that its analysis accepts (checked when saved)."""
    if kind == "overview":
        return {}
    a = analyses.get(kind)
    if a is None:
        raise YunyingError("web.unknown_kind", kind=kind, kinds=", ".join(["overview", *analyses]))
    try:
        q = a.query.model_validate(query)
    except ValidationError as e:
        first = e.errors()[0]
        raise YunyingError(
            "web.bad_field", field=".".join(str(x) for x in first["loc"]) or "query", reason=first["msg"]
        ) from e
    check_limits(q, max_cells)
    return q.model_dump(mode="json", by_alias=True)


def stored_query(a: Analysis, query: dict[str, Any]) -> BaseModel:
    """The query of a saved insight. Insights store the model's own dump, so they hold no
    unknown fields; one saved before a field was removed loads without that field."""
    try:
        return a.query.model_validate(query)
    except ValidationError as e:
        errors = e.errors()
        stale = {str(err["loc"][0]) for err in errors if err["type"] == "extra_forbidden" and len(err["loc"]) == 1}
        if stale and len(stale) == len(errors):
            return a.query.model_validate({k: v for k, v in query.items() if k not in stale})
        first = errors[0]
        raise YunyingError(
            "web.bad_field", field=".".join(str(x) for x in first["loc"]) or "query", reason=first["msg"]
        ) from e


def run_insight(request: Request, kind: str, query: dict[str, Any]) -> dict[str, Any]:
    from yunying.warehouse.overview import overview

    gate = request.app.state.gate
    settings = request.app.state.settings
    if kind == "overview":
        res = gate.run(("overview", ""), lambda wh: overview(wh, settings.timezone))
        return res.model_dump(mode="json")  # type: ignore[no-any-return]
    a: Analysis = request.app.state.analyses[kind]
    q = stored_query(a, query)
    check_limits(q, settings.web.max_query_cells)
    res = gate.run((kind, q.model_dump_json()), lambda wh: a.runner(wh, q))
    return res.model_dump(mode="json")  # type: ignore[no-any-return]


def build_router(analyses: dict[str, Analysis]) -> APIRouter:
    r = APIRouter(prefix="/api/v1", responses=ERRORS)

    @r.get("/me", response_model=Me, tags=["accounts"])
    def me(p: Principal = Depends(require("read"))) -> Me:
        return Me(kind=p.kind, name=p.name, role=p.role, permissions=sorted(p.permissions), csrf_token=p.csrf_token)

    # -- capture ----------------------------------------------------------------------
    @r.post("/capture", response_model=CaptureResult, tags=["capture"], openapi_extra=CAPTURE_SCHEMA)
    async def capture(request: Request, p: Principal = Depends(require("capture"))) -> Response:
        """Up to 1,000 events or 1 MiB per batch; each answered accepted, duplicate or rejected.

        An accepted event is in the durable journal before this answer is sent.
        """
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > MAX_BYTES:
            raise YunyingError("capture.too_large", max=MAX_BYTES)
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BYTES:
                raise YunyingError("capture.too_large", max=MAX_BYTES)
            chunks.append(chunk)
        try:
            body = parse_body(b"".join(chunks))
        except (ValueError, UnicodeDecodeError) as e:
            raise YunyingError("web.bad_json", reason=str(e)[:120]) from e
        if not isinstance(body, dict) or not isinstance(body.get("events"), list):
            raise YunyingError("capture.no_events")
        extra = [k for k in body if k not in ("events", "sent_at")]
        if extra:
            raise YunyingError("web.unknown_field", field=str(extra[0])[:64].encode("utf-8", "backslashreplace").decode())
        events = body["events"]
        if len(events) > MAX_EVENTS:
            raise YunyingError("capture.too_many", max=MAX_EVENTS, count=len(events))
        sent_at = None
        if body.get("sent_at") is not None:
            try:
                sent_at = parse_ts(body["sent_at"]) if isinstance(body["sent_at"], str) else None
            except ValueError:
                sent_at = None
            if sent_at is None:
                raise YunyingError("capture.bad_sent_at", value=str(body["sent_at"])[:64].encode("utf-8", "backslashreplace").decode())
        state = request.app.state
        window = TimeWindow.for_settings(state.settings, sent_at)
        result = await run_in_threadpool(_capture, state, events, window)
        return Response(dump_result(result), media_type="application/json")

    def _capture(state: Any, events: list[Any], window: TimeWindow) -> dict[str, Any]:
        state.stored_ids.refresh()
        return capture_batch(state.journal, events, t, window, state.stored_ids)

    @r.post("/capture/flush", response_model=FlushResult, tags=["capture"])
    def capture_flush(request: Request, p: Principal = Depends(require("data.flush"))) -> FlushResult:
        with request.app.state.gate.exclusive():
            res = flush(request.app.state.settings, request.app.state.journal)
        audit(request.app.state.appdb_url, p.name, "capture.flush", "", f"moved={res.moved}")
        return res

    # -- data -------------------------------------------------------------------------
    @r.get("/data/status", response_model=DataStatus, tags=["data"])
    def data_status(request: Request, p: Principal = Depends(require("data.view"))) -> DataStatus:
        from yunying.warehouse.status import warehouse_status

        st = request.app.state.gate.run(None, warehouse_status)
        return DataStatus(warehouse=st.model_dump(mode="json"), capture=request.app.state.journal.counts())

    from yunying.web.data_routes import add_data_routes

    add_data_routes(r)  # POST /data/delete (admin), in its own module

    @r.get("/overview", tags=["analytics"])
    def get_overview(request: Request, p: Principal = Depends(require("read"))) -> dict[str, Any]:
        """Headline figures of the warehouse (the same JSON as `yunying overview -f json`)."""
        return run_insight(request, "overview", {})

    # -- analyses ---------------------------------------------------------------------
    for a in analyses.values():
        _add_analysis(r, a)

    # -- saved insights ---------------------------------------------------------------
    @r.get("/insights", response_model=list[InsightOut], tags=["insights"])
    def list_insights(request: Request, p: Principal = Depends(require("read"))) -> list[InsightOut]:
        with session_scope(request.app.state.appdb_url) as s:
            return [_insight_out(i) for i in s.scalars(select(Insight).order_by(Insight.id))]

    @r.post("/insights", response_model=InsightOut, status_code=201, tags=["insights"])
    def create_insight(body: InsightIn, request: Request, p: Principal = Depends(require("insights.write"))) -> InsightOut:
        query = validate_query(request.app.state.analyses, body.kind, body.query, request.app.state.settings.web.max_query_cells)
        url = request.app.state.appdb_url
        with session_scope(url) as s:
            i = Insight(name=body.name, kind=body.kind, query=query, owner=p.name)
            s.add(i)
            s.flush()
            out = _insight_out(i)
        audit(url, p.name, "insight.create", f"{out.id}:{out.name}")
        return out

    def _get_insight(s: Any, insight_id: int) -> Insight:
        i = s.get(Insight, insight_id)
        if i is None:
            raise YunyingError("web.not_found_insight", id=insight_id)
        return i  # type: ignore[no-any-return]

    @r.get("/insights/{insight_id}", response_model=InsightOut, tags=["insights"])
    def get_insight(insight_id: RowId, request: Request, p: Principal = Depends(require("read"))) -> InsightOut:
        with session_scope(request.app.state.appdb_url) as s:
            return _insight_out(_get_insight(s, insight_id))

    @r.get("/insights/{insight_id}/result", response_model=InsightRun, tags=["insights"])
    def insight_result(insight_id: RowId, request: Request, p: Principal = Depends(require("read"))) -> InsightRun:
        with session_scope(request.app.state.appdb_url) as s:
            i = _insight_out(_get_insight(s, insight_id))
        return InsightRun(insight=i, result=run_insight(request, i.kind, i.query))

    @r.patch("/insights/{insight_id}", response_model=InsightOut, tags=["insights"])
    def update_insight(insight_id: RowId, body: InsightPatch, request: Request, p: Principal = Depends(require("insights.write"))) -> InsightOut:
        url = request.app.state.appdb_url
        with session_scope(url) as s:
            i = _get_insight(s, insight_id)
            if body.name is not None:
                i.name = body.name
            if body.query is not None:
                i.query = validate_query(
                    request.app.state.analyses, i.kind, body.query, request.app.state.settings.web.max_query_cells
                )
            i.updated_at = utcnow()
            out = _insight_out(i)
        audit(url, p.name, "insight.update", f"{out.id}:{out.name}", body.model_dump_json(exclude_none=True)[:500])
        return out

    @r.delete("/insights/{insight_id}", status_code=204, tags=["insights"])
    def delete_insight(insight_id: RowId, request: Request, p: Principal = Depends(require("insights.write"))) -> None:
        url = request.app.state.appdb_url
        with session_scope(url) as s:
            i = _get_insight(s, insight_id)
            name = i.name
            s.delete(i)
        audit(url, p.name, "insight.delete", f"{insight_id}:{name}")

    @r.post("/insights/{insight_id}/share", response_model=ShareOut, tags=["insights"])
    def share_insight(insight_id: RowId, request: Request, p: Principal = Depends(require("insights.write"))) -> ShareOut:
        url = request.app.state.appdb_url
        with session_scope(url) as s:
            i = _get_insight(s, insight_id)
            i.share_token = i.share_token or secrets.token_urlsafe(24)
            token = i.share_token
        audit(url, p.name, "insight.share", str(insight_id))
        return ShareOut(token=token, url=f"/s/i/{token}")

    @r.delete("/insights/{insight_id}/share", status_code=204, tags=["insights"])
    def unshare_insight(insight_id: RowId, request: Request, p: Principal = Depends(require("insights.write"))) -> None:
        url = request.app.state.appdb_url
        with session_scope(url) as s:
            _get_insight(s, insight_id).share_token = None
        audit(url, p.name, "insight.unshare", str(insight_id))

    @r.get("/shared/insights/{token}", response_model=InsightRun, tags=["shared"])
    def shared_insight(token: str, request: Request, p: Principal = Depends(require("public"))) -> InsightRun:
        """Read-only view of a shared insight: whoever has the link, nothing more."""
        with session_scope(request.app.state.appdb_url) as s:
            i = s.scalar(select(Insight).where(Insight.share_token == token))
            if i is None:
                raise YunyingError("web.not_found_share")
            out = _insight_out(i)
        return InsightRun(insight=out, result=run_insight(request, out.kind, out.query))

    # -- dashboards -------------------------------------------------------------------
    def _check_insights(s: Any, ids: list[int]) -> None:
        for iid in ids:
            if s.get(Insight, iid) is None:
                raise YunyingError("web.not_found_insight", id=iid)

    def _get_dashboard(s: Any, dashboard_id: int) -> Dashboard:
        d = s.get(Dashboard, dashboard_id)
        if d is None:
            raise YunyingError("web.not_found_dashboard", id=dashboard_id)
        return d  # type: ignore[no-any-return]

    @r.get("/dashboards", response_model=list[DashboardOut], tags=["dashboards"])
    def list_dashboards(request: Request, p: Principal = Depends(require("read"))) -> list[DashboardOut]:
        with session_scope(request.app.state.appdb_url) as s:
            return [_dashboard_out(d) for d in s.scalars(select(Dashboard).order_by(Dashboard.id))]

    @r.post("/dashboards", response_model=DashboardOut, status_code=201, tags=["dashboards"])
    def create_dashboard(body: DashboardIn, request: Request, p: Principal = Depends(require("insights.write"))) -> DashboardOut:
        url = request.app.state.appdb_url
        with session_scope(url) as s:
            _check_insights(s, body.insight_ids)
            d = Dashboard(name=body.name, insight_ids=body.insight_ids, owner=p.name)
            s.add(d)
            s.flush()
            out = _dashboard_out(d)
        audit(url, p.name, "dashboard.create", f"{out.id}:{out.name}")
        return out

    @r.get("/dashboards/{dashboard_id}", response_model=DashboardOut, tags=["dashboards"])
    def get_dashboard(dashboard_id: RowId, request: Request, p: Principal = Depends(require("read"))) -> DashboardOut:
        with session_scope(request.app.state.appdb_url) as s:
            return _dashboard_out(_get_dashboard(s, dashboard_id))

    @r.patch("/dashboards/{dashboard_id}", response_model=DashboardOut, tags=["dashboards"])
    def update_dashboard(dashboard_id: RowId, body: DashboardPatch, request: Request, p: Principal = Depends(require("insights.write"))) -> DashboardOut:
        url = request.app.state.appdb_url
        with session_scope(url) as s:
            d = _get_dashboard(s, dashboard_id)
            if body.name is not None:
                d.name = body.name
            if body.insight_ids is not None:
                _check_insights(s, body.insight_ids)
                d.insight_ids = body.insight_ids
            d.updated_at = utcnow()
            out = _dashboard_out(d)
        audit(url, p.name, "dashboard.update", f"{out.id}:{out.name}", body.model_dump_json(exclude_none=True)[:500])
        return out

    @r.delete("/dashboards/{dashboard_id}", status_code=204, tags=["dashboards"])
    def delete_dashboard(dashboard_id: RowId, request: Request, p: Principal = Depends(require("insights.write"))) -> None:
        url = request.app.state.appdb_url
        with session_scope(url) as s:
            d = _get_dashboard(s, dashboard_id)
            name = d.name
            s.delete(d)
        audit(url, p.name, "dashboard.delete", f"{dashboard_id}:{name}")

    @r.post("/dashboards/{dashboard_id}/share", response_model=ShareOut, tags=["dashboards"])
    def share_dashboard(dashboard_id: RowId, request: Request, p: Principal = Depends(require("insights.write"))) -> ShareOut:
        url = request.app.state.appdb_url
        with session_scope(url) as s:
            d = _get_dashboard(s, dashboard_id)
            d.share_token = d.share_token or secrets.token_urlsafe(24)
            token = d.share_token
        audit(url, p.name, "dashboard.share", str(dashboard_id))
        return ShareOut(token=token, url=f"/s/d/{token}")

    @r.delete("/dashboards/{dashboard_id}/share", status_code=204, tags=["dashboards"])
    def unshare_dashboard(dashboard_id: RowId, request: Request, p: Principal = Depends(require("insights.write"))) -> None:
        url = request.app.state.appdb_url
        with session_scope(url) as s:
            _get_dashboard(s, dashboard_id).share_token = None
        audit(url, p.name, "dashboard.unshare", str(dashboard_id))

    @r.get("/shared/dashboards/{token}", response_model=SharedDashboard, tags=["shared"])
    def shared_dashboard(token: str, request: Request, p: Principal = Depends(require("public"))) -> SharedDashboard:
        return load_shared_dashboard(request, token)

    # -- users, keys, audit -----------------------------------------------------------
    @r.get("/users", response_model=list[UserOut], tags=["accounts"])
    def list_users(request: Request, p: Principal = Depends(require("users.manage"))) -> list[UserOut]:
        return [UserOut.model_validate(u, from_attributes=True) for u in accounts.list_users(request.app.state.appdb_url)]

    @r.post("/users", response_model=UserOut, status_code=201, tags=["accounts"])
    def add_user(body: UserIn, request: Request, p: Principal = Depends(require("users.manage"))) -> UserOut:
        u = accounts.add_user(request.app.state.appdb_url, body.email, body.password, body.role, body.name, actor=p.name)
        return UserOut.model_validate(u, from_attributes=True)

    @r.patch("/users/{user_id}", response_model=UserOut, tags=["accounts"])
    def patch_user(user_id: RowId, body: UserPatch, request: Request, p: Principal = Depends(require("users.manage"))) -> UserOut:
        url = request.app.state.appdb_url
        with session_scope(url) as s:
            u = s.get(User, user_id)
            if u is None:
                raise YunyingError("web.user_unknown", email=str(user_id))
            email = u.email
        res = accounts.update_user(url, email, role=body.role, active=body.active, actor=p.name)
        return UserOut.model_validate(res, from_attributes=True)

    @r.get("/apikeys", response_model=list[ApiKeyOut], tags=["accounts"])
    def list_keys(request: Request, p: Principal = Depends(require("apikeys.manage"))) -> list[ApiKeyOut]:
        return [ApiKeyOut.model_validate(k, from_attributes=True) for k in accounts.list_api_keys(request.app.state.appdb_url)]

    @r.post("/apikeys", response_model=ApiKeyCreated, status_code=201, tags=["accounts"])
    def create_key(body: ApiKeyIn, request: Request, p: Principal = Depends(require("apikeys.manage"))) -> ApiKeyCreated:
        key, secret = accounts.create_api_key(request.app.state.appdb_url, body.name, body.scope, actor=p.name)
        return ApiKeyCreated(**ApiKeyOut.model_validate(key, from_attributes=True).model_dump(), secret=secret)

    @r.delete("/apikeys/{key_id}", response_model=ApiKeyOut, tags=["accounts"])
    def revoke_key(key_id: RowId, request: Request, p: Principal = Depends(require("apikeys.manage"))) -> ApiKeyOut:
        key = accounts.revoke_api_key(request.app.state.appdb_url, key_id, actor=p.name)
        return ApiKeyOut.model_validate(key, from_attributes=True)

    @r.get("/audit", response_model=list[AuditOut], tags=["accounts"])
    def audit_log(request: Request, limit: int = 100, p: Principal = Depends(require("audit.read"))) -> list[AuditOut]:
        limit = max(1, min(limit, 1000))
        with session_scope(request.app.state.appdb_url) as s:
            rows = s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit))
            return [AuditOut.model_validate(a, from_attributes=True) for a in rows]

    return r


def load_shared_dashboard(request: Request, token: str) -> SharedDashboard:
    with session_scope(request.app.state.appdb_url) as s:
        d = s.scalar(select(Dashboard).where(Dashboard.share_token == token))
        if d is None:
            raise YunyingError("web.not_found_share")
        out = _dashboard_out(d)
        insights = [s.get(Insight, iid) for iid in d.insight_ids]
        outs = [_insight_out(i) for i in insights if i is not None]
    return SharedDashboard(
        dashboard=out, insights=[InsightRun(insight=i, result=run_insight(request, i.kind, i.query)) for i in outs]
    )


def _add_analysis(r: APIRouter, a: Analysis) -> None:
    Query = a.query
    Result = a.result

    def endpoint(q: Query, request: Request, p: Principal = Depends(require("read"))) -> Any:  # type: ignore[valid-type]
        query: BaseModel = q
        check_limits(query, request.app.state.settings.web.max_query_cells)
        return request.app.state.gate.run((a.name, query.model_dump_json()), lambda wh: a.runner(wh, query))

    endpoint.__doc__ = f"Run the {a.name} analysis: body {Query.__name__}, answer {Result.__name__} (same JSON as the CLI's --format json)."
    r.add_api_route(
        f"/analytics/{a.name}", endpoint, methods=["POST"], response_model=Result,
        tags=["analytics"], name=f"analysis_{a.name}",
    )


def error_json(status: int, key: str, message: str) -> JSONResponse:
    return JSONResponse({"error": key, "message": message}, status_code=status)

