"""What each page shows: overview KPIs with sparklines, data status, the chart per analysis.

Charts are ECharts options built by ``web.charts``.

Analyses' results are the runners' own models; this module only reads them to draw.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from typing import Any
from zoneinfo import ZoneInfo

import ibis
from fastapi import Request
from markupsafe import Markup
from pydantic import BaseModel

from yunying.i18n import t
from yunying.warehouse.engine import Warehouse
from yunying.warehouse.overview import last_local_day, local_day_bounds, overview
from yunying.web import charts
from yunying.web.analyses import Analysis

SPARK_DAYS = 30


def daily_series(wh: Warehouse, tz: str) -> dict[str, list[Any]]:
    """DAU, orders and GMV per local day over the last 30 days (the sparklines).

    Days are shifted by the zone's UTC offset on the last day, exact for zones without
    daylight saving (the default Asia/Shanghai) and off by an hour at most around a switch.
    """
    as_of = last_local_day(wh, tz)
    if as_of is None:
        return {"days": [], "dau": [], "orders": [], "gmv": []}
    start, end = local_day_bounds(as_of, tz, SPARK_DAYS)
    noon = dt.datetime.combine(as_of, dt.time(12))
    offset = ZoneInfo(tz).utcoffset(noon) or dt.timedelta()
    secs = int(offset.total_seconds())
    e, o = wh.table("events"), wh.table("orders")
    ev = e.filter((e.ts >= start) & (e.ts < end))
    ev = ev.mutate(day=(ev.ts + ibis.interval(seconds=secs)).date())
    dau = wh.execute(ev.group_by("day").aggregate(v=ev.user_id.nunique()))
    od = o.filter((o.ts >= start) & (o.ts < end) & o.status.isin(["paid", "refunded"]))
    od = od.mutate(day=(od.ts + ibis.interval(seconds=secs)).date())
    orders = wh.execute(od.group_by("day").aggregate(n=od.count(), gmv=od.amount.sum()))
    days = [as_of - dt.timedelta(days=i) for i in range(SPARK_DAYS - 1, -1, -1)]
    dmap = {_d(k): v for k, v in zip(dau["day"], dau["v"], strict=True)}
    nmap = {_d(k): v for k, v in zip(orders["day"], orders["n"], strict=True)}
    gmap = {_d(k): v for k, v in zip(orders["day"], orders["gmv"], strict=True)}
    return {
        "days": days,
        "dau": [int(dmap.get(d, 0)) for d in days],
        "orders": [int(nmap.get(d, 0)) for d in days],
        "gmv": [float(gmap.get(d, 0) or 0) for d in days],
    }


def _d(v: Any) -> dt.date:
    if isinstance(v, dt.datetime):
        return v.date()
    if isinstance(v, dt.date):
        return v
    return dt.date.fromisoformat(str(v)[:10])


KPI_KEYS = ("dau", "mau", "new_users_30d", "orders", "paying_users", "gmv", "net_revenue", "aov", "refund_rate", "mrr", "arr", "active_subscriptions")


# Headline figure → the metric of the indicator system whose target applies to it.
TARGET_METRIC = {"gmv": "gmv", "orders": "orders", "aov": "aov", "refund_rate": "refund_rate",
                 "mrr": "mrr", "arr": "arr", "dau": "dau", "mau": "mau", "net_revenue": "net_gmv"}


# Metric specs and targets are YAML files; parsing them on every page view costs more
# than the page itself, so they are re-read at most every few seconds.
SPEC_CACHE_SECONDS = 10.0
_SPEC_CACHE: dict[str, tuple[float, Any, list[Any]]] = {}


def _targets(request: Request, as_of: dt.date | None) -> list[Any]:
    """Plan vs actual for the targets in ``metrics/targets/*.yaml`` (empty without any)."""
    if as_of is None:
        return []
    try:
        from yunying.metrics.monitor import load_targets, plan_vs_actual
        from yunying.metrics.spec import load_registry
    except ImportError:  # the indicator system is not installed
        return []
    settings = request.app.state.settings
    now = time.monotonic()
    hit = _SPEC_CACHE.get(str(settings.project_dir))
    if hit is not None and hit[0] > now:
        reg, targets = hit[1], hit[2]
    else:
        reg = load_registry(settings)
        targets = load_targets(settings, reg)
        _SPEC_CACHE[str(settings.project_dir)] = (now + SPEC_CACHE_SECONDS, reg, targets)
    if not targets:
        return []
    report = request.app.state.gate.run(
        ("targets", as_of.isoformat()), lambda wh: plan_vs_actual(wh, reg, targets, as_of)
    )
    return list(report.rows)


def overview_view(request: Request) -> dict[str, Any]:
    settings = request.app.state.settings
    gate = request.app.state.gate
    tz = settings.timezone

    def both(wh: Warehouse) -> tuple[Any, dict[str, list[Any]]]:
        return overview(wh, tz), daily_series(wh, tz)

    ov, series = gate.run(("overview_page", tz), both)
    h = ov.headline
    spark = {"dau": series["dau"], "orders": series["orders"], "gmv": series["gmv"]}
    days = [d.isoformat() for d in series["days"]]
    statuses = _targets(request, h.as_of)
    by_metric = {r.metric: r for r in statuses}
    kpis = []
    for key in KPI_KEYS:
        value = getattr(h, key)
        st = by_metric.get(TARGET_METRIC.get(key, key))
        target = st.target if st is not None else None
        gap = st.gap if st is not None else None
        shown = f"{value:.1%}" if key == "refund_rate" and value is not None else value
        kpis.append(
            {"key": key, "label": t(f"overview.{key}"), "value": shown, "spark": charts.render(charts.sparkline(spark.get(key, []), days)),
             "target": target, "gap": gap, "fmt": st.format if st is not None else "",
             "period": st.period.label() if st is not None else ""}
        )
    return {"overview": ov, "kpis": kpis, "as_of": h.as_of, "status": ov.status, "targets": statuses}


def data_view(request: Request) -> dict[str, Any]:
    """Tables, the capture journal, recent imports and the newest import's quarantined rows."""
    from yunying.warehouse.status import warehouse_status

    settings = request.app.state.settings
    st = request.app.state.gate.run(None, warehouse_status)
    imports: tuple[list[str], list[list[Any]]] = ([], [])
    quarantine: tuple[list[str], list[list[Any]]] = ([], [])
    quarantine_of = None
    try:
        from yunying.warehouse.quarantine import list_imports, show_import
    except ImportError:  # the importer is not installed
        list_imports = show_import = None  # type: ignore[assignment]
    if list_imports is not None and show_import is not None:
        # The import log and quarantine are their own file, opened read-only.
        log = list_imports(settings, limit=20)
        bad = next((e for e in log.imports if e.quarantined), None)
        detail = show_import(settings, bad.import_id, limit=100) if bad is not None else None
        imports = log.to_rows()
        if detail is not None:
            quarantine = detail.to_rows()
            quarantine_of = detail.import_id
    return {
        "status": st, "capture": request.app.state.journal.counts(),
        "imports": imports, "quarantine": quarantine, "quarantine_of": quarantine_of,
    }


# -- per-analysis forms and charts ----------------------------------------------------------
def form_for(name: str, a: Analysis, query: dict[str, Any]) -> dict[str, Any]:
    """Which friendly inputs the page shows above the JSON query (which holds the rest)."""
    out: dict[str, Any] = {"steps": None, "auto": name != "funnel"}
    if name == "funnel":
        steps = query.get("steps") or []
        out["steps"] = ", ".join(str(s.get("event", "")) if isinstance(s, dict) else str(s) for s in steps)
    return out


def query_from_form(name: str, fields: dict[str, str]) -> str:
    """The JSON query, with the friendly inputs (funnel steps) merged in."""
    text = fields.get("query", "") or "{}"
    steps = fields.get("steps")
    if name == "funnel" and steps:
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            return text  # the runner's parser reports the JSON error
        if isinstance(data, dict):
            names = [s.strip() for s in steps.replace("，", ",").split(",") if s.strip()]
            data["steps"] = [{"event": n} for n in names]
            text = json.dumps(data)
    return text


def chart_for(name: str, result: BaseModel, query: str = "", chart_id: str = "chart-main") -> Markup:
    """The interactive chart that suits the analysis; a generic one from the result's rows otherwise."""
    special = charts.CHARTS.get(name)
    if special is not None:
        try:
            return charts.render(special(result, query), chart_id)
        except (AttributeError, KeyError, TypeError, ValueError, IndexError):
            pass  # the result's shape changed: fall back to the generic chart
    to_rows = getattr(result, "to_rows", None)
    if not callable(to_rows):
        return Markup("")
    headers, rows = to_rows()
    return charts.render(charts.rows_chart(headers, rows), chart_id)


def export_rows(name: str, result: BaseModel) -> tuple[list[str], list[list[Any]]]:
    from yunying.web.exports import EXPORTS

    special = EXPORTS.get(name)
    if special is not None:
        return special(result)
    to_rows = getattr(result, "to_rows", None)
    if callable(to_rows):
        headers, rows = to_rows()
        return list(headers), [list(r) for r in rows]
    data = result.model_dump(mode="json")
    return ["key", "value"], [[k, json.dumps(v) if isinstance(v, dict | list) else v] for k, v in data.items()]
