"""HTML pages (Jinja2) with partial updates: forms post to ``…/run`` and get a fragment back.

Every page declares its permission with the same ``require`` dependency as the API.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import mimetypes
import re
import secrets
from importlib import resources
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Form, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from pydantic import BaseModel, ValidationError

from yunying import clock, csvsafe
from yunying.errors import YunyingError
from yunying.i18n import get_language, t
from yunying.web import accounts
from yunying.web.accounts import ROLES, SCOPES, Principal
from yunying.web.analyses import Analysis
from yunying.web.security import LANG_COOKIE, SESSION_COOKIE, require

TEMPLATES = Jinja2Templates(directory=str(resources.files("yunying.web") / "templates"))
STATIC = resources.files("yunying.web") / "static"

def attachment(filename: str) -> str:
    """A Content-Disposition for a download: an ASCII name, and the real one (RFC 6266 and
    5987) for names in Chinese; headers are Latin-1, so the raw name would fail the answer."""
    from urllib.parse import quote

    plain = re.sub(r"[^A-Za-z0-9._-]+", "_", filename).strip("_") or "export.csv"
    return f'attachment; filename="{plain}"; filename*=UTF-8\'\'{quote(filename, safe="")}'

LOGIN_CSRF_COOKIE = "yy_login_csrf"


def _localtime(value: Any, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """Naive UTC → the project's time zone (set per request in the template context)."""
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if isinstance(value, dt.datetime):
        tz = TEMPLATES.env.globals.get("project_tz", "UTC")
        aware = value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value
        try:
            return aware.astimezone(ZoneInfo(str(tz))).strftime(fmt)
        except (OverflowError, ValueError):  # a stored year 9999 shifted past year 9999
            return aware.strftime(fmt) + " UTC"
    return str(value)


def _number(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1e6 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        from decimal import Decimal

        if isinstance(value, Decimal):
            return f"{value:,.2f}"
    except ImportError:  # pragma: no cover
        pass
    return str(value)


TEMPLATES.env.globals["_"] = t
TEMPLATES.env.filters["localtime"] = _localtime
TEMPLATES.env.filters["num"] = _number


def _metric_format(value: Any, fmt: str) -> str:
    """A metric value in its spec's format (currency, percent, …), as the CLI shows it."""
    if value is None:
        return "–"
    try:
        from yunying.metrics.compute import format_value
    except ImportError:  # pragma: no cover - the indicator system is part of the package
        return _number(value)
    return format_value(float(value), fmt)


TEMPLATES.env.filters["mfmt"] = _metric_format

NAV = [
    ("overview", "/", "read"),
    ("trends", "/analysis/trends", "read"),
    ("funnel", "/analysis/funnel", "read"),
    ("retention", "/analysis/retention", "read"),
    ("lifecycle", "/analysis/lifecycle", "read"),
    ("stickiness", "/analysis/stickiness", "read"),
    ("rfm", "/analysis/rfm", "read"),
    ("clv", "/analysis/clv", "read"),
    ("tree", "/metrics/tree", "read"),
    ("alerts", "/alerts", "alerts.view"),
    ("insights", "/insights", "read"),
    ("data", "/data", "data.view"),
    ("users", "/admin/users", "users.manage"),
    ("apikeys", "/admin/apikeys", "apikeys.manage"),
]


def page(request: Request, template: str, p: Principal | None, http_status: int = 200, **ctx: Any) -> HTMLResponse:
    settings = request.app.state.settings
    TEMPLATES.env.globals["project_tz"] = settings.timezone
    analyses = request.app.state.analyses
    nav = [
        (key, href)
        for key, href, perm in NAV
        if p is not None and p.can(perm) and (not href.startswith("/analysis/") or key in analyses)
    ]
    return TEMPLATES.TemplateResponse(
        request,
        template,
        {
            "p": p,
            "nav": nav,
            "lang": get_language(),
            "path": request.url.path,
            "project": settings.name,
            "tz": settings.timezone,
            "csrf": p.csrf_token if p else "",
            **ctx,
        },
        status_code=http_status,
    )


def render_error(request: Request, status: int, message: str) -> Response:
    if request.headers.get("x-partial"):
        return HTMLResponse(f'<div class="error">{_esc(message)}</div>', status_code=status)
    p = getattr(request.state, "principal", None)
    return page(request, "error.html", p, http_status=status, status_code=status, message=message)


def _esc(s: str) -> str:
    from html import escape

    return escape(s)


def example_query(name: str, as_of: dt.date | None) -> dict[str, Any]:
    """A query that fills the form: the last 30 days of data, demo-friendly choices."""
    end = as_of or clock.today()
    dates = {"from": (end - dt.timedelta(days=29)).isoformat(), "to": end.isoformat()}
    wide = {"from": (end - dt.timedelta(days=89)).isoformat(), "to": end.isoformat()}
    examples: dict[str, dict[str, Any]] = {
        "funnel": {"steps": [{"event": "view"}, {"event": "add_to_cart"}, {"event": "pay"}], "dates": dates},
        "trends": {"event": "view", "measure": "users", "grain": "day", "dates": dates},
        "retention": {"start_event": "sign_up", "period": "week", "periods": 8, "dates": wide},
        "lifecycle": {"grain": "week", "dates": wide},
        "stickiness": {"period": "week", "dates": dates},
    }
    return examples.get(name, {})


def _default_query(request: Request, a: Analysis) -> str:
    from yunying.warehouse.overview import last_local_day

    tz = request.app.state.settings.timezone
    as_of = request.app.state.gate.run(("last_day", tz), lambda wh: last_local_day(wh, tz))
    example = example_query(a.name, as_of)
    for candidate in (example, {}):
        try:
            return a.query.model_validate(candidate).model_dump_json(indent=2, by_alias=True)
        except ValidationError:
            continue
    return json.dumps(example, indent=2)


def _parse_query(a: Analysis, text: str, max_cells: int | None = None) -> BaseModel:
    try:
        data = json.loads(text or "{}")
    except json.JSONDecodeError as e:
        raise YunyingError("web.bad_json", reason=str(e)) from e
    try:
        q = a.query.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(x) for x in first["loc"]) or "query"
        if first["type"] == "extra_forbidden":
            raise YunyingError("web.unknown_field", field=field) from e
        raise YunyingError("web.bad_field", field=field, reason=first["msg"]) from e
    from yunying.web.analyses import check_limits

    check_limits(q, max_cells)
    return q


def result_view(name: str, result: BaseModel, query: str = "", chart_id: str = "chart-main") -> dict[str, Any]:
    """Table rows plus the chart that suits the analysis (an interactive ECharts chart)."""
    from yunying.web.views import chart_for

    headers: list[str] = []
    rows: list[list[Any]] = []
    to_rows = getattr(result, "to_rows", None)
    if callable(to_rows):
        headers, rows = to_rows()
    else:
        data = result.model_dump(mode="json")
        headers, rows = ["key", "value"], [[k, v] for k, v in data.items()]
    return {"headers": headers, "rows": rows[:500], "truncated": len(rows) > 500, "chart": chart_for(name, result, query, chart_id)}


def build_pages(analyses: dict[str, Analysis]) -> APIRouter:
    r = APIRouter(include_in_schema=False)

    @r.get("/static/{path:path}")
    def static(path: str, p: Principal = Depends(require("public"))) -> Response:
        if ".." in path.split("/"):
            raise YunyingError("web.not_found")
        f = STATIC.joinpath(*path.split("/"))
        if not f.is_file():
            raise YunyingError("web.not_found")
        mime = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return Response(f.read_bytes(), media_type=mime, headers={"Cache-Control": "max-age=3600"})

    @r.get("/healthz")
    def healthz(p: Principal = Depends(require("public"))) -> dict[str, str]:
        return {"status": "ok"}

    # -- sign-in ----------------------------------------------------------------------
    @r.get("/login")
    def login_form(request: Request, next: str = "/", p: Principal = Depends(require("public"))) -> Response:
        token = secrets.token_urlsafe(24)
        resp = page(request, "login.html", None, next=_safe_next(next), login_csrf=token, error=None)
        resp.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax", secure=_secure(request))
        return resp

    @r.post("/login")
    def login(
        request: Request,
        email: str = Form(max_length=254),
        password: str = Form(max_length=200),
        csrf_token: str = Form(max_length=100),
        next: str = Form("/", max_length=500),
        p: Principal = Depends(require("public")),
    ) -> Response:
        url = request.app.state.appdb_url
        limiter = request.app.state.login_limiter
        host = request.client.host if request.client else "?"
        key = f"{host}|{email.strip().lower()}"
        cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
        error = None
        if not cookie or not secrets.compare_digest(cookie, csrf_token):
            error = t("web.csrf")
        elif limiter.blocked(key):
            error = t("web.rate_limited")
        else:
            user = accounts.authenticate(url, email, password)
            if user is None:
                limiter.failure(key)
                error = t("web.bad_login")
            else:
                limiter.reset(key)
                settings = request.app.state.settings
                token, _csrf = accounts.create_session(url, user, settings.web.session_max_age)
                accounts.audit(url, user.email, "session.sign_in", host)
                ok: Response = RedirectResponse(_safe_next(next), status_code=303)
                ok.set_cookie(
                    SESSION_COOKIE, token, max_age=settings.web.session_max_age,
                    httponly=True, samesite="lax", secure=_secure(request),
                )
                ok.delete_cookie(LOGIN_CSRF_COOKIE)
                return ok
        new = secrets.token_urlsafe(24)
        status = 429 if error == t("web.rate_limited") else 400
        resp = page(request, "login.html", None, http_status=status, next=_safe_next(next), login_csrf=new, error=error)
        resp.set_cookie(LOGIN_CSRF_COOKIE, new, httponly=True, samesite="lax", secure=_secure(request))
        return resp

    @r.post("/logout")
    def logout(request: Request, p: Principal = Depends(require("read"))) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        if token:
            accounts.end_session(request.app.state.appdb_url, token)
        resp = RedirectResponse("/login", status_code=303)
        resp.delete_cookie(SESSION_COOKIE)
        return resp

    @r.get("/lang/{lang}")
    def switch_language(lang: str, request: Request, next: str = "/", p: Principal = Depends(require("public"))) -> Response:
        if lang not in ("en", "zh_CN"):
            raise YunyingError("web.bad_language", language=lang[:16])
        resp = RedirectResponse(_safe_next(next), status_code=303)
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 24 * 3600, samesite="lax", secure=_secure(request))
        return resp

    # -- overview ---------------------------------------------------------------------
    @r.get("/")
    def overview_page(request: Request, p: Principal = Depends(require("read"))) -> Response:
        from yunying.web.views import overview_view

        return page(request, "overview.html", p, **overview_view(request))

    # -- analyses ---------------------------------------------------------------------
    @r.get("/analysis/{name}")
    def analysis_page(name: str, request: Request, p: Principal = Depends(require("read"))) -> Response:
        a = analyses.get(name)
        if a is None:
            raise YunyingError("web.analysis_missing", name=name)
        from yunying.web.views import form_for

        query_json = _default_query(request, a)
        return page(
            request, "analysis.html", p, name=name, query_json=query_json,
            form=form_for(name, a, json.loads(query_json)), query_schema=a.query.__name__,
        )

    @r.post("/analysis/{name}/run")
    async def analysis_run(name: str, request: Request, p: Principal = Depends(require("read"))) -> Response:
        from starlette.concurrency import run_in_threadpool

        from yunying.web.views import query_from_form

        a = analyses.get(name)
        if a is None:
            raise YunyingError("web.analysis_missing", name=name)
        form = await request.form()
        fields = {k: v for k, v in form.items() if isinstance(v, str)}
        text = query_from_form(name, fields)
        q = _parse_query(a, text, request.app.state.settings.web.max_query_cells)
        gate = request.app.state.gate
        result = await run_in_threadpool(gate.run, (name, q.model_dump_json()), lambda wh: a.runner(wh, q))
        TEMPLATES.env.globals["project_tz"] = request.app.state.settings.timezone
        return TEMPLATES.TemplateResponse(
            request, "result.html",
            {"name": name, "query": q.model_dump_json(by_alias=True), "p": p, "csrf": p.csrf_token,
             **result_view(name, result, q.model_dump_json(by_alias=True))},
        )

    @r.get("/analysis/{name}/export.csv")
    def analysis_export(name: str, request: Request, query: str = "{}", p: Principal = Depends(require("read"))) -> Response:
        """The result's rows as CSV (funnel drop-off, RFM members, …)."""
        a = analyses.get(name)
        if a is None:
            raise YunyingError("web.analysis_missing", name=name)
        from yunying.web.views import export_rows

        q = _parse_query(a, query, request.app.state.settings.web.max_query_cells)
        result = request.app.state.gate.run((name, q.model_dump_json()), lambda wh: a.runner(wh, q))
        headers, rows = export_rows(name, result)
        buf = io.StringIO()
        w = csvsafe.writer(buf)
        w.writerow(headers)
        w.writerows(rows)
        return Response(
            buf.getvalue().encode("utf-8-sig"), media_type="text/csv",
            headers={"Content-Disposition": attachment(f"{name}.csv")},
        )

    @r.get("/analysis/rfm/members.csv")
    def rfm_members(request: Request, group: str = "", query: str = "{}", p: Principal = Depends(require("read"))) -> Response:
        """Members of one RFM class or segment (or all users) as CSV."""
        import tempfile
        from pathlib import Path

        a = analyses.get("rfm")
        if a is None:
            raise YunyingError("web.analysis_missing", name="rfm")
        from yunying.analytics.rfm import export_rfm_users

        q = _parse_query(a, query, request.app.state.settings.web.max_query_cells)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "members.csv"
            request.app.state.gate.run(None, lambda wh: export_rfm_users(wh, q, out, group or None))  # type: ignore[arg-type]
            data = out.read_bytes()
        return Response(data, media_type="text/csv", headers={"Content-Disposition": attachment(f"rfm-{group or 'all'}.csv")})

    # -- insights (saved) -------------------------------------------------------------
    @r.get("/insights")
    def insights_page(request: Request, p: Principal = Depends(require("read"))) -> Response:
        from sqlalchemy import select

        from yunying.appdb import session_scope
        from yunying.web.models import Dashboard, Insight

        with session_scope(request.app.state.appdb_url) as s:
            ins = list(s.scalars(select(Insight).order_by(Insight.id)))
            dbs = list(s.scalars(select(Dashboard).order_by(Dashboard.id)))
        return page(request, "insights.html", p, insights=ins, dashboards=dbs)

    @r.post("/insights/save")
    def insight_save(
        request: Request,
        name: str = Form(min_length=1, max_length=200),
        kind: str = Form(max_length=32),
        query: str = Form(max_length=100_000),
        p: Principal = Depends(require("insights.write")),
    ) -> Response:
        from yunying.appdb import session_scope
        from yunying.web.api import validate_query
        from yunying.web.models import Insight

        try:
            data = json.loads(query)
        except json.JSONDecodeError as e:
            raise YunyingError("web.bad_json", reason=str(e)) from e
        if not isinstance(data, dict):
            raise YunyingError("web.bad_field", field="query", reason="object")
        clean = validate_query(request.app.state.analyses, kind, data, request.app.state.settings.web.max_query_cells)
        with session_scope(request.app.state.appdb_url) as s:
            s.add(Insight(name=name, kind=kind, query=clean, owner=p.name))
        accounts.audit(request.app.state.appdb_url, p.name, "insight.create", name)
        return HTMLResponse(f'<span class="notice">{_esc(t("web.saved", name=name))}</span>')

    @r.get("/s/i/{token}")
    def shared_insight_page(token: str, request: Request, p: Principal = Depends(require("public"))) -> Response:
        from sqlalchemy import select

        from yunying.appdb import session_scope
        from yunying.web.models import Insight

        with session_scope(request.app.state.appdb_url) as s:
            ins = s.scalar(select(Insight).where(Insight.share_token == token))
            if ins is None:
                raise YunyingError("web.not_found_share")
            kind, query, title = ins.kind, ins.query, ins.name
        views = [_shared_view(request, kind, query, title)]
        return page(request, "shared.html", None, title=title, views=views)

    @r.get("/s/d/{token}")
    def shared_dashboard_page(token: str, request: Request, p: Principal = Depends(require("public"))) -> Response:
        from sqlalchemy import select

        from yunying.appdb import session_scope
        from yunying.web.models import Dashboard, Insight

        with session_scope(request.app.state.appdb_url) as s:
            d = s.scalar(select(Dashboard).where(Dashboard.share_token == token))
            if d is None:
                raise YunyingError("web.not_found_share")
            title = d.name
            items = [(i.kind, i.query, i.name) for i in (s.get(Insight, x) for x in d.insight_ids) if i is not None]
        views = [_shared_view(request, k, q, n) for k, q, n in items]
        return page(request, "shared.html", None, title=title, views=views)

    # -- data status ------------------------------------------------------------------
    @r.get("/data")
    def data_page(request: Request, p: Principal = Depends(require("data.view"))) -> Response:
        from yunying.web.views import data_view

        return page(request, "data.html", p, **data_view(request))

    @r.post("/data/flush")
    def data_flush(request: Request, p: Principal = Depends(require("data.flush"))) -> Response:
        from yunying.web.capture import flush

        with request.app.state.gate.exclusive():
            res = flush(request.app.state.settings, request.app.state.journal)
        accounts.audit(request.app.state.appdb_url, p.name, "capture.flush", "", f"moved={res.moved}")
        return RedirectResponse("/data", status_code=303)

    # -- users and API keys -----------------------------------------------------------
    @r.get("/admin/users")
    def users_page(request: Request, p: Principal = Depends(require("users.manage"))) -> Response:
        from sqlalchemy import select

        from yunying.appdb import session_scope
        from yunying.web.models import AuditEntry

        url = request.app.state.appdb_url
        with session_scope(url) as s:
            log = list(s.scalars(select(AuditEntry).order_by(AuditEntry.id.desc()).limit(50)))
        return page(request, "users.html", p, users=accounts.list_users(url), roles=ROLES, audit=log)

    @r.post("/admin/users")
    def users_add(
        request: Request,
        email: str = Form(max_length=254),
        password: str = Form(max_length=200),
        role: str = Form(max_length=16),
        p: Principal = Depends(require("users.manage")),
    ) -> Response:
        accounts.add_user(request.app.state.appdb_url, email, password, role, actor=p.name)
        return RedirectResponse("/admin/users", status_code=303)

    @r.post("/admin/users/{user_id}")
    def users_update(
        user_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)],
        request: Request,
        role: str = Form(max_length=16),
        active: str = Form("off", max_length=8),
        p: Principal = Depends(require("users.manage")),
    ) -> Response:
        from yunying.appdb import session_scope
        from yunying.web.models import User

        url = request.app.state.appdb_url
        with session_scope(url) as s:
            u = s.get(User, user_id)
            if u is None:
                raise YunyingError("web.user_unknown", email=str(user_id))
            email = u.email
        accounts.update_user(url, email, role=role, active=active == "on", actor=p.name)
        return RedirectResponse("/admin/users", status_code=303)

    @r.get("/admin/apikeys")
    def keys_page(request: Request, p: Principal = Depends(require("apikeys.manage"))) -> Response:
        return page(request, "apikeys.html", p, keys=accounts.list_api_keys(request.app.state.appdb_url), scopes=SCOPES, secret=None)

    @r.post("/admin/apikeys")
    def keys_create(
        request: Request,
        name: str = Form(max_length=120),
        scope: str = Form(max_length=16),
        p: Principal = Depends(require("apikeys.manage")),
    ) -> Response:
        url = request.app.state.appdb_url
        _key, secret = accounts.create_api_key(url, name, scope, actor=p.name)
        return page(request, "apikeys.html", p, keys=accounts.list_api_keys(url), scopes=SCOPES, secret=secret)

    @r.post("/admin/apikeys/{key_id}/revoke")
    def keys_revoke(key_id: Annotated[int, PathParam(ge=1, le=2**63 - 1)], request: Request, p: Principal = Depends(require("apikeys.manage"))) -> Response:
        accounts.revoke_api_key(request.app.state.appdb_url, key_id, actor=p.name)
        return RedirectResponse("/admin/apikeys", status_code=303)

    return r


def _shared_view(request: Request, kind: str, query: dict[str, Any], title: str) -> dict[str, Any]:
    from yunying.warehouse.overview import overview

    gate = request.app.state.gate
    if kind == "overview":
        settings = request.app.state.settings
        res: BaseModel = gate.run(("overview", ""), lambda wh: overview(wh, settings.timezone))
    else:
        from yunying.web.api import stored_query

        a = request.app.state.analyses[kind]
        q = stored_query(a, query)
        res = gate.run((kind, q.model_dump_json()), lambda wh: a.runner(wh, q))
    # a dashboard shows several charts: none of them takes the analysis page's element id
    return {"title": title, "name": kind, **result_view(kind, res, chart_id="")}


def _safe_next(target: str) -> str:
    """Only local paths: a crafted link must not bounce a user to another site."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"
