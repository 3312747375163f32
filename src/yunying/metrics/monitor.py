"""Targets, pacing, anomaly detection and alert rules (``yunying metrics check`` for cron).

Anomalies use a seasonal baseline that survives weekly patterns and past outliers: each
day is compared with the median of the same weekday over the last N weeks, scaled by the
median absolute deviation (MAD) of those days, with a floor so a flat history does not
make every wobble an alert.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import statistics
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.i18n import get_language, t
from yunying.metrics.compute import compute, compute_totals, format_value
from yunying.metrics.spec import Registry, line_of, load_yaml
from yunying.metrics.tree import Period, parse_period
from yunying.warehouse.engine import Warehouse

# -- documents ---------------------------------------------------------------------------


class Target(BaseModel):
    model_config = ConfigDict(extra="forbid")
    metric: str
    period: str  # 2026-11 | 2026-11-05 | 2026-11-01..2026-11-30
    value: float
    note: str = ""


class AlertRule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    metric: str
    kind: Literal["anomaly", "threshold", "target"] = "anomaly"
    direction: Literal["up", "down", "both"] = "both"
    lookback_weeks: int = Field(default=4, ge=2, le=26)
    threshold: float = 3.5  # robust z-score for anomalies
    days: int = Field(default=1, ge=1, le=90)  # most recent days checked
    op: Literal["<", "<=", ">", ">="] | None = None
    value: float | None = None
    grain: Literal["day", "week", "month"] = "day"
    by: str | None = None


class AlertsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    webhook: str | None = None
    alerts: list[AlertRule] = Field(default_factory=list)


class TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    targets: list[Target] = Field(default_factory=list)


def _folder(settings: Settings, sub: str) -> Path:
    return settings.resolve(settings.metrics.folder) / sub


def _load_docs(folder: Path, model: type[BaseModel]) -> list[tuple[Any, str]]:
    out: list[tuple[Any, str]] = []
    if not folder.exists():
        return out
    for p in sorted(folder.glob("*.y*ml")):
        doc = load_yaml(p.read_text(encoding="utf-8"), str(p))
        if doc is None:
            continue
        try:
            out.append((model.model_validate(doc), str(p)))
        except ValidationError as e:
            err = e.errors()[0]
            raise YunyingError(
                "metrics.invalid_spec", file=str(p), line=line_of(doc, err["loc"]),
                field=".".join(str(x) for x in err["loc"]), reason=err["msg"],
            ) from e
    return out


def load_targets(settings: Settings, registry: Registry) -> list[Target]:
    out: list[Target] = []
    for doc, file in _load_docs(_folder(settings, "targets"), TargetsFile):
        for tg in doc.targets:
            if tg.metric not in registry.metrics:
                raise YunyingError("metrics.unknown_metric", name=tg.metric, where=f" ({file})")
            parse_period(tg.period)
            out.append(tg)
    return out


def load_alerts(settings: Settings, registry: Registry) -> tuple[list[AlertRule], str | None]:
    rules: list[AlertRule] = []
    webhook: str | None = None
    for doc, file in _load_docs(_folder(settings, "alerts"), AlertsFile):
        webhook = doc.webhook or webhook
        for r in doc.alerts:
            if r.metric not in registry.metrics:
                raise YunyingError("metrics.unknown_metric", name=r.metric, where=f" ({file})")
            if r.kind == "threshold" and (r.op is None or r.value is None):
                raise YunyingError("metrics.threshold_needs", name=r.name, where=file)
            rules.append(r)
    return rules, webhook


# -- targets ---------------------------------------------------------------------------


class TargetStatus(BaseModel):
    metric: str
    label: str
    format: str
    period: Period
    target: float
    actual: float | None
    gap: float | None
    attainment: float | None  # actual / target
    elapsed_days: int
    total_days: int
    forecast: float | None
    forecast_gap: float | None
    on_track: bool | None


class TargetReport(BaseModel):
    as_of: dt.date
    rows: list[TargetStatus]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [t("metrics.col.name"), t("metrics.col.period"), t("metrics.col.target"), t("metrics.col.actual"),
                   t("metrics.col.gap"), t("metrics.col.attainment"), t("metrics.col.forecast"), t("metrics.col.on_track")]
        rows = [
            [r.label, r.period.label(), format_value(r.target, r.format), format_value(r.actual, r.format),
             format_value(r.gap, r.format), "" if r.attainment is None else f"{r.attainment * 100:.1f}%",
             format_value(r.forecast, r.format),
             "" if r.on_track is None else (t("metrics.yes") if r.on_track else t("metrics.no"))]
            for r in self.rows
        ]
        return headers, rows


def _additive(reg: Registry, name: str) -> bool:
    m = reg.get(name)
    return m.type == "simple" and m.agg in ("count", "sum") and m.per is None


def target_status(wh: Warehouse, registry: Registry, target: Target, as_of: dt.date) -> TargetStatus:
    """Plan vs actual to ``as_of``; additive metrics are paced to the period end by weekday."""
    p = parse_period(target.period)
    m = registry.get(target.metric)
    total_days = (p.end - p.start).days + 1
    upto = min(as_of, p.end)
    elapsed = max(0, (upto - p.start).days + 1)
    actual: float | None = None
    if elapsed > 0:
        v = compute_totals(wh, registry, [m.name], p.start, upto)[m.name][None]
        actual = None if v is None else float(v)
    forecast = actual
    if _additive(registry, m.name) and upto < p.end:
        # Remaining days at the mean of the same weekday over the last four weeks.
        hist_end = as_of
        hist = compute(wh, registry, [m.name], "day", hist_end - dt.timedelta(days=27), hist_end).get(m.name)
        by_wd: dict[int, list[float]] = {}
        for pt in hist.points:
            by_wd.setdefault(pt.period.weekday(), []).append(pt.value or 0.0)
        rest = 0.0
        d = max(p.start, as_of + dt.timedelta(days=1))
        while d <= p.end:
            vals = by_wd.get(d.weekday(), [0.0])
            rest += sum(vals) / len(vals)
            d += dt.timedelta(days=1)
        forecast = (actual or 0.0) + rest
    gap = None if actual is None else actual - target.value
    fgap = None if forecast is None else forecast - target.value
    on_track = None
    if fgap is not None:
        on_track = fgap >= 0 if m.direction == "higher" else fgap <= 0
    return TargetStatus(
        metric=m.name, label=m.label_for(get_language()), format=m.format, period=p, target=target.value,
        actual=actual, gap=gap, attainment=(actual / target.value if actual is not None and target.value else None),
        elapsed_days=elapsed, total_days=total_days, forecast=forecast, forecast_gap=fgap, on_track=on_track,
    )


def plan_vs_actual(
    wh: Warehouse, registry: Registry, targets: list[Target], as_of: dt.date, metrics: list[str] | None = None
) -> TargetReport:
    rows = []
    for tg in targets:
        if metrics and tg.metric not in metrics:
            continue
        p = parse_period(tg.period)
        if p.start > as_of:
            continue
        rows.append(target_status(wh, registry, tg, as_of))
    return TargetReport(as_of=as_of, rows=rows)


# -- anomalies -------------------------------------------------------------------------


class AnomalyPoint(BaseModel):
    day: dt.date
    dim: str | None = None
    value: float | None
    baseline: float | None
    score: float | None
    anomaly: bool


def detect(
    series: list[tuple[dt.date, float | None]],
    start: dt.date,
    lookback_weeks: int = 4,
    threshold: float = 3.5,
    direction: str = "both",
    min_rel: float = 0.05,
) -> list[AnomalyPoint]:
    """Robust z-score of each day from ``start`` against the same weekday of prior weeks."""
    vals = dict(series)
    out = []
    for day, v in sorted(series):
        if day < start:
            continue
        hist = [vals.get(day - dt.timedelta(weeks=k)) for k in range(1, lookback_weeks + 1)]
        h = [float(x) for x in hist if x is not None and not math.isnan(x)]
        if v is None or len(h) < 2:
            out.append(AnomalyPoint(day=day, value=v, baseline=None, score=None, anomaly=False))
            continue
        med = statistics.median(h)
        mad = statistics.median([abs(x - med) for x in h])
        scale = max(1.4826 * mad, min_rel * abs(med), 1e-9)
        score = (v - med) / scale
        hit = (score > threshold and direction in ("up", "both")) or (
            score < -threshold and direction in ("down", "both")
        )
        out.append(AnomalyPoint(day=day, value=v, baseline=med, score=score, anomaly=hit))
    return out


def anomalies(
    wh: Warehouse, registry: Registry, name: str, start: dt.date, end: dt.date, by: str | None = None,
    lookback_weeks: int = 4, threshold: float = 3.5, direction: str = "both",
) -> list[AnomalyPoint]:
    hist_start = start - dt.timedelta(weeks=lookback_weeks)
    s = compute(wh, registry, [name], "day", hist_start, end, by).get(name)
    groups: dict[str | None, list[tuple[dt.date, float | None]]] = {}
    for p in s.points:
        groups.setdefault(p.dim, []).append((p.period, p.value))
    out = []
    for dim, series in sorted(groups.items(), key=lambda kv: kv[0] or ""):
        for a in detect(series, start, lookback_weeks, threshold, direction):
            a.dim = dim
            out.append(a)
    return out


# -- alerts ----------------------------------------------------------------------------


class AlertEvent(BaseModel):
    rule: str
    metric: str
    kind: str
    day: dt.date
    dim: str | None = None
    value: float | None
    expected: float | None = None
    score: float | None = None
    message: str


class AlertReport(BaseModel):
    as_of: dt.date
    evaluated: int
    fired: list[AlertEvent]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [t("metrics.col.rule"), t("metrics.col.name"), t("metrics.col.period"), t("metrics.col.message")]
        return headers, [[e.rule, e.metric, e.day.isoformat() + (f" {e.dim}" if e.dim else ""), e.message] for e in self.fired]


_OPS = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}


def check_alerts(
    wh: Warehouse, registry: Registry, rules: list[AlertRule], as_of: dt.date, targets: list[Target] | None = None
) -> AlertReport:
    """Evaluate every rule on data up to ``as_of`` (inclusive); returns what fired."""
    fired: list[AlertEvent] = []
    lang = get_language()
    for r in rules:
        m = registry.get(r.metric)
        label = m.label_for(lang)
        if r.kind == "anomaly":
            start = as_of - dt.timedelta(days=r.days - 1)
            for a in anomalies(wh, registry, r.metric, start, as_of, r.by, r.lookback_weeks, r.threshold, r.direction):
                if a.anomaly:
                    fired.append(AlertEvent(
                        rule=r.name, metric=r.metric, kind=r.kind, day=a.day, dim=a.dim, value=a.value,
                        expected=a.baseline, score=a.score,
                        message=t("metrics.alert.anomaly", metric=label, value=format_value(a.value, m.format),
                                  expected=format_value(a.baseline, m.format), score=f"{a.score:+.1f}"),
                    ))
        elif r.kind == "threshold":
            assert r.op is not None and r.value is not None
            start = as_of - dt.timedelta(days=r.days - 1)
            s = compute(wh, registry, [r.metric], r.grain, start, as_of, r.by).get(r.metric)
            for p in s.points:
                if p.value is not None and _OPS[r.op](p.value, r.value):
                    fired.append(AlertEvent(
                        rule=r.name, metric=r.metric, kind=r.kind, day=p.period, dim=p.dim, value=p.value,
                        expected=r.value,
                        message=t("metrics.alert.threshold", metric=label, value=format_value(p.value, m.format),
                                  op=r.op, limit=format_value(r.value, m.format)),
                    ))
        else:
            for tg in targets or []:
                if tg.metric != r.metric:
                    continue
                per = parse_period(tg.period)
                if not (per.start <= as_of <= per.end):
                    continue
                st = target_status(wh, registry, tg, as_of)
                if st.on_track is False:
                    fired.append(AlertEvent(
                        rule=r.name, metric=r.metric, kind=r.kind, day=as_of, value=st.forecast, expected=tg.value,
                        message=t("metrics.alert.target", metric=label, forecast=format_value(st.forecast, m.format),
                                  target=format_value(tg.value, m.format), period=per.label()),
                    ))
    return AlertReport(as_of=as_of, evaluated=len(rules), fired=fired)


def send_webhook(url: str, report: AlertReport, timeout: float = 10.0) -> int:
    """POST the report as JSON; returns the HTTP status."""
    if not url.startswith(("http://", "https://")):
        raise YunyingError("metrics.webhook_failed", url=url, reason="http(s) only")
    body = json.dumps({"source": "yunying", **report.model_dump(mode="json")}, ensure_ascii=False).encode()
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked above
            return int(resp.status)
    except (urllib.error.URLError, OSError) as e:
        raise YunyingError("metrics.webhook_failed", url=url, reason=str(e)) from e
