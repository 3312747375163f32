"""Experiment analysis: exposures → per-user values → sufficient statistics → the engine.

The warehouse does the heavy part (join exposures with events/orders after each user's
first exposure, one aggregate per variant: n, Σy, Σy², pre-period sums for CUPED, cross
products for ratios); the statistics run on those few numbers. The same Ibis
expression runs on DuckDB and Spark.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel, Field

from yunying.analytics.common import engine_of, prop_text
from yunying.errors import YunyingError
from yunying.experiments.spec import (
    EXPOSURE_EVENT,
    HOLDOUT,
    ExperimentSpec,
    Measure,
    MetricDef,
)
from yunying.experiments.stats.bayesian import bayesian_test
from yunying.experiments.stats.correction import adjust_p
from yunying.experiments.stats.cuped import CupedInput, adjust
from yunying.experiments.stats.frequentist import welch_test
from yunying.experiments.stats.models import (
    Proportion,
    Ratio,
    SampleMean,
    Statistic,
)
from yunying.experiments.stats.power import mde_mean
from yunying.experiments.stats.sequential import sequential_test
from yunying.experiments.stats.srm import SRM_THRESHOLD, srm_check
from yunying.i18n import t
from yunying.warehouse.engine import Warehouse

EXPOSURE_EVENTS = (EXPOSURE_EVENT, "experiment_exposure")


class AnalyzeQuery(BaseModel):
    """What to analyse; unset fields take the experiment definition's values."""

    experiment: str
    method: str | None = Field(default=None, pattern="^(frequentist|bayesian|sequential)$")
    baseline: str | None = None
    as_of: datetime | None = None
    correction: str | None = Field(default=None, pattern="^(none|holm|bh)$")


class VariantCount(BaseModel):
    variant: str
    users: int
    expected_share: float | None


class SrmSummary(BaseModel):
    p_value: float
    chi2: float
    mismatch: bool
    threshold: float = SRM_THRESHOLD


class MetricResult(BaseModel):
    """One metric, one variant against the baseline."""

    metric: str
    name: str
    kind: str
    variant: str
    baseline: str
    users: int
    baseline_users: int
    value: float
    baseline_value: float
    # Absolute difference (percentage points for conversions) with its interval.
    abs_effect: float
    abs_low: float
    abs_high: float
    # Relative lift (0.05 = +5%) with its interval.
    rel_effect: float
    rel_low: float
    rel_high: float
    p_value: float | None
    p_adjusted: float | None
    chance_to_win: float | None
    risk_variant: float | None
    significant: bool
    good: bool | None
    cuped: bool
    winsor_cap: float | None
    mde_abs: float | None
    ok: bool


class ExperimentResult(BaseModel):
    experiment: str
    name: str
    method: str
    alpha: float
    correction: str
    baseline: str
    variants: list[VariantCount]
    srm: SrmSummary
    multi_variant_users: int
    holdout_users: int
    first_exposure: datetime | None
    last_exposure: datetime | None
    metrics: list[MetricResult]
    goal_lift: float | None = None

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [
            t("experiments.col.metric"),
            t("experiments.col.variant"),
            t("experiments.col.users"),
            t("experiments.col.value"),
            t("experiments.col.baseline"),
            t("experiments.col.abs_effect"),
            t("experiments.col.rel_effect"),
            t("experiments.col.ci"),
            t("experiments.col.p") if self.method != "bayesian" else t("experiments.col.ctw"),
            t("experiments.col.verdict"),
        ]
        rows: list[list[Any]] = []
        for m in self.metrics:
            stat = m.p_adjusted if self.method != "bayesian" else m.chance_to_win
            rows.append(
                [
                    m.name or m.metric,
                    m.variant,
                    m.users,
                    round(m.value, 6),
                    round(m.baseline_value, 6),
                    round(m.abs_effect, 6),
                    f"{m.rel_effect:+.2%}",
                    f"[{m.rel_low:+.2%}, {m.rel_high:+.2%}]",
                    None if stat is None else round(stat, 4),
                    verdict(m),
                ]
            )
        return headers, rows


def verdict(m: MetricResult) -> str:
    if not m.ok:
        return t("experiments.verdict.no_data")
    if not m.significant:
        return t("experiments.verdict.flat")
    return t("experiments.verdict.better") if m.good else t("experiments.verdict.worse")


# -- exposures ---------------------------------------------------------------------------
def exposures(wh: Warehouse, spec: ExperimentSpec, as_of: datetime | None = None) -> ir.Table:
    """First exposure per user: user_id, variant, t0, nv (distinct variants seen)."""
    engine = engine_of(wh)
    e = wh.table("events")
    e = e.filter(e.event.isin(list(EXPOSURE_EVENTS)))
    if as_of is not None:
        e = e.filter(e.ts < as_of)
    e = e.mutate(_exp=prop_text(engine, e, "experiment"), _var=prop_text(engine, e, "variant"))
    e = e.filter(e._exp == spec.id)
    return e.group_by("user_id").aggregate(
        variant=e._var.min(), t0=e.ts.min(), nv=e._var.nunique()
    )


# -- per-user values ---------------------------------------------------------------------
def _measure_key(m: Measure) -> str:
    return m.model_dump_json()


def _measure_value(engine: str, tbl: ir.Table, m: Measure) -> ir.NumericValue:
    """The measure's contribution of one row (0 when the row does not count)."""
    if m.source == "events":
        hit = tbl.event == m.event
        if m.agg == "sum":
            assert m.value is not None
            v = prop_text(engine, tbl, m.value).try_cast("float64").fill_null(0.0)
            return ibis.ifelse(hit, v, 0.0)  # type: ignore[no-any-return]
        return ibis.ifelse(hit, 1.0, 0.0)  # type: ignore[no-any-return]
    hit = tbl.status == m.status
    if m.agg == "sum":
        return ibis.ifelse(hit, tbl.amount.cast("float64"), 0.0)  # type: ignore[no-any-return]
    return ibis.ifelse(hit, 1.0, 0.0)  # type: ignore[no-any-return]


class _Columns:
    """Names the distinct measures of an experiment so each is computed once."""

    def __init__(self, spec: ExperimentSpec, indicator_measures: dict[str, Any]) -> None:
        self.measures: dict[str, Measure] = {}
        self.names: dict[str, str] = {}
        self.indicators = indicator_measures
        for md in spec.metrics:
            for ms in _parts(md):
                k = _measure_key(ms)
                if k not in self.names:
                    self.names[k] = f"m{len(self.names)}"
                    self.measures[k] = ms

    def col(self, ms: Measure) -> str:
        return self.names[_measure_key(ms)]


def _parts(md: MetricDef) -> list[Measure]:
    if md.kind == "ratio":
        assert md.numerator is not None and md.denominator is not None
        return [md.numerator, md.denominator]
    return [md.measure] if md.measure is not None else []


def per_user(
    wh: Warehouse,
    spec: ExperimentSpec,
    cols: _Columns,
    expo: ir.Table,
    end: datetime | None,
) -> ir.Table:
    """One row per exposed user: variant, and post (``mX``) and pre (``mX_pre``) values."""
    engine = engine_of(wh)
    pre_days = spec.cuped_days
    out = expo
    by_source: dict[str, list[tuple[str, Measure]]] = {}
    for k, ms in cols.measures.items():
        by_source.setdefault(ms.source, []).append((cols.names[k], ms))
    for source, items in by_source.items():
        tbl = wh.table(source)
        if source == "events":
            tbl = tbl.filter(tbl.event.isin(sorted({m.event for _, m in items if m.event})))
        tbl = tbl.mutate(**{name: _measure_value(engine, tbl, m) for name, m in items})
        tbl = tbl.select("user_id", "ts", *[n for n, _ in items])
        x = expo.select(_u="user_id", _t0="t0")
        j = tbl.inner_join(x, tbl.user_id == x._u)
        lo = j._t0 - ibis.interval(days=pre_days) if pre_days else j._t0
        cond = j.ts >= lo
        if end is not None:
            cond = cond & (j.ts < end)
        if spec.end is not None:
            cond = cond & (j.ts < spec.end)
        j = j.filter(cond)
        post = j.ts >= j._t0
        aggs: dict[str, ir.Value] = {}
        for name, m in items:
            red = (lambda v, w: v.max(where=w)) if m.agg == "any" else (lambda v, w: v.sum(where=w))
            aggs[name] = red(j[name], post)
            if pre_days:
                aggs[f"{name}_pre"] = red(j[name], ~post)
        g = j.group_by(j._u).aggregate(**aggs)
        out = out.left_join(g, out.user_id == g._u).drop("_u")
    for name in cols.indicators:
        ind = cols.indicators[name]
        out = ind.join_to(wh, out, name, pre_days, end, spec.end)
    fills: dict[str, Any] = {}
    for c in out.columns:
        if c.startswith(("m", "i_")):
            fills[c] = out[c].fill_null(0.0).cast("float64")
    return out.mutate(**fills)


# -- the runner --------------------------------------------------------------------------
def _key(md: MetricDef, name: str) -> str:
    """Aggregate prefix of a column within a metric: winsorized copies are kept apart."""
    return name if md.winsorize is None else f"{name}_w{round(md.winsorize * 10000)}"


def _stat_columns(
    spec: ExperimentSpec, cols: _Columns, u: ir.Table, caps: dict[str, float]
) -> dict[str, ir.Value]:
    aggs: dict[str, ir.Value] = {"n": u.count()}

    def val(md: MetricDef, name: str) -> ir.NumericValue:
        c: ir.NumericValue = u[name]
        cap = caps.get(_key(md, name))
        return c.clip(upper=cap) if cap is not None else c

    for md in spec.metrics:
        names = metric_cols(md, cols)
        for name in names:
            k = _key(md, name)
            if f"{k}__s" in aggs:
                continue
            y = val(md, name)
            aggs[f"{k}__s"] = y.sum()
            aggs[f"{k}__ss"] = (y * y).sum()
            if spec.cuped_days and f"{name}_pre" in u.columns:
                x = val(md, f"{name}_pre")
                aggs[f"{k}__xs"] = x.sum()
                aggs[f"{k}__xss"] = (x * x).sum()
                aggs[f"{k}__xy"] = (x * y).sum()
        if md.kind == "ratio":
            a, b = names
            aggs[f"{_key(md, a)}__{_key(md, b)}__xy"] = (val(md, a) * val(md, b)).sum()
    return aggs


def _winsor_caps(
    wh: Warehouse, spec: ExperimentSpec, cols: _Columns, u: ir.Table
) -> dict[str, float]:
    """Per-user caps at each winsorized metric's quantile over all exposed users."""
    wanted: dict[str, tuple[str, float]] = {}
    for md in spec.metrics:
        if md.winsorize is None:
            continue
        for c in metric_cols(md, cols):
            wanted[_key(md, c)] = (c, md.winsorize)
            if spec.cuped_days and f"{c}_pre" in u.columns:
                wanted[_key(md, f"{c}_pre")] = (f"{c}_pre", md.winsorize)
    if not wanted:
        return {}
    if wh.engine == "spark":
        # Spark has no exact quantile in Ibis; the approximate one is ample for a cap
        # (docs/experiments.md says so).
        exprs = {k: u[c].approx_quantile(q) for k, (c, q) in wanted.items()}
    else:
        exprs = {k: u[c].quantile(q) for k, (c, q) in wanted.items()}
    row = wh.execute(u.aggregate(**exprs)).iloc[0]
    out: dict[str, float] = {}
    for k in wanted:
        v = row[k]
        if v is not None and not math.isnan(float(v)):
            out[k] = float(v)
    return out


def _num(row: Any, key: str) -> float:
    v = row.get(key) if hasattr(row, "get") else row[key]
    if v is None:
        return 0.0
    f = float(v)
    return 0.0 if math.isnan(f) else f


def _statistic(md: MetricDef, cols: _Columns, row: Any) -> Statistic:
    n = int(_num(row, "n"))
    if md.kind == "ratio":
        assert md.numerator is not None and md.denominator is not None
        a = _key(md, cols.col(md.numerator))
        b = _key(md, cols.col(md.denominator))
        return Ratio(
            n, _num(row, f"{a}__s"), _num(row, f"{a}__ss"), _num(row, f"{b}__s"),
            _num(row, f"{b}__ss"), _num(row, f"{a}__{b}__xy"),
        )
    name = _key(md, _single_col(md, cols))
    if md.kind == "proportion":
        return Proportion(n, _num(row, f"{name}__s"))
    return SampleMean(n, _num(row, f"{name}__s"), _num(row, f"{name}__ss"))


def _single_col(md: MetricDef, cols: _Columns) -> str:
    return metric_cols(md, cols)[0]


def metric_cols(md: MetricDef, cols: _Columns) -> list[str]:
    """Per-user columns a metric reads: a measure, numerator and denominator, or an indicator."""
    if md.kind == "ratio" or md.measure is not None:
        return [cols.col(p) for p in _parts(md)]
    return [f"i_{md.id}"]


def _cuped_input(name: str, row: Any) -> CupedInput:
    return CupedInput(
        int(_num(row, "n")), _num(row, f"{name}__s"), _num(row, f"{name}__ss"),
        _num(row, f"{name}__xs"), _num(row, f"{name}__xss"), _num(row, f"{name}__xy"),
    )


def load_indicators(wh: Warehouse, spec: ExperimentSpec) -> dict[str, Any]:
    """Indicator-system metrics named by ``indicator:``; see :mod:`.indicators`."""
    needed = [md for md in spec.metrics if md.indicator and md.measure is None]
    if not needed:
        return {}
    from yunying.experiments.indicators import indicator_measures

    return indicator_measures(wh, needed)


@dataclass
class VariantSums:
    """Per-variant sufficient statistics: the only thing the statistics need."""

    rows: dict[str, dict[str, Any]]
    caps: dict[str, float]
    cols: _Columns
    multi: int
    first: Any
    last: Any


def variant_sums(wh: Warehouse, spec: ExperimentSpec, as_of: datetime | None = None) -> VariantSums:
    """Run the warehouse part: exposures, per-user values, caps, one aggregate per variant."""
    expo_all = exposures(wh, spec, as_of)
    info = wh.execute(
        expo_all.aggregate(
            multi=(expo_all.nv > 1).sum(), first=expo_all.t0.min(), last=expo_all.t0.max()
        )
    ).iloc[0]
    expo = expo_all.filter(expo_all.nv == 1)
    cols = _Columns(spec, load_indicators(wh, spec))
    u = per_user(wh, spec, cols, expo, as_of)
    caps = _winsor_caps(wh, spec, cols, u)
    agg = u.group_by("variant").aggregate(**_stat_columns(spec, cols, u, caps))
    df = wh.execute(agg)
    rows = {str(r["variant"]): r for r in df.to_dict("records")}
    return VariantSums(rows, caps, cols, int(_num(info, "multi")), info["first"], info["last"])


def run_analysis(wh: Warehouse, spec: ExperimentSpec, q: AnalyzeQuery | None = None) -> ExperimentResult:
    """Analyse every metric of ``spec`` for every variant against the baseline."""
    q = q or AnalyzeQuery(experiment=spec.id)
    check_baseline(spec, q)
    return analyse_sums(spec, variant_sums(wh, spec, q.as_of), q)


def check_baseline(spec: ExperimentSpec, q: AnalyzeQuery) -> None:
    keys = [v.key for v in spec.variants]
    baseline = q.baseline or spec.control
    if baseline not in [*keys, HOLDOUT]:
        raise YunyingError("experiments.unknown_variant", variant=baseline, variants=", ".join(keys))


def analyse_sums(spec: ExperimentSpec, sums: VariantSums, q: AnalyzeQuery | None = None) -> ExperimentResult:
    """The statistics part, on sums from any source (the warehouse, or a baseline in pandas)."""
    q = q or AnalyzeQuery(experiment=spec.id)
    check_baseline(spec, q)
    method = q.method or spec.method
    correction = q.correction or spec.correction
    keys = [v.key for v in spec.variants]
    baseline = q.baseline or spec.control
    rows, caps, cols, multi = sums.rows, sums.caps, sums.cols, sums.multi
    counts = [int(_num(rows[k], "n")) if k in rows else 0 for k in keys]
    srm = srm_check(counts, [v.weight for v in spec.variants])
    holdout_users = int(_num(rows[HOLDOUT], "n")) if HOLDOUT in rows else 0
    share_total = sum(v.weight for v in spec.variants)
    variants = [
        VariantCount(variant=v.key, users=c, expected_share=v.weight / share_total)
        for v, c in zip(spec.variants, counts, strict=True)
    ]
    if holdout_users:
        variants.append(VariantCount(variant=HOLDOUT, users=holdout_users, expected_share=None))
    results: list[MetricResult] = []
    if baseline in rows:
        base_row = rows[baseline]
        for md in spec.metrics:
            # The holdout is a baseline to compare against (--baseline holdout), never a
            # variant to judge.
            for k in keys:
                if k == baseline or k not in rows:
                    continue
                results.append(
                    _compare(spec, md, cols, base_row, rows[k], baseline, k, method, caps)
                )
    if method != "bayesian":
        ps = [m.p_value if m.p_value is not None else 1.0 for m in results]
        adj = adjust_p(ps, correction)  # type: ignore[arg-type]
        for m, pa in zip(results, adj, strict=True):
            m.p_adjusted = pa
            m.significant = m.ok and pa < spec.alpha
            m.good = m.significant and ((m.abs_effect > 0) == _higher(spec, m.metric))
    return ExperimentResult(
        experiment=spec.id,
        name=spec.name or spec.id,
        method=method,
        alpha=spec.alpha,
        correction=correction if method != "bayesian" else "none",
        baseline=baseline,
        variants=variants,
        srm=SrmSummary(p_value=srm.p_value, chi2=srm.chi2, mismatch=srm.mismatch),
        multi_variant_users=multi,
        holdout_users=holdout_users,
        first_exposure=_ts(sums.first),
        last_exposure=_ts(sums.last),
        metrics=results,
        goal_lift=spec.goal_lift,
    )


def _ts(v: Any) -> datetime | None:
    if v is None:
        return None
    try:
        import pandas as pd

        if pd.isna(v):
            return None
        return pd.Timestamp(v).to_pydatetime()
    except (TypeError, ValueError):
        return None


def _higher(spec: ExperimentSpec, metric_id: str) -> bool:
    return next(m.higher_is_better for m in spec.metrics if m.id == metric_id)


def _compare(
    spec: ExperimentSpec,
    md: MetricDef,
    cols: _Columns,
    base_row: Any,
    row: Any,
    baseline: str,
    variant: str,
    method: str,
    caps: dict[str, float],
) -> MetricResult:
    a, b = _statistic(md, cols, base_row), _statistic(md, cols, row)
    used_cuped = False
    ta: Statistic = a
    tb: Statistic = b
    if spec.cuped_days and md.cuped and md.kind != "ratio":
        name = _key(md, _single_col(md, cols))
        if f"{name}__xs" in base_row:
            ia, ib = _cuped_input(name, base_row), _cuped_input(name, row)
            if ia.x_sum_squares - ia.x_sum**2 / max(ia.n, 1) > 0:
                ra, rb = adjust([ia, ib])
                if ra.theta != 0:
                    ta, tb, used_cuped = ra, rb, True
    absr = welch_test(ta, tb, "absolute", spec.alpha)
    relr = welch_test(ta, tb, "relative", spec.alpha)
    p: float | None = None
    ctw: float | None = None
    risk: float | None = None
    abs_lo, abs_hi, rel_lo, rel_hi = absr.ci_low, absr.ci_high, relr.ci_low, relr.ci_high
    ok = absr.ok
    significant = False
    good: bool | None = None
    higher = md.higher_is_better
    if method == "sequential":
        sa = sequential_test(ta, tb, "absolute", spec.alpha, spec.sequential_tuning_n)
        sr = sequential_test(ta, tb, "relative", spec.alpha, spec.sequential_tuning_n)
        abs_lo, abs_hi, rel_lo, rel_hi = sa.ci_low, sa.ci_high, sr.ci_low, sr.ci_high
        p = (sr if spec.difference == "relative" else sa).p_value
    elif method == "bayesian":
        prior = spec.bayes_prior()
        ba = bayesian_test(ta, tb, "absolute", spec.alpha, prior if spec.difference == "absolute" else None)
        br = bayesian_test(ta, tb, "relative", spec.alpha, prior if spec.difference == "relative" else None)
        main = br if spec.difference == "relative" else ba
        abs_lo, abs_hi, rel_lo, rel_hi = ba.ci_low, ba.ci_high, br.ci_low, br.ci_high
        ctw = main.chance_to_win if higher else 1 - main.chance_to_win
        risk = main.risk_variant if higher else main.risk_control
        significant = ok and (main.chance_to_win > 1 - spec.alpha / 2 or main.chance_to_win < spec.alpha / 2)
        good = significant and ctw > 0.5
    else:
        p = (relr if spec.difference == "relative" else absr).p_value
    sd = math.sqrt(a.variance) if a.variance > 0 else 0.0
    mde = mde_mean(sd, min(a.n, b.n), spec.alpha) if sd > 0 and min(a.n, b.n) > 0 else None
    cap_cols = metric_cols(md, cols)
    return MetricResult(
        metric=md.id,
        name=md.name or md.id,
        kind=md.kind,
        variant=variant,
        baseline=baseline,
        users=b.n,
        baseline_users=a.n,
        value=b.mean,
        baseline_value=a.mean,
        abs_effect=absr.point if ok else tb.mean - ta.mean,
        abs_low=abs_lo,
        abs_high=abs_hi,
        rel_effect=relr.point,
        rel_low=rel_lo,
        rel_high=rel_hi,
        p_value=p,
        p_adjusted=p,
        chance_to_win=ctw,
        risk_variant=risk,
        significant=significant,
        good=good,
        cuped=used_cuped,
        winsor_cap=caps.get(_key(md, cap_cols[0])) if md.winsorize is not None else None,
        mde_abs=mde,
        ok=ok,
    )


def exposure_days(wh: Warehouse, spec: ExperimentSpec) -> list[tuple[str, str, int]]:
    """(day, variant, new users) for the exposure chart, in UTC days."""
    e = exposures(wh, spec)
    e = e.filter(e.nv == 1)
    g = e.group_by(day=e.t0.date(), variant=e.variant).aggregate(users=e.count())
    df = wh.execute(g.order_by(["day", "variant"]))
    return [(str(r["day"]), str(r["variant"]), int(r["users"])) for r in df.to_dict("records")]

