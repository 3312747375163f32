"""The FastAPI application: API, pages, static files, error handling, background flusher.

``create_app(settings)`` builds everything from the project settings; ``yunying serve``
runs it under uvicorn (``yunying.web.app:app_from_env`` when started with workers).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from yunying.appdb import open_appdb
from yunying.config import Settings, load_settings
from yunying.errors import YunyingError
from yunying.i18n import normalize, set_language, t
from yunying.web.analyses import WarehouseGate, discover
from yunying.web.api import build_router, error_json
from yunying.web.capture import Journal, StoredIds, flush, journal_path
from yunying.web.security import LANG_COOKIE, Denied, RateLimiter

log = logging.getLogger("yunying.web")

# Errors that are not the caller's fault in the request itself.
STATUS_BY_KEY = {
    "web.warehouse_busy": 503,
    "warehouse.busy": 503,
    "capture.warehouse_busy": 503,
    "capture.too_large": 413,
    "web.user_exists": 409,
}


def _status_for(key: str) -> int:
    if key in STATUS_BY_KEY:
        return STATUS_BY_KEY[key]
    if key.startswith("web.not_found") or key.endswith("_unknown"):
        return 404
    return 400


def _wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or "application/json" in request.headers.get("accept", "")


def pick_language(request_headers: dict[str, str], cookies: dict[str, str], default: str) -> str:
    """Cookie (the switch) first, then Accept-Language, then the project's language."""
    chosen = cookies.get(LANG_COOKIE)
    if chosen in ("en", "zh_CN"):
        return chosen
    accept = request_headers.get("accept-language", "")
    for part in accept.split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("zh"):
            return "zh_CN"
        if tag.startswith("en"):
            return "en"
    return normalize(default)


class CatchAllMiddleware:
    """A bug answers a clean 500 (JSON for the API) and the connection stays open.

    Starlette's own last-resort handler re-raises after answering, so uvicorn closes the
    keep-alive connection and the client's next request fails too. This one does not.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if started:  # too late for an answer: let the server close the connection
                raise
            request = Request(scope)
            message = t("web.internal")
            response: Response
            if _wants_json(request):
                response = JSONResponse({"error": "web.internal", "message": message}, status_code=500)
            else:
                response = HTMLResponse(f"<h1>500</h1><p>{message}</p>", status_code=500)
            await response(scope, receive, send)


class LanguageMiddleware:
    """Sets the request's language (a context variable) before any handler runs."""

    def __init__(self, app: Any, default: str) -> None:
        self.app = app
        self.default = default

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            cookies: dict[str, str] = {}
            for item in headers.get("cookie", "").split(";"):
                if "=" in item:
                    k, v = item.strip().split("=", 1)
                    cookies[k] = v
            lang = pick_language(headers, cookies, self.default)
            set_language(lang)
            scope.setdefault("state", {})["lang"] = lang
        await self.app(scope, receive, send)


def _flusher(app: FastAPI, stop: threading.Event, interval: float) -> None:
    postponed = 0
    while not stop.wait(interval):
        try:
            if app.state.journal.pending_count():
                flush_briefly(app, block_readers=postponed >= FLUSH_PATIENCE)
            postponed = 0
        except YunyingError as e:  # the CLI or a long analysis holds the warehouse: next round
            postponed += 1
            log.info("capture flush postponed: %s", e.message("en"))
        except Exception:  # keep the loop alive; the journal still holds every event
            log.exception("capture flush failed")


# Rounds a flush yields to running analyses before it makes new ones wait for it.
FLUSH_PATIENCE = 3


def flush_briefly(app: FastAPI, block_readers: bool = False) -> Any:
    """One flush, holding the warehouse read-write only for its duration.

    Analyses read the file read-only and may run beside each other; a flush waits until
    none runs (a few seconds, or longer once it has been postponed ``FLUSH_PATIENCE``
    times), writes, and closes the file again, so the CLI can open it in between.
    """
    wait = 2.0 if not block_readers else app.state.settings.web.query_timeout + 5
    with app.state.gate.exclusive(wait=wait, block_readers=block_readers):
        return flush(app.state.settings, app.state.journal)


def create_app(settings: Settings, flush_interval: float | None = 10.0) -> FastAPI:
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from yunying.analytics import kernels

        kernels.warm_in_background()  # a server answers many queries: load them once
        thread = None
        if flush_interval:
            thread = threading.Thread(target=_flusher, args=(app, stop, flush_interval), daemon=True)
            thread.start()
        yield
        stop.set()
        if thread is not None:
            thread.join(timeout=30)

    app = FastAPI(
        title="yunying API",
        version="1",
        description="yunying (运营) HTTP API. Analyses take the same query models as the CLI.",
        lifespan=lifespan,
        # Served below under /api/v1 with a declared permission; Swagger UI would need a CDN.
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.appdb_url = open_appdb(settings)
    app.state.journal = Journal(journal_path(settings))
    app.state.gate = WarehouseGate(settings)
    app.state.stored_ids = app.state.journal.stored_ids = StoredIds(app.state.gate)
    app.state.analyses = discover()
    app.state.login_limiter = RateLimiter()

    from yunying.web.metrics_routes import build_metrics_routes
    from yunying.web.pages import build_pages

    metrics_api, metrics_pages = build_metrics_routes()
    app.include_router(build_router(app.state.analyses))
    app.include_router(metrics_api)
    app.include_router(build_pages(app.state.analyses))
    app.include_router(metrics_pages)
    from yunying.web.domains import include_all  # web/domains/<domain>.py, found by name
    include_all(app)
    _openapi_route(app)
    _handlers(app)
    app.add_middleware(CatchAllMiddleware)
    app.add_middleware(LanguageMiddleware, default=settings.language)
    if settings.web.trusted_proxies:
        # Outermost, so every handler (sign-in throttling, Secure cookies) sees the client
        # the trusted proxy names; a request from any other address keeps its own.
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.web.trusted_proxies))
    return app


def _openapi_route(app: FastAPI) -> None:
    from fastapi import Depends
    from fastapi.openapi.utils import get_openapi

    from yunying.web.security import require

    def openapi_document(p: Any = Depends(require("public"))) -> JSONResponse:
        """The OpenAPI document of ``/api/v1`` (pages are left out)."""
        if app.openapi_schema is None:
            app.openapi_schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
        return JSONResponse(app.openapi_schema)

    app.add_api_route("/api/v1/openapi.json", openapi_document, methods=["GET"], include_in_schema=False)


def _handlers(app: FastAPI) -> None:
    from yunying.web.pages import render_error

    @app.exception_handler(YunyingError)
    async def yunying_error(request: Request, exc: YunyingError) -> Response:
        status = _status_for(exc.key)
        if _wants_json(request):
            return error_json(status, exc.key, exc.message())
        return render_error(request, status, exc.message())

    @app.exception_handler(Denied)
    async def denied(request: Request, exc: Denied) -> Response:
        if _wants_json(request):
            return error_json(exc.status, exc.key, t(exc.key, **exc.params))
        if exc.status == 401:
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        return render_error(request, exc.status, t(exc.key, **exc.params))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errs = exc.errors()
        parts = []
        for e in errs[:5]:
            loc = [str(x) for x in e.get("loc", ()) if x not in ("body", "query", "path")]
            field = ".".join(loc) or "body"
            kind = e.get("type", "")
            if kind == "extra_forbidden":
                parts.append(t("web.unknown_field", field=field))
            elif kind == "json_invalid":
                parts.append(t("web.bad_json", reason=str(e.get("ctx", {}).get("error", ""))[:120]))
            else:
                parts.append(t("web.bad_field", field=field, reason=e.get("msg", "")))
        message = "; ".join(parts)
        if _wants_json(request):
            return error_json(422, "web.invalid", message)
        return render_error(request, 422, message)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        key = {404: "web.not_found", 405: "web.method_not_allowed"}.get(exc.status_code, "web.http_error")
        message = t(key, status=exc.status_code)
        if _wants_json(request):
            return error_json(exc.status_code, key, message)
        return render_error(request, exc.status_code, message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        message = t("web.internal")
        if _wants_json(request):
            return JSONResponse({"error": "web.internal", "message": message}, status_code=500)
        return HTMLResponse(f"<h1>500</h1><p>{message}</p>", status_code=500)



def app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` (used with several workers)."""
    settings = load_settings(os.environ.get("YUNYING_PROJECT", "."))
    interval = float(os.environ.get("YUNYING_WEB_FLUSH_INTERVAL", "10"))
    return create_app(settings, flush_interval=interval or None)
