"""Interactive charts for the web pages: an Apache ECharts option per result type.

Each ``*_chart`` function is pure: it reads a runner's result model and returns a
:class:`Chart` (the ECharts option as plain JSON-able data, its height and an optional
caption). ``render`` embeds it in the page as ``<script type="application/json">``; the
page script (``static/app.js``) calls ``echarts.init`` on it. ECharts itself is served from
``/static/vendor/echarts/`` (no CDN). Every label goes through the i18n catalogs.

PDF reports keep their server-drawn SVG (``yunying.reports.svg``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from typing import Any

from markupsafe import Markup

from yunying.i18n import get_language, t

PALETTE = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d", "#9333ea", "#0d9488"]
# Canvas text needs fonts that have CJK glyphs; the first one installed wins.
FONT_FAMILY = (
    'system-ui, -apple-system, "Segoe UI", "Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", '
    '"PingFang SC", "Hiragino Sans GB", "Microsoft YaHei", "WenQuanYi Micro Hei", sans-serif'
)
MAX_SERIES = 10  # lines or bars per chart; the table below the chart keeps the rest


@dataclass
class Chart:
    option: dict[str, Any]
    height: int = 360
    caption: str = ""
    kind: str = ""  # data-chart attribute, for tests and styling
    links: list[tuple[str, str]] = field(default_factory=list)  # (label, href) under the chart


def _num(v: object) -> float:
    try:
        return float(v)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return 0.0


def _base(*, zoom: bool = False, legend: Sequence[str] | None = None) -> dict[str, Any]:
    """What every chart shares: font, palette, tooltip, PNG download, legend and zoom."""
    features: dict[str, Any] = {"saveAsImage": {"title": t("web.chart.save_png"), "pixelRatio": 2}}
    if zoom:
        features = {
            "dataZoom": {"yAxisIndex": "none", "title": {"zoom": t("web.chart.zoom"), "back": t("web.chart.zoom_back")}},
            "restore": {"title": t("web.chart.restore")},
            **features,
        }
    opt: dict[str, Any] = {
        "color": PALETTE,
        "textStyle": {"fontFamily": FONT_FAMILY},
        "backgroundColor": "#ffffff",
        "tooltip": {"trigger": "axis", "confine": True, "className": "echart-tooltip"},
        "toolbox": {"right": 8, "top": 0, "feature": features},
        "grid": {"left": 8, "right": 24, "top": 40, "bottom": 8, "containLabel": True},
        "animation": False,
    }
    if legend:
        opt["legend"] = {"type": "scroll", "top": 0, "left": 0, "right": 110, "data": list(legend)}
    if zoom:
        opt["dataZoom"] = [{"type": "inside"}, {"type": "slider", "height": 18, "bottom": 4}]
        opt["grid"]["bottom"] = 36
    return opt


def _pct(v: float | None) -> float | None:
    return None if v is None else round(v * 100, 1)


# -- per analysis ------------------------------------------------------------------------
def funnel_chart(res: Any, query: str = "") -> Chart:
    """Users per step; stacked on it, the users lost since the previous step.

    With a breakdown: one bar series per value (users per step) after all users.
    """
    steps = res.steps
    cats = [f"{s.step}. {s.name}" for s in steps]
    groups = list(getattr(res, "groups", None) or [])
    if groups:
        names = [t("web.all_users"), *[g.value for g in groups]][:MAX_SERIES]
        lines = [steps, *[g.steps for g in groups]][:MAX_SERIES]
        series = [{"name": n, "type": "bar", "data": [s.users for s in st]} for n, st in zip(names, lines, strict=True)]
        opt = _base(legend=names)
    else:
        users, lost = t("web.chart.users"), t("web.chart.lost")
        opt = _base(legend=[users, lost])
        series = [
            {
                "name": users, "type": "bar", "stack": "funnel", "barMaxWidth": 48,
                "data": [
                    {"value": s.users, "label": {"show": True, "position": "insideLeft", "color": "#fff",
                                                 "formatter": f"{s.users:,} · {s.conversion:.1%}"}}
                    for s in steps
                ],
            },
            {
                "name": lost, "type": "bar", "stack": "funnel", "barMaxWidth": 48,
                "itemStyle": {"color": "#e5e7eb"},
                "data": [0, *[s.drop_off for s in steps[:-1]]],
            },
        ]
    opt["tooltip"]["axisPointer"] = {"type": "shadow"}
    opt["xAxis"] = {"type": "value"}
    opt["yAxis"] = {"type": "category", "data": cats, "inverse": True}
    opt["series"] = series
    return Chart(opt, height=max(220, 60 + 44 * len(steps) * (1 if not groups else 2)), kind="funnel")


def trends_chart(res: Any, query: str = "") -> Chart:
    """One line per series over time, zoomable."""
    series = res.series[:MAX_SERIES]
    x = [p.period[:16] for p in series[0].points] if series else []
    opt = _base(zoom=True, legend=[s.group for s in series])
    opt["xAxis"] = {"type": "category", "data": x, "boundaryGap": False}
    opt["yAxis"] = {"type": "value", "scale": False}
    opt["series"] = [
        {"name": s.group, "type": "line", "showSymbol": len(x) <= 40, "data": [p.value for p in s.points]}
        for s in series
    ]
    return Chart(opt, height=380, kind="trends")


def lifecycle_chart(res: Any, query: str = "") -> Chart:
    """New, returning and resurrecting users above zero, dormant (lost) below, per period."""
    ps = res.periods
    stages = [("new", "#16a34a"), ("returning", "#2563eb"), ("resurrecting", "#d97706"), ("dormant", "#dc2626")]
    names = [t(f"lifecycle.stage.{s}") for s, _ in stages]
    opt = _base(zoom=True, legend=names)
    opt["tooltip"]["axisPointer"] = {"type": "shadow"}
    opt["xAxis"] = {"type": "category", "data": [p.period[:10] for p in ps]}
    opt["yAxis"] = {"type": "value"}
    opt["series"] = [
        {"name": n, "type": "bar", "stack": "lifecycle", "itemStyle": {"color": c},
         "data": [getattr(p, s) for p in ps]}
        for (s, c), n in zip(stages, names, strict=True)
    ]
    return Chart(opt, height=380, kind="lifecycle")


def _heatmap(
    rows: Sequence[tuple[str, Sequence[float | None], Sequence[str]]], cols: Sequence[str], *, kind: str, x_name: str
) -> Chart:
    """A 0–100 % heatmap; ``rows`` are (label, shares 0..1 or None, tooltip per cell)."""
    data = []
    for y, (label, shares, tips) in enumerate(rows):
        for x, v in enumerate(shares):
            if v is not None:
                data.append({"value": [x, y, _pct(v)], "name": f"{label} · {cols[x]}: {tips[x]}"})
    opt = _base()
    opt["tooltip"] = {"trigger": "item", "confine": True, "className": "echart-tooltip", "formatter": "{b} ({@[2]}%)"}
    opt["grid"] = {"left": 8, "right": 24, "top": 40, "bottom": 48, "containLabel": True}
    opt["xAxis"] = {"type": "category", "data": list(cols), "splitArea": {"show": True}, "position": "top"}
    opt["yAxis"] = {"type": "category", "data": [r[0] for r in rows], "inverse": True, "splitArea": {"show": True}}
    opt["visualMap"] = {"min": 0, "max": 100, "calculable": True, "orient": "horizontal", "left": "center",
                        "bottom": 0, "itemHeight": 160, "formatter": "{value}%",
                        "text": ["", x_name], "inRange": {"color": ["#f8fafc", "#93c5fd", "#2563eb", "#1e3a8a"]}}
    opt["series"] = [{"name": kind, "type": "heatmap", "data": data,
                      "label": {"show": len(cols) <= 16, "formatter": "{@[2]}%", "fontSize": 11},
                      "emphasis": {"itemStyle": {"borderColor": "#111", "borderWidth": 1}}}]
    return Chart(opt, height=max(200, 110 + 26 * len(rows)), kind=kind)


def retention_chart(res: Any, query: str = "") -> Chart:
    """Heatmap: one row per cohort (all cohorts first), one cell per period, the share retained.

    With a breakdown: one row per value (its cohorts together) under the all-users row.
    """
    breakdowns = getattr(res, "breakdowns", None) or []
    n = max((len(c.rates) for c in [res.total, *res.cohorts]), default=0)
    unit = t("retention.col.period_" + res.period)
    cols = [f"{unit} {i}" for i in range(n)]
    if breakdowns:
        lines = [(t("web.all_users"), res.total), *[(b.value, b.total) for b in breakdowns]]
    else:
        lines = [(t("web.retention_all"), res.total), *[(c.cohort[:10], c) for c in res.cohorts]]
    rows = []
    for label, c in lines:
        shares = [c.rates[i] if i < len(c.rates) else None for i in range(n)]
        tips = [f"{c.retained[i]:,} / {c.size:,}" if i < len(c.retained) else "" for i in range(n)]
        rows.append((f"{label} ({c.size:,})", shares, tips))
    return _heatmap(rows, cols, kind="retention", x_name=t("web.chart.retained_share"))


def stickiness_chart(res: Any, query: str = "") -> Chart:
    """User-periods by active days; with a breakdown, a heatmap with one row per value."""
    breakdowns = getattr(res, "breakdowns", None) or []
    cols = [t("web.days_active", n=i + 1) for i in range(len(res.distribution))]
    if breakdowns:
        groups = [(t("web.all_users"), res), *[(b.value, b) for b in breakdowns]]
        rows = [
            (f"{label} ({sum(g.distribution):,})", list(g.share), [f"{v:,}" for v in g.distribution])
            for label, g in groups
        ]
        chart = _heatmap(rows, cols, kind="stickiness", x_name=t("stickiness.col.days"))
        averages = " · ".join(f"{label} {'–' if g.average_days is None else f'{g.average_days:.2f}'}" for label, g in groups)
        chart.caption = f"{t('web.average_days')}: {averages}"
        return chart
    name = t("web.user_periods")
    opt = _base(legend=[name])
    opt["tooltip"]["axisPointer"] = {"type": "shadow"}
    opt["xAxis"] = {"type": "category", "data": cols}
    opt["yAxis"] = {"type": "value"}
    opt["series"] = [{
        "name": name, "type": "bar", "barMaxWidth": 48,
        "data": [{"value": v, "label": {"show": True, "position": "top", "formatter": f"{s:.1%}"}}
                 for v, s in zip(res.distribution, res.share, strict=True)],
    }]
    return Chart(opt, height=340, kind="stickiness")


# The RFM grid: recency across, frequency × monetary down; each cell is one class.
RFM_COLS = ((True,), (False,))
RFM_ROWS = ((True, True), (False, True), (True, False), (False, False))


def rfm_chart(res: Any, query: str = "") -> Chart:
    """The class grid: R high / low across, F × M down; cell colour = revenue share."""
    from urllib.parse import quote

    from yunying.analytics.rfm import CLASSES

    flags = {c[0]: (c[1], c[2], c[3]) for c in CLASSES}
    zh = get_language() == "zh_CN"
    hl = {True: t("web.chart.high"), False: t("web.chart.low")}
    cols = [f"R {hl[r]}" for (r,) in RFM_COLS]
    rows = [f"F {hl[f]} · M {hl[m]}" for f, m in RFM_ROWS]
    data = []
    for g in res.classes:
        if g.key not in flags:
            continue
        r, f, m = flags[g.key]
        x, y = RFM_COLS.index((r,)), RFM_ROWS.index((f, m))
        name = g.name_zh if zh else g.name_en
        share = t("web.rfm_share", users=f"{g.share:.1%}", revenue=f"{g.revenue_share:.1%}")
        data.append({
            "value": [x, y, _pct(g.revenue_share)], "name": f"{name}: {g.users:,} · {share}",
            "label": {"formatter": f"{name}\n{g.users:,}\n{t('web.chart.revenue_pct', pct=f'{g.revenue_share:.1%}')}"},
        })
    opt = _base()
    opt["tooltip"] = {"trigger": "item", "confine": True, "className": "echart-tooltip", "formatter": "{b}"}
    opt["grid"] = {"left": 8, "right": 24, "top": 40, "bottom": 48, "containLabel": True}
    opt["xAxis"] = {"type": "category", "data": cols, "position": "top", "splitArea": {"show": True}}
    opt["yAxis"] = {"type": "category", "data": rows, "inverse": True, "splitArea": {"show": True}}
    top = max((_pct(g.revenue_share) or 0.0 for g in res.classes), default=0.0) or 100.0
    opt["visualMap"] = {"min": 0, "max": top, "calculable": True, "orient": "horizontal", "left": "center",
                        "bottom": 0, "itemHeight": 160, "formatter": "{value}%",
                        "text": ["", t("web.chart.revenue_share")],
                        "inRange": {"color": ["#eff6ff", "#93c5fd", "#2563eb"]}}
    opt["series"] = [{"name": "rfm", "type": "heatmap", "data": data,
                      "label": {"show": True, "fontSize": 12, "lineHeight": 16},
                      "emphasis": {"itemStyle": {"borderColor": "#111", "borderWidth": 1}}}]
    links = [
        (f"{g.key} · {g.name_zh if zh else g.name_en}",
         f"/analysis/rfm/members.csv?group={quote(g.key)}&query={quote(query)}")
        for g in res.classes
    ]
    return Chart(opt, height=420, kind="rfm", links=links)


def clv_chart(res: Any, query: str = "") -> Chart:
    """Distribution of predicted CLV over the top customers (8 buckets), plus the totals."""
    values = sorted((c.clv for c in res.top_customers), reverse=True)
    caption = t("web.clv_summary", customers=f"{res.customers:,}", total=f"{res.clv_total:,.0f}", mean=f"{res.clv_mean:,.2f}")
    hi = values[0] if values else 0.0
    counts = [0] * 8
    for v in values:
        counts[min(7, int(v / hi * 8)) if hi > 0 else 0] += 1
    labels = [f"{hi * i / 8:,.0f}–{hi * (i + 1) / 8:,.0f}" for i in range(8)]
    name = t("web.chart.customers")
    opt = _base(legend=[name])
    opt["tooltip"]["axisPointer"] = {"type": "shadow"}
    opt["xAxis"] = {"type": "category", "data": labels, "axisLabel": {"rotate": 30}}
    opt["yAxis"] = {"type": "value"}
    opt["series"] = [{"name": name, "type": "bar", "data": counts, "label": {"show": True, "position": "top"}}]
    return Chart(opt, height=340, caption=caption, kind="clv")


def rows_chart(headers: Sequence[object], rows: Sequence[Sequence[Any]]) -> Chart | None:
    """A generic chart from a result's table: bars for a short table, lines for a long one."""
    if not rows or len(headers) < 2:
        return None
    numeric = [i for i in range(1, len(headers)) if all(isinstance(r[i], int | float) or r[i] is None for r in rows)]
    if not numeric:
        return None
    x = [str(r[0]) for r in rows]
    cols = numeric[:MAX_SERIES] if len(rows) > 12 else numeric[:1]
    names = [str(headers[i]) for i in cols]
    long = len(rows) > 12
    opt = _base(zoom=long, legend=names)
    opt["xAxis"] = {"type": "category", "data": x}
    opt["yAxis"] = {"type": "value"}
    opt["series"] = [{"name": n, "type": "line" if long else "bar", "data": [r[i] for r in rows]}
                     for n, i in zip(names, cols, strict=True)]
    return Chart(opt, height=340, kind="rows")


# -- metric tree and overview ----------------------------------------------------------------
def metric_tree_chart(res: Any, inputs: Mapping[str, Sequence[str]]) -> Chart:
    """A what-if result as a tree (root left, drivers right); ``inputs`` maps a node to its
    children. Each node shows its base → scenario and change; changed drivers are orange."""
    from yunying.metrics.compute import format_value

    nodes = {n.name: n for n in res.nodes}

    def node(name: str, seen: frozenset[str]) -> dict[str, Any]:
        n = nodes[name]
        base, scen = format_value(n.base, n.format) or "–", format_value(n.scenario, n.format) or "–"
        change = "" if n.change_pct is None or abs(n.change_pct) < 1e-12 else f" ({n.change_pct * 100:+.2f}%)"
        text = f"{n.label}\n{base}" if not change else f"{n.label}\n{base} → {scen}{change}"
        color = "#d97706" if n.changed else ("#2563eb" if change else "#6b7280")
        kids = [c for c in inputs.get(name, ()) if c in nodes and c not in seen]
        return {
            "name": n.label, "value": n.scenario,
            "label": {"formatter": text},
            "itemStyle": {"color": color, "borderColor": color},
            "tooltip": {"formatter": f"{n.label}: {t('web.base')} {base} · {t('web.scenario')} {scen}{change}"},
            "children": [node(c, seen | {name}) for c in kids],
        }

    opt = _base()
    opt["tooltip"] = {"trigger": "item", "confine": True, "className": "echart-tooltip"}
    depth_rows = max(1, sum(1 for n in res.nodes if not inputs.get(n.name)))
    opt["series"] = [{
        "type": "tree", "data": [node(res.metric, frozenset())], "orient": "LR", "roam": True,
        "initialTreeDepth": -1, "expandAndCollapse": True, "symbolSize": 10,
        "top": 30, "left": "14%", "right": "24%", "bottom": 20,
        "label": {"position": "left", "verticalAlign": "middle", "align": "right", "fontSize": 12,
                  "backgroundColor": "#fff"},
        "leaves": {"label": {"position": "right", "align": "left"}},
        "lineStyle": {"color": "#cbd5e1"},
    }]
    return Chart(opt, height=max(260, 70 * depth_rows), kind="tree")


def sparkline(values: Sequence[object], labels: Sequence[object] = ()) -> Chart | None:
    """A 30-day line for a headline KPI tile: no axes, a tooltip per day."""
    vals = [_num(v) for v in values]
    if len(vals) < 2:
        return None
    x = [str(v) for v in labels] if len(labels) == len(vals) else [str(i) for i in range(len(vals))]
    opt: dict[str, Any] = {
        "textStyle": {"fontFamily": FONT_FAMILY}, "animation": False,
        "grid": {"left": 1, "right": 1, "top": 3, "bottom": 3},
        "tooltip": {"trigger": "axis", "confine": True, "className": "echart-tooltip", "textStyle": {"fontSize": 11}},
        "xAxis": {"type": "category", "data": x, "show": False, "boundaryGap": False},
        "yAxis": {"type": "value", "show": False, "scale": True},
        "series": [{"type": "line", "data": vals, "showSymbol": False, "lineStyle": {"width": 1.5, "color": PALETTE[0]},
                    "itemStyle": {"color": PALETTE[0]}, "areaStyle": {"color": "rgba(37,99,235,0.08)"}}],
    }
    return Chart(opt, height=36, kind="spark")


# -- embedding ------------------------------------------------------------------------------
def option_json(option: Mapping[str, Any]) -> str:
    """The option as JSON safe inside a <script> element (as Jinja's ``tojson``)."""
    text = json.dumps(option, ensure_ascii=False, separators=(",", ":"), default=str)
    return text.replace("&", "\\u0026").replace("<", "\\u003c").replace(">", "\\u003e").replace("'", "\\u0027")


def render(chart: Chart | None, chart_id: str = "") -> Markup:
    """The chart's element and its option, for ``static/app.js`` to draw."""
    if chart is None:
        return Markup("")
    save = chart.option.get("toolbox", {}).get("feature", {}).get("saveAsImage")
    if save is not None and "name" not in save and chart.kind:
        save["name"] = f"yunying-{chart.kind}"  # the downloaded file: yunying-funnel.png
    ident = f' id="{escape(chart_id)}"' if chart_id else ""
    parts = []
    if chart.caption:
        parts.append(f'<p class="chart-caption">{escape(chart.caption)}</p>')
    parts.append(
        f'<div class="echart" data-chart="{escape(chart.kind)}"{ident} style="height:{int(chart.height)}px"></div>'
        f'<script type="application/json" class="echart-option">{option_json(chart.option)}</script>'
    )
    if chart.links:
        items = "".join(
            f'<li><a class="members" href="{escape(href)}">{escape(label)} · {escape(t("web.export_members"))}</a></li>'
            for label, href in chart.links
        )
        parts.append(f'<ul class="chart-links">{items}</ul>')
    return Markup("".join(parts))


CHARTS: dict[str, Callable[[Any, str], Chart]] = {
    "funnel": funnel_chart, "trends": trends_chart, "retention": retention_chart,
    "lifecycle": lifecycle_chart, "stickiness": stickiness_chart, "rfm": rfm_chart, "clv": clv_chart,
}
