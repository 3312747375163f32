"""Charts and exports written for specific analyses' result models.

Each function reads the runner's own result model; ``views.chart_for`` falls back to a
generic chart when a result's shape changes.
"""

from __future__ import annotations

from collections.abc import Callable
from html import escape
from typing import Any
from urllib.parse import quote

from markupsafe import Markup

from yunying.i18n import t
from yunying.web import charts


def funnel_chart(res: Any, query: str = "") -> Markup:
    """Step chart: users per step, with conversion from step 1 and drop-off."""
    steps = res.steps
    notes = [f"{s.conversion:.1%}" + (f" · −{s.drop_off:,}" if s.drop_off else "") for s in steps]
    return charts.bar_chart([f"{s.step}. {s.name}" for s in steps], [s.users for s in steps], note=notes)


def funnel_export(res: Any) -> tuple[list[str], list[list[Any]]]:
    """Drop-off per step (and per breakdown group)."""
    headers = [
        t("funnel.col.group"), t("funnel.col.step"), t("funnel.col.name"), t("funnel.col.users"),
        t("funnel.col.conversion"), t("funnel.col.step_conversion"), t("funnel.col.drop_off"),
    ]
    rows: list[list[Any]] = []
    for group, steps in [("", res.steps), *[(g.value, g.steps) for g in res.groups]]:
        for s in steps:
            rows.append([group, s.step, s.name, s.users, round(s.conversion, 6), round(s.step_conversion, 6), s.drop_off])
    return headers, rows


def trends_chart(res: Any, query: str = "") -> Markup:
    series = res.series[:7]
    if not series:
        return Markup("")
    x = [p.period[:16] for p in series[0].points]
    return charts.line_chart(x, {s.group: [p.value or 0 for p in s.points] for s in series})


def retention_chart(res: Any, query: str = "") -> Markup:
    """Heatmap: one row per cohort, one cell per period, shaded by the retained share.

    With a breakdown: one row per value (its cohorts together) under the all-users row, so
    the values compare at a glance; the table below the chart keeps every cohort.
    """
    breakdowns = getattr(res, "breakdowns", None) or []
    n = max((len(c.rates) for c in [res.total, *res.cohorts]), default=0)
    head = "".join(f"<th>{i}</th>" for i in range(n))
    rows = []
    if breakdowns:
        first = t("web.breakdown_group")
        lines = [(t("web.all_users"), res.total), *[(b.value, b.total) for b in breakdowns]]
    else:
        first = t("web.cohort")
        lines = [(t("web.retention_all"), res.total), *[(c.cohort[:10], c) for c in res.cohorts]]
    for label, c in lines:
        cells = []
        for i in range(n):
            rate = c.rates[i] if i < len(c.rates) else None
            if rate is None:
                cells.append('<td class="na"></td>')
            else:
                color = charts.heat_color(rate)
                fg = "#fff" if rate > 0.55 else "#111"
                cells.append(f'<td style="background:{color};color:{fg}" title="{c.retained[i]:,}">{rate:.0%}</td>')
        rows.append(f"<tr><td>{escape(label)}</td><td>{c.size:,}</td>{''.join(cells)}</tr>")
    return Markup(
        f'<table class="data heat" id="heatmap"><tr><th>{escape(first)}</th>'
        f'<th>{escape(t("web.cohort_size"))}</th>{head}</tr>{"".join(rows)}</table>'
    )


def lifecycle_chart(res: Any, query: str = "") -> Markup:
    ps = res.periods
    x = [p.period[:10] for p in ps]
    return charts.line_chart(x, {
        t("web.lc.new"): [p.new for p in ps], t("web.lc.returning"): [p.returning for p in ps],
        t("web.lc.resurrecting"): [p.resurrecting for p in ps], t("web.lc.dormant"): [p.dormant for p in ps],
    })


def stickiness_chart(res: Any, query: str = "") -> Markup:
    """Users by active days; with a breakdown, a table with one row per value: the share of
    its user-periods at 1, 2, … days (shaded like the retention heatmap) and the average."""
    breakdowns = getattr(res, "breakdowns", None) or []
    if breakdowns:
        head = "".join(f"<th>{escape(t('web.days_active', n=i + 1))}</th>" for i in range(len(res.share)))
        rows = []
        for label, g in [(t("web.all_users"), res), *[(b.value, b) for b in breakdowns]]:
            cells = "".join(
                f'<td style="background:{charts.heat_color(v)};color:{"#fff" if v > 0.55 else "#111"}" '
                f'title="{n:,}">{v:.0%}</td>'
                for v, n in zip(g.share, g.distribution, strict=True)
            )
            avg = "-" if g.average_days is None else f"{g.average_days:.2f}"
            rows.append(f"<tr><td>{escape(label)}</td><td>{sum(g.distribution):,}</td>{cells}<td>{avg}</td></tr>")
        return Markup(
            f'<table class="data heat" id="stickiness-groups"><tr><th>{escape(t("web.breakdown_group"))}</th>'
            f'<th>{escape(t("web.user_periods"))}</th>{head}<th>{escape(t("web.average_days"))}</th></tr>'
            f'{"".join(rows)}</table>'
        )
    return charts.bar_chart(
        [t("web.days_active", n=i + 1) for i in range(len(res.distribution))], res.distribution,
        note=[f"{s:.1%}" for s in res.share],
    )


def rfm_chart(res: Any, query: str = "") -> Markup:
    """The class grid: one tile per RFM class with its users, revenue share and members."""
    from yunying.i18n import get_language

    zh = get_language() == "zh_CN"
    tiles = []
    for g in res.classes:
        name = g.name_zh if zh else g.name_en
        shade = charts.heat_color(min(1.0, g.revenue_share * 2))
        tiles.append(
            f'<div class="kpi rfm" data-class="{escape(g.key)}" style="border-top:6px solid {shade}">'
            f'<div class="label">{escape(g.key)} · {escape(name)}</div>'
            f'<div class="value">{g.users:,}</div>'
            f'<div class="muted">{escape(t("web.rfm_share", users=f"{g.share:.1%}", revenue=f"{g.revenue_share:.1%}"))}</div>'
            f'<a class="members" data-group="{escape(g.key)}" href="/analysis/rfm/members.csv?group={quote(g.key)}&amp;query={quote(query)}">'
            f'{escape(t("web.export_members"))}</a></div>'
        )
    return Markup(f'<div class="kpis" id="rfm-grid">{"".join(tiles)}</div>')


def clv_chart(res: Any, query: str = "") -> Markup:
    """Distribution of predicted CLV over the top customers (buckets), plus the totals."""
    values = sorted((c.clv for c in res.top_customers), reverse=True)
    if not values:
        return Markup("")
    hi = values[0] or 1.0
    edges = [hi * i / 8 for i in range(9)]
    counts = [0] * 8
    for v in values:
        counts[min(7, int(v / hi * 8)) if hi else 0] += 1
    labels = [f"{edges[i]:,.0f}–{edges[i + 1]:,.0f}" for i in range(8)]
    head = Markup(
        f'<p>{escape(t("web.clv_summary", customers=f"{res.customers:,}", total=f"{res.clv_total:,.0f}", mean=f"{res.clv_mean:,.2f}"))}</p>'
    )
    return head + charts.bar_chart(labels, counts)


def rfm_export(res: Any) -> tuple[list[str], list[list[Any]]]:
    headers = ["kind", "key", "name_zh", "name_en", "users", "share", "revenue", "revenue_share", "avg_spend"]
    rows = [[kind, g.key, g.name_zh, g.name_en, g.users, g.share, g.revenue, g.revenue_share, g.avg_spend]
            for kind, groups in (("class", res.classes), ("segment", res.segments)) for g in groups]
    return headers, rows


def retention_export(res: Any) -> tuple[list[str], list[list[Any]]]:
    """Rates per cohort; with a breakdown, a leading ``breakdown`` column ("" = all users)
    and each value's total and cohorts after the all-users rows."""
    n = max((len(c.rates) for c in [res.total, *res.cohorts]), default=0)
    headers = ["cohort", "size", *[f"p{i}" for i in range(n)]]
    rows = [[c.cohort, c.size, *c.rates] for c in [res.total, *res.cohorts]]
    breakdowns = getattr(res, "breakdowns", None) or []
    if not breakdowns:
        return headers, rows
    rows = [["", *r] for r in rows]
    for b in breakdowns:
        rows.extend([b.value, c.cohort, c.size, *c.rates] for c in [b.total, *b.cohorts])
    return ["breakdown", *headers], rows


CHARTS: dict[str, Callable[[Any, str], Markup]] = {
    "funnel": funnel_chart, "trends": trends_chart, "retention": retention_chart,
    "lifecycle": lifecycle_chart, "stickiness": stickiness_chart, "rfm": rfm_chart, "clv": clv_chart,
}
EXPORTS: dict[str, Callable[[Any], tuple[list[str], list[list[Any]]]]] = {
    "funnel": funnel_export, "rfm": rfm_export, "retention": retention_export,
}
