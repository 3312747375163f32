"""Campaign review (活动复盘): goal vs actual, lift against the holdout, cost, CPA, ROI."""

from __future__ import annotations

from typing import Any

from yunying import clock
from yunying.experiments.campaign import CampaignEval, run_campaign_eval
from yunying.i18n import get_language, t
from yunying.reports import svg
from yunying.reports.render import Kpi, ReportDoc, Section, TableData
from yunying.reports.words import effect_text, level, money, pct
from yunying.warehouse.engine import Warehouse


def headline(ev: CampaignEval, lang: str) -> list[str]:
    out: list[str] = []
    cur = ev.meta.currency
    metric = t("reports.camp.col.conversion", lang=lang)
    c = ev.conversion
    if c is None:
        return [t("reports.camp.no_holdout", lang=lang)]
    p = {
        "metric": metric,
        "abs": effect_text("proportion", c.abs_effect, lang, signed=not c.significant),
        "rel": pct(c.rel_effect),
        "lo": effect_text("proportion", c.abs_low, lang, signed=True),
        "hi": effect_text("proportion", c.abs_high, lang, signed=True),
        "level": level(ev.alpha),
    }
    out.append(t("reports.camp.conv" if c.significant and c.abs_effect > 0 else "reports.camp.conv_flat", lang=lang, **p))
    if ev.cpa is not None:
        out.append(
            t("reports.camp.cpa", lang=lang, cpa=money(ev.cpa, cur), rev=money(ev.incremental_revenue, cur),
              cost=money(ev.cost, cur), roi=pct(ev.roi, 0) if ev.roi is not None else "–")
        )
    else:
        out.append(t("reports.camp.cpa_none", lang=lang, cost=money(ev.cost, cur)))
    if ev.meta.budget:
        out.append(
            t("reports.camp.budget", lang=lang, spent=money(ev.cost, cur), budget=money(ev.meta.budget, cur),
              share=f"{(ev.budget_used or 0):.0%}")
        )
    if ev.meta.goal_metric:
        goal = f"{ev.meta.goal_metric}" + (f" → {ev.meta.goal_target:g}" if ev.meta.goal_target is not None else "")
        out.append(t("reports.camp.goal", lang=lang, goal=goal))
    return out


def next_steps(ev: CampaignEval, lang: str) -> list[str]:
    steps: list[str] = []
    c = ev.conversion
    roi = pct(ev.roi, 0) if ev.roi is not None else "–"
    if c is None:
        steps.append(t("reports.camp.no_holdout", lang=lang))
    elif not (c.significant and c.abs_effect > 0):
        steps.append(t("reports.camp.next_stop", lang=lang))
    elif ev.roi is not None and ev.roi >= 0:
        steps.append(t("reports.camp.next_scale", lang=lang, roi=roi))
    else:
        steps.append(t("reports.camp.next_costly", lang=lang, roi=roi))
    if ev.budget_used is not None and ev.budget_used > 1.0:
        steps.append(t("reports.camp.next_budget", lang=lang))
    steps.append(t("reports.camp.next_record", lang=lang))
    return steps


def campaign_report(
    settings: Any, wh: Warehouse, campaign_id: str, lang: str | None = None, segment_by: str = "channel"
) -> ReportDoc:
    lang = lang or get_language()
    ev = run_campaign_eval(settings, wh, campaign_id, segment_by=segment_by)
    cur = ev.meta.currency
    kpis = [Kpi(label=t(f"reports.camp.{'treated' if g.group == 'treatment' else 'holdout_users'}", lang=lang), value=f"{g.users:,}") for g in ev.groups]
    if ev.incremental_payers is not None:
        kpis.append(Kpi(
            label=t("reports.camp.extra_payers", lang=lang), value=f"{ev.incremental_payers:,.0f}",
            note=f"{level(ev.alpha)}: {ev.incremental_payers_low:,.0f} … {ev.incremental_payers_high:,.0f}",
        ))
    kpis += [
        Kpi(label=t("reports.camp.incr_revenue", lang=lang), value=money(ev.incremental_revenue, cur)),
        Kpi(label=t("reports.camp.cost", lang=lang), value=money(ev.cost, cur)),
        Kpi(label=t("reports.camp.cpa_label", lang=lang), value=money(ev.cpa, cur)),
        Kpi(label=t("reports.camp.roi", lang=lang), value=pct(ev.roi, 0) if ev.roi is not None else "–"),
    ]
    group_table = TableData(
        headers=[t(f"reports.camp.col.{k}", lang=lang) for k in ("group", "users", "payers", "conversion", "revenue")],
        rows=[[g.group, f"{g.users:,}", f"{g.payers:,}", f"{g.conversion:.2%}", money(g.revenue_per_user, cur)] for g in ev.groups],
    )
    charts_effect: list[str] = []
    if len(ev.groups) == 2:
        charts_effect.append(svg.bars(
            [g.group for g in ev.groups], [g.conversion for g in ev.groups],
            t("reports.camp.chart_groups", lang=lang, metric=t("reports.camp.col.conversion", lang=lang)), "{:.2%}",
        ))
    if ev.segments:
        charts_effect.append(svg.forest(
            [svg.Interval(s.segment, s.lift.abs_effect, s.lift.abs_low, s.lift.abs_high,
                          svg.GOOD if s.lift.significant and s.lift.abs_effect > 0 else svg.NEUTRAL) for s in ev.segments],
            t("reports.camp.per_segment", lang=lang) + f" ({level(ev.alpha)})", fmt="{:+.1%}",
        ))
    sections = [
        Section(title=t("reports.camp.effect", lang=lang), table=group_table, charts=charts_effect),
    ]
    if ev.segments:
        sections.append(Section(
            title=t("reports.camp.per_segment", lang=lang) + f" · {ev.segment_by}",
            table=TableData(
                headers=[t(f"reports.camp.col.{k}", lang=lang) for k in ("segment", "users", "conversion", "lift", "ci")],
                rows=[[s.segment, f"{s.treated:,} / {s.holdout:,}", f"{s.conversion_t:.2%} / {s.conversion_h:.2%}",
                       effect_text("proportion", s.lift.abs_effect, lang, signed=True),
                       f"{effect_text('proportion', s.lift.abs_low, lang, signed=True)} … {effect_text('proportion', s.lift.abs_high, lang, signed=True)}"]
                      for s in ev.segments],
            ),
        ))
    if ev.tools:
        sections.append(Section(
            title=t("reports.camp.per_tool", lang=lang),
            charts=[svg.bars([f"{x.tool_id} ({x.kind})" for x in ev.tools], [x.cost for x in ev.tools], t("reports.camp.chart_tool", lang=lang), "{:,.2f}")],
            table=TableData(
                headers=[t(f"reports.camp.col.{k}", lang=lang) for k in ("tool", "kind", "cost", "count", "users")],
                rows=[[x.tool_id, x.kind, money(x.cost, cur), f"{x.entries:,}", f"{x.users:,}"] for x in ev.tools],
            ),
        ))
    else:
        sections.append(Section(title=t("reports.camp.per_tool", lang=lang), paragraphs=[t("reports.camp.no_cost", lang=lang)]))
    if ev.burn:
        sections.append(Section(
            title=t("reports.camp.burn", lang=lang),
            charts=[svg.lines([d for d, _ in ev.burn], {t("reports.camp.cost", lang=lang): [v for _, v in ev.burn]},
                              t("reports.camp.chart_burn" if ev.meta.budget else "reports.camp.chart_spend", lang=lang),
                              "{:,.0f}", reference=ev.meta.budget)],
        ))
    window = "–"
    if ev.meta.starts_at and ev.meta.ends_at:
        window = f"{ev.meta.starts_at:%Y-%m-%d} → {ev.meta.ends_at:%Y-%m-%d}"
    holdout = f"{ev.meta.holdout_share:.0%}" if ev.meta.holdout_share is not None else "–"
    return ReportDoc(
        kind="campaign",
        id=ev.meta.id,
        title=t("reports.camp.title", lang=lang, name=ev.meta.name),
        subtitle=t("reports.camp.subtitle", lang=lang, id=ev.meta.id, window=window, holdout=holdout),
        lang=lang,
        generated_at=clock.now(),
        headline=headline(ev, lang),
        kpis=kpis,
        sections=sections,
        next_steps=next_steps(ev, lang),
        next_steps_title=t("reports.next", lang=lang),
        footer=t("reports.footer", lang=lang),
    )
