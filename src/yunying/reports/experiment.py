"""Experiment review: the result in words, goal vs actual, charts, what to do next."""

from __future__ import annotations

from yunying import clock
from yunying.experiments.analysis import (
    AnalyzeQuery,
    ExperimentResult,
    MetricResult,
    exposure_days,
    run_analysis,
)
from yunying.experiments.spec import ExperimentSpec
from yunying.experiments.stats.power import sample_size_mean
from yunying.i18n import get_language, t
from yunying.reports import svg
from yunying.reports.render import Kpi, ReportDoc, Section, TableData
from yunying.reports.words import effect_text, level, pct, value_text
from yunying.warehouse.engine import Warehouse


def sentence(m: MetricResult, r: ExperimentResult, lang: str) -> str:
    """One metric, one variant, in words: direction, size, interval (or chance to win)."""
    p = {
        "variant": m.variant,
        "baseline": m.baseline,
        "metric": m.name,
        "abs": effect_text(m.kind, m.abs_effect, lang),
        "rel": pct(m.rel_effect),
        "lo": effect_text(m.kind, m.abs_low, lang, signed=True),
        "hi": effect_text(m.kind, m.abs_high, lang, signed=True),
        "level": level(r.alpha),
    }
    if not m.ok:
        return t("reports.exp.no_data", lang=lang, **p)
    if r.method == "bayesian" and m.chance_to_win is not None:
        return t("reports.exp.bayes", lang=lang, ctw=f"{m.chance_to_win:.0%}", **p)
    if m.significant:
        key = "reports.exp.raised" if m.abs_effect > 0 else "reports.exp.lowered"
        return t(key, lang=lang, **p)
    mde = effect_text(m.kind, m.mde_abs or 0.0, lang)
    return t("reports.exp.flat", lang=lang, mde=mde, **p)


def _color(m: MetricResult) -> str:
    if not m.significant:
        return svg.NEUTRAL
    return svg.GOOD if m.good else svg.BAD


def next_steps(spec: ExperimentSpec, r: ExperimentResult, lang: str) -> list[str]:
    """A recommendation follows from the evidence: SRM first, then harm, then wins."""
    if r.srm.mismatch:
        return [t("reports.exp.next_srm", lang=lang)]
    steps: list[str] = []
    primary = [m for m in r.metrics if m.metric == spec.metrics[0].id and m.variant != "holdout"]
    winners = [m for m in primary if m.significant and m.good]
    harmed = sorted({m.name for m in r.metrics if m.significant and m.good is False})
    if harmed:
        steps.append(t("reports.exp.next_harm", lang=lang, metrics=", ".join(harmed)))
    if winners:
        best = max(winners, key=lambda m: m.abs_effect)
        steps.append(t("reports.exp.next_ship", lang=lang, variant=best.variant, metric=best.name))
    elif primary:
        m = primary[0]
        target = spec.goal_lift or m.mde_abs
        if target and m.baseline_value is not None:
            import math

            sd = math.sqrt(max(m.baseline_value * (1 - m.baseline_value), 1e-12)) if m.kind == "proportion" else None
            if sd is not None:
                n = sample_size_mean(sd, abs(target), r.alpha).per_variant
                steps.append(
                    t("reports.exp.next_extend", lang=lang, n=f"{n:,}", effect=effect_text(m.kind, target, lang))
                )
        steps.append(t("reports.exp.next_flat", lang=lang, metric=m.name))
    steps.append(t("reports.exp.next_record", lang=lang))
    return steps


def experiment_report(
    wh: Warehouse, spec: ExperimentSpec, q: AnalyzeQuery | None = None, lang: str | None = None
) -> ReportDoc:
    lang = lang or get_language()
    r = run_analysis(wh, spec, q)
    primary_id = spec.metrics[0].id
    headline = [sentence(m, r, lang) for m in r.metrics if m.metric == primary_id]
    warnings: list[str] = []
    if r.srm.mismatch:
        warnings.append(t("experiments.srm_warning", lang=lang, p=f"{r.srm.p_value:.2g}"))
    if r.multi_variant_users:
        warnings.append(t("reports.exp.multi", lang=lang, n=r.multi_variant_users))
    if spec.goal_lift is not None:
        for m in r.metrics:
            if m.metric == primary_id and m.variant != "holdout":
                headline.append(
                    t(
                        "reports.exp.goal",
                        lang=lang,
                        variant=m.variant,
                        goal=effect_text(m.kind, spec.goal_lift, lang, signed=True),
                        actual=effect_text(m.kind, m.abs_effect, lang, signed=True),
                        met=t("reports.yes" if m.abs_low >= spec.goal_lift else "reports.no", lang=lang),
                    )
                )
    kpis = [Kpi(label=t("reports.exp.users", lang=lang, variant=v.variant), value=f"{v.users:,}") for v in r.variants]
    if r.first_exposure and r.last_exposure:
        days = (r.last_exposure - r.first_exposure).days + 1
        kpis.append(Kpi(label=t("reports.exp.days", lang=lang), value=str(days)))
    kpis.append(
        Kpi(
            label=t("reports.exp.srm", lang=lang),
            value=f"p = {r.srm.p_value:.3g}",
            note=t("reports.exp.srm_bad" if r.srm.mismatch else "reports.exp.srm_ok", lang=lang),
        )
    )
    stat_head = t("experiments.col.ctw", lang=lang) if r.method == "bayesian" else t("experiments.col.p", lang=lang)
    rows = []
    for m in r.metrics:
        stat = m.chance_to_win if r.method == "bayesian" else m.p_adjusted
        rows.append([
            m.name, m.variant, value_text(m.kind, m.value), value_text(m.kind, m.baseline_value),
            effect_text(m.kind, m.abs_effect, lang, signed=True), pct(m.rel_effect),
            f"{pct(m.rel_low)} … {pct(m.rel_high)}", "–" if stat is None else f"{stat:.3g}",
            _verdict(m, lang),
        ])
    table = TableData(
        headers=[t(f"experiments.col.{k}", lang=lang) for k in ("metric", "variant", "value", "baseline", "abs_effect", "rel_effect", "ci")]
        + [stat_head, t("experiments.col.verdict", lang=lang)],
        rows=rows,
    )
    charts = [
        svg.forest(
            [svg.Interval(f"{m.name} · {m.variant}", m.rel_effect, m.rel_low, m.rel_high, _color(m)) for m in r.metrics],
            t("reports.exp.chart_effects", lang=lang, level=level(r.alpha)),
        )
    ]
    prim = [m for m in r.metrics if m.metric == primary_id]
    if prim:
        labels = [prim[0].baseline] + [m.variant for m in prim]
        vals = [prim[0].baseline_value] + [m.value for m in prim]
        fmt = "{:.2%}" if prim[0].kind == "proportion" else "{:,.2f}"
        charts.append(svg.bars(labels, vals, t("reports.exp.chart_primary", lang=lang, metric=prim[0].name), fmt))
    daily = exposure_days(wh, spec)
    if daily:
        day_list = sorted({d for d, _, _ in daily})
        series: dict[str, list[float]] = {}
        for v in [*[x.key for x in spec.variants], "holdout"]:
            counts = {d: n for d, vv, n in daily if vv == v}
            if counts:
                acc, pts = 0.0, []
                for d in day_list:
                    acc += counts.get(d, 0)
                    pts.append(acc)
                series[v] = pts
        charts.append(svg.lines(day_list, series, t("reports.exp.chart_exposures", lang=lang)))
    method_note = t(
        f"reports.method.{r.method}", lang=lang, level=level(r.alpha),
        correction=t(f"reports.correction.{r.correction}", lang=lang),
    )
    cuped = [m.name for m in r.metrics if m.cuped]
    paragraphs = [method_note]
    if cuped:
        paragraphs.append(t("reports.exp.cuped", lang=lang, metrics=", ".join(sorted(set(cuped))), days=spec.cuped_days))
    sections = [
        Section(title=t("reports.exp.results", lang=lang), charts=charts[:1], table=table, paragraphs=paragraphs),
        Section(title=t("reports.exp.details", lang=lang), charts=charts[1:]),
    ]
    if spec.hypothesis:
        sections.insert(0, Section(title=t("reports.exp.hypothesis", lang=lang), paragraphs=[spec.hypothesis]))
    return ReportDoc(
        kind="experiment",
        id=spec.id,
        title=t("reports.exp.title", lang=lang, name=r.name),
        subtitle=t("reports.exp.subtitle", lang=lang, id=spec.id, variants=", ".join(v.key for v in spec.variants), method=r.method),
        lang=lang,
        generated_at=clock.now(),
        headline=headline,
        warnings=warnings,
        kpis=kpis,
        sections=sections,
        next_steps=next_steps(spec, r, lang),
        next_steps_title=t("reports.next", lang=lang),
        footer=t("reports.footer", lang=lang),
    )


def _verdict(m: MetricResult, lang: str) -> str:
    if not m.ok:
        return t("experiments.verdict.no_data", lang=lang)
    if not m.significant:
        return t("experiments.verdict.flat", lang=lang)
    return t("experiments.verdict.better" if m.good else "experiments.verdict.worse", lang=lang)
