"""Review reports (复盘) over HTTP: a campaign's or an experiment's, as HTML, PDF or JSON,
built by ``yunying.reports`` exactly as ``yunying report …`` builds them.

The format is the ``format`` query parameter, or else the ``Accept`` header
(``application/pdf``, ``text/html``); JSON (the ``ReportDoc``) when neither says.
"""

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from yunying.i18n import get_language
from yunying.reports.render import ReportDoc
from yunying.web.accounts import Principal
from yunying.web.domains._common import ERRORS, settings
from yunying.web.security import require

error_status = {"reports.campaign_unknown": 404, "reports.pdf_missing": 501}

api_router = APIRouter(prefix="/api/v1", responses=ERRORS, tags=["reports"])

Format = Literal["html", "pdf", "json"]
DOC: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {"application/json": {}, "text/html": {}, "application/pdf": {}},
        "description": "The report: JSON (ReportDoc), HTML or PDF.",
    }
}
FORMAT = Query(default=None, description="html, pdf or json (default: from Accept, else json).")
LANG = Query(default=None, description="zh_CN or en (default: the request's language).")


def _format(request: Request, fmt: str | None) -> str:
    if fmt:
        return fmt
    accept = request.headers.get("accept", "")
    if "application/pdf" in accept:
        return "pdf"
    if "text/html" in accept and "application/json" not in accept:
        return "html"
    return "json"


def _answer(doc: ReportDoc, fmt: str, name: str) -> Response:
    from yunying.reports.render import render_html, render_pdf

    if fmt == "pdf":
        return Response(render_pdf(doc), media_type="application/pdf",
                        headers={"Content-Disposition": f'attachment; filename="{name}.pdf"'})
    if fmt == "html":
        return Response(render_html(doc).encode(), media_type="text/html; charset=utf-8")
    return Response(doc.model_dump_json().encode(), media_type="application/json")


@api_router.get("/reports/campaigns/{campaign_id}", response_class=Response, responses=DOC)
def campaign_report(
    campaign_id: str,
    request: Request,
    format: Format | None = FORMAT,
    lang: Literal["zh_CN", "en"] | None = LANG,
    by: str = Query(default="channel", max_length=64, description="Users column or property for the per-segment view."),
    p: Principal = Depends(require("read")),
) -> Response:
    """Campaign review: lift against the holdout, cost, CPA, ROI, per tool (`yunying report campaign`)."""
    from yunying.reports.campaign import campaign_report as build

    s = settings(request)
    language = lang or get_language()
    # Uncached: the campaign and its tools live in the app database, not in the warehouse
    # version the gate's cache is keyed by.
    doc = request.app.state.gate.run(None, lambda wh: build(s, wh, campaign_id, lang=language, segment_by=by))
    return _answer(doc, _format(request, format), f"campaign-{campaign_id}")


@api_router.get("/reports/experiments/{experiment_id}", response_class=Response, responses=DOC)
def experiment_report(
    experiment_id: str,
    request: Request,
    format: Format | None = FORMAT,
    lang: Literal["zh_CN", "en"] | None = LANG,
    p: Principal = Depends(require("read")),
) -> Response:
    """Experiment review: the result in words, charts and next steps (`yunying report experiment`)."""
    from yunying.experiments.spec import load
    from yunying.reports.experiment import experiment_report as build

    s = settings(request)
    spec = load(s, experiment_id)
    language = lang or get_language()
    doc = request.app.state.gate.run(
        ("report.experiment", spec.model_dump_json() + language),
        lambda wh: build(wh, spec, lang=language),
    )
    return _answer(doc, _format(request, format), f"experiment-{spec.id}")
