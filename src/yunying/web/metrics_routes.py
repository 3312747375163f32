"""Metric tree with what-if sliders, targets and alerts: API routes and pages.

They call the indicator system (``yunying.metrics``) exactly as ``yunying metrics whatif``,
``targets`` and ``alerts`` do; the web only chooses defaults (the last full month of data).
"""

import datetime as dt
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from yunying import clock
from yunying.errors import YunyingError
from yunying.web.accounts import Principal
from yunying.web.security import require


class WhatIfRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str = Field(min_length=1, max_length=128)
    period: str | None = Field(default=None, max_length=32, description="2026-10, 2026-10-05 or a..b; default: last full month of data")
    changes: dict[str, str] = Field(default_factory=dict, max_length=50, description='driver → "+5%", "-2%", "+100" or "0.04"')


class ComputeRequest(BaseModel):
    """The options of `yunying metrics compute`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    names: list[str] = Field(min_length=1, max_length=20)
    grain: str | None = Field(default=None, max_length=8, description="day | week | month | total (default: the metric's)")
    from_: dt.date | None = Field(default=None, alias="from", description="default: 30 days before 'to'")
    to: dt.date | None = Field(default=None, description="default: the last day with data")
    by: str | None = Field(default=None, max_length=64)


class ExplainRequest(BaseModel):
    """The options of `yunying metrics explain`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    metric: str = Field(min_length=1, max_length=128)
    period_a: str = Field(alias="from", max_length=32, description="base period: 2026-09, a day, or a..b")
    period_b: str = Field(alias="to", max_length=32, description="compared period")
    by: str | None = Field(default=None, max_length=64)


class GoalSeekRequest(BaseModel):
    """The options of `yunying metrics goalseek`."""

    model_config = ConfigDict(extra="forbid")
    metric: str = Field(min_length=1, max_length=128)
    period: str | None = Field(default=None, max_length=32)
    goal: str = Field(min_length=1, max_length=32, description="+10% | +5000 | 1200000")
    driver: str = Field(min_length=1, max_length=128)


def _last_day(request: Request) -> dt.date:
    from yunying.warehouse.overview import last_local_day

    tz = request.app.state.settings.timezone
    day = request.app.state.gate.run(("last_day", tz), lambda wh: last_local_day(wh, tz))
    return day or clock.today(tz)


def default_period(request: Request) -> str:
    """The last whole month that has data (the demo ends on a month's last day)."""
    day = _last_day(request)
    nxt = day + dt.timedelta(days=1)
    if nxt.month != day.month:
        return day.strftime("%Y-%m")
    prev = day.replace(day=1) - dt.timedelta(days=1)
    return prev.strftime("%Y-%m")


def _registry(request: Request) -> Any:
    from yunying.metrics.spec import load_registry

    return load_registry(request.app.state.settings)


def tree_metrics(reg: Any) -> list[str]:
    return [n for n, m in reg.metrics.items() if m.tree]


def run_whatif(request: Request, body: WhatIfRequest) -> Any:
    from yunying.metrics.tree import parse_period, whatif

    reg = _registry(request)
    reg.get(body.metric)  # unknown names raise the metrics domain's own error
    period = parse_period(body.period or default_period(request))
    key = ("whatif", body.model_dump_json() + period.label())
    return request.app.state.gate.run(key, lambda wh: whatif(wh, reg, body.metric, period, body.changes))


def run_alerts(request: Request, as_of: dt.date | None) -> tuple[Any, Any]:
    from yunying.metrics.monitor import check_alerts, load_alerts, load_targets, plan_vs_actual

    reg = _registry(request)
    day = as_of or _last_day(request)
    rules, _hook = load_alerts(request.app.state.settings, reg)
    targets = load_targets(request.app.state.settings, reg)

    def both(wh: Any) -> tuple[Any, Any]:
        return check_alerts(wh, reg, rules, day, targets), plan_vs_actual(wh, reg, targets, day)

    return request.app.state.gate.run(("alerts", day.isoformat()), both)  # type: ignore[no-any-return]


def build_metrics_routes() -> tuple[APIRouter, APIRouter]:
    """(API router, page router); empty when the indicator system is not installed."""
    api = APIRouter(prefix="/api/v1", tags=["metrics"])
    pages = APIRouter(include_in_schema=False)
    try:
        from yunying.metrics.monitor import AlertReport, TargetReport
        from yunying.metrics.tree import WhatIfResult
    except ImportError:
        return api, pages

    from yunying.metrics.compute import ComputeResult
    from yunying.metrics.tree import ExplainResult, GoalSeekResult

    @api.post("/metrics/compute", response_model=ComputeResult)
    def compute_api(body: ComputeRequest, request: Request, p: Principal = Depends(require("read"))) -> Any:
        """Metrics per period: the same as `yunying metrics compute --format json`."""
        from yunying.metrics.compute import compute
        from yunying.web.analyses import MAX_RANGE_DAYS

        reg = _registry(request)
        to = body.to or _last_day(request)
        frm = body.from_ or to - dt.timedelta(days=29)
        if frm > to:
            raise YunyingError("web.bad_field", field="from", reason=f"{frm} > {to}")
        if (to - frm).days + 1 > MAX_RANGE_DAYS:
            raise YunyingError("web.range_too_long", field="from", days=(to - frm).days + 1, max=MAX_RANGE_DAYS)
        grain = body.grain or reg.get(body.names[0]).grain
        key = ("metrics.compute", f"{body.names}|{grain}|{frm}|{to}|{body.by}")
        return request.app.state.gate.run(key, lambda wh: compute(wh, reg, body.names, grain, frm, to, body.by))

    @api.post("/metrics/explain", response_model=ExplainResult)
    def explain_api(body: ExplainRequest, request: Request, p: Principal = Depends(require("read"))) -> Any:
        """Attribute a change between two periods: the same as `yunying metrics explain`."""
        from yunying.metrics.tree import explain, parse_period

        reg = _registry(request)
        a, b = parse_period(body.period_a), parse_period(body.period_b)
        key = ("metrics.explain", body.model_dump_json())
        return request.app.state.gate.run(key, lambda wh: explain(wh, reg, body.metric, a, b, body.by))

    @api.post("/metrics/goalseek", response_model=GoalSeekResult)
    def goalseek_api(body: GoalSeekRequest, request: Request, p: Principal = Depends(require("read"))) -> Any:
        """The driver value that reaches a goal: the same as `yunying metrics goalseek`."""
        from yunying.metrics.tree import goal_seek, parse_period

        reg = _registry(request)
        period = parse_period(body.period or default_period(request))
        key = ("metrics.goalseek", body.model_dump_json() + period.label())
        return request.app.state.gate.run(key, lambda wh: goal_seek(wh, reg, body.metric, period, body.goal, body.driver))

    @api.post("/metrics/whatif", response_model=WhatIfResult)
    def whatif_api(body: WhatIfRequest, request: Request, p: Principal = Depends(require("read"))) -> Any:
        """What-if on a metric tree: the same as `yunying metrics whatif`."""
        return run_whatif(request, body)

    class AlertsOut(BaseModel):
        alerts: AlertReport
        targets: TargetReport

    @api.get("/alerts", response_model=AlertsOut)
    def alerts_api(request: Request, as_of: dt.date | None = None, p: Principal = Depends(require("alerts.view"))) -> Any:
        """Alert rules checked on ``as_of`` (default: the last day with data) and plan vs actual."""
        alerts, targets = run_alerts(request, as_of)
        return AlertsOut(alerts=alerts, targets=targets)

    @pages.get("/metrics/tree")
    def tree_page(request: Request, metric: str = "", period: str = "", p: Principal = Depends(require("read"))) -> Response:
        from yunying.metrics.tree import leaves, model_nodes
        from yunying.web.pages import page

        reg = _registry(request)
        names = tree_metrics(reg)
        if not names:
            raise YunyingError("web.no_tree")
        metric = metric if metric in names else names[0]
        drivers = [(n, reg.get(n).label_for(_lang())) for n in leaves(reg, metric)]
        return page(
            request, "tree.html", p, metrics=[(n, reg.get(n).label_for(_lang())) for n in names], metric=metric,
            period=period or default_period(request), drivers=drivers, nodes=model_nodes(reg, metric),
        )

    @pages.post("/metrics/whatif/run")
    async def whatif_run(request: Request, p: Principal = Depends(require("read"))) -> Response:
        from starlette.concurrency import run_in_threadpool

        from yunying.web.pages import TEMPLATES

        form = await request.form()
        metric = str(form.get("metric", ""))
        period = str(form.get("period", "")) or None
        changes: dict[str, str] = {}
        for k, v in form.items():
            if k.startswith("d_") and isinstance(v, str) and v not in ("", "0"):
                try:
                    pct = float(v)
                except ValueError as e:
                    raise YunyingError("web.bad_field", field=k[2:], reason=v) from e
                changes[k[2:]] = f"{pct:+g}%"
        body = WhatIfRequest(metric=metric, period=period, changes=changes)
        res = await run_in_threadpool(run_whatif, request, body)
        from yunying.metrics.tree import model_inputs
        from yunying.web import charts

        reg = _registry(request)
        inputs = {n.name: model_inputs(reg, n.name) for n in res.nodes}
        chart = charts.render(charts.metric_tree_chart(res, inputs), "tree-chart")
        return TEMPLATES.TemplateResponse(request, "whatif.html", {"res": res, "chart": chart})

    @pages.get("/alerts")
    def alerts_page(request: Request, p: Principal = Depends(require("alerts.view"))) -> Response:
        from yunying.web.pages import page

        alerts, targets = run_alerts(request, None)
        return page(request, "alerts.html", p, alerts=alerts, targets=targets)

    return api, pages


def _lang() -> str:
    from yunying.i18n import get_language

    return get_language()
