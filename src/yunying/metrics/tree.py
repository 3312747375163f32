"""Metric trees: explain a change (drivers, dimension values), what-if, goal-seek, scenarios.

A parent is additive (Σ children) or multiplicative (Π children). Attribution always sums
exactly to the observed change: additive deltas are exact; multiplicative trees use LMDI-I
(logarithmic mean Divisia), or Shapley values when a factor is zero or negative; any gap
between the parent and its children's sum/product is shown as its own "residual" line.
"""

from __future__ import annotations

import calendar
import datetime as dt
import itertools
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, Field, ValidationError

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.i18n import get_language, t
from yunying.metrics.compute import compute_totals, format_value
from yunying.metrics.spec import MetricSpec, Registry, eval_formula, load_yaml, parse_formula
from yunying.warehouse.engine import Warehouse

RESIDUAL = "_residual"


class Period(BaseModel):
    start: dt.date
    end: dt.date

    def label(self) -> str:
        return self.start.isoformat() if self.start == self.end else f"{self.start}..{self.end}"


def parse_period(text: str) -> Period:
    """``2026-10`` (a month), ``2026-10-05`` (a day) or ``2026-10-01..2026-10-31``."""
    s = text.strip()
    try:
        if ".." in s:
            a, b = s.split("..", 1)
            p = Period(start=dt.date.fromisoformat(a.strip()), end=dt.date.fromisoformat(b.strip()))
        elif re.fullmatch(r"\d{4}-\d{2}", s):
            y, m = int(s[:4]), int(s[5:])
            p = Period(start=dt.date(y, m, 1), end=dt.date(y, m, calendar.monthrange(y, m)[1]))
        else:
            d = dt.date.fromisoformat(s)
            p = Period(start=d, end=d)
    except ValueError as e:
        raise YunyingError("metrics.bad_period", value=text) from e
    if p.end < p.start:
        raise YunyingError("metrics.bad_period", value=text)
    return p


def _clean(v: float | None) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else float(v)


# -- attribution maths -----------------------------------------------------------------


def _lnratio(b: float, a: float) -> float:
    """ln(b / a); log1p when b ≈ a avoids the cancellation, log(b / a) otherwise."""
    r = (b - a) / a
    return math.log1p(r) if abs(r) < 0.5 else math.log(b / a)


def logmean(a: float, b: float) -> float:
    if a == b:
        return a
    return (a - b) / _lnratio(a, b)


def lmdi(xa: list[float], xb: list[float]) -> list[float]:
    """LMDI-I contributions of each factor to Π xb − Π xa (all factors > 0): they sum exactly."""
    ya, yb = math.prod(xa), math.prod(xb)
    w = logmean(yb, ya)
    return [w * _lnratio(b, a) for a, b in zip(xa, xb, strict=True)]


def shapley(f: Callable[[list[float]], float], xa: list[float], xb: list[float]) -> list[float]:
    """Shapley contributions of switching each input from a to b; they sum to f(b) − f(a)."""
    n = len(xa)
    out = [0.0] * n
    perms = list(itertools.permutations(range(n)))
    for perm in perms:
        cur = list(xa)
        prev = f(cur)
        for i in perm:
            cur[i] = xb[i]
            now = f(cur)
            out[i] += now - prev
            prev = now
    return [v / len(perms) for v in out]


def rate_mix(
    na: dict[str, float], da: dict[str, float], nb: dict[str, float], db: dict[str, float]
) -> dict[str, tuple[float, float]]:
    """Split a ratio's change into per-segment rate and mix effects (they sum exactly).

    R = Σ w_d r_d with w_d = den_d / Σ den and r_d = num_d / den_d. Symmetric split:
    rate_d = Δr_d · (w_a + w_b)/2, mix_d = Δw_d · (r_a + r_b)/2.
    """
    ta, tb = sum(da.values()), sum(db.values())
    out: dict[str, tuple[float, float]] = {}
    for k in sorted(set(da) | set(db)):
        wa = da.get(k, 0.0) / ta if ta else 0.0
        wb = db.get(k, 0.0) / tb if tb else 0.0
        ra = na.get(k, 0.0) / da[k] if da.get(k) else None
        rb = nb.get(k, 0.0) / db[k] if db.get(k) else None
        if ra is None and rb is None:
            continue
        ra = rb if ra is None else ra
        rb = ra if rb is None else rb
        assert ra is not None and rb is not None
        out[k] = ((rb - ra) * (wa + wb) / 2, (wb - wa) * (ra + rb) / 2)
    return out


# -- explain ---------------------------------------------------------------------------


class Contribution(BaseModel):
    name: str
    label: str
    value_a: float | None = None
    value_b: float | None = None
    contribution: float
    share: float | None = None  # of the total change
    rate_effect: float | None = None
    mix_effect: float | None = None


class ExplainResult(BaseModel):
    metric: str
    label: str
    format: str
    period_a: Period
    period_b: Period
    value_a: float | None
    value_b: float | None
    change: float | None
    change_pct: float | None
    method: str | None
    drivers: list[Contribution]
    by: str | None = None
    dimensions: list[Contribution] = Field(default_factory=list)

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [
            t("metrics.col.section"), t("metrics.col.name"), t("metrics.col.value_a"),
            t("metrics.col.value_b"), t("metrics.col.contribution"), t("metrics.col.share"),
            t("metrics.col.rate_effect"), t("metrics.col.mix_effect"),
        ]
        pct = lambda v: "" if v is None else f"{v * 100:.1f}%"  # noqa: E731
        num = lambda v: "" if v is None else f"{v:,.4g}"  # noqa: E731
        rows: list[list[Any]] = [[
            t("metrics.explain.total"), self.label, num(self.value_a), num(self.value_b),
            num(self.change), pct(1.0 if self.change else None), "", "",
        ]]
        for c in self.drivers:
            rows.append([t("metrics.explain.driver"), c.label, num(c.value_a), num(c.value_b),
                         num(c.contribution), pct(c.share), "", ""])
        for c in self.dimensions:
            rows.append([self.by or "", c.label, num(c.value_a), num(c.value_b), num(c.contribution),
                         pct(c.share), num(c.rate_effect), num(c.mix_effect)])
        return headers, rows


def _label(reg: Registry, name: str, lang: str) -> str:
    if name == RESIDUAL:
        return t("metrics.explain.residual")
    return reg.get(name).label_for(lang)


def _totals(wh: Warehouse, reg: Registry, names: list[str], p: Period, by: str | None = None) -> dict[str, dict[str | None, float | None]]:
    return compute_totals(wh, reg, names, p.start, p.end, by)


def explain(
    wh: Warehouse, registry: Registry, name: str, period_a: Period, period_b: Period, by: str | None = None
) -> ExplainResult:
    """Attribute the change of ``name`` from period A to period B to its drivers and ``by`` values."""
    lang = get_language()
    m = registry.get(name)
    children = m.tree.children if m.tree else []
    va = _totals(wh, registry, [name, *children], period_a)
    vb = _totals(wh, registry, [name, *children], period_b)
    ya, yb = _clean(va[name][None]), _clean(vb[name][None])
    change = None if ya is None or yb is None else yb - ya
    drivers: list[Contribution] = []
    method: str | None = None
    if m.tree and change is not None:
        xa = [_clean(va[c][None]) for c in children]
        xb = [_clean(vb[c][None]) for c in children]
        if any(v is None for v in xa + xb):
            raise YunyingError("metrics.explain_missing", name=name)
        fa = [float(v) for v in xa if v is not None]
        fb = [float(v) for v in xb if v is not None]
        if m.tree.kind == "additive":
            method = "additive"
            contrib = [b - a for a, b in zip(fa, fb, strict=True)]
            model_change = sum(fb) - sum(fa)
        else:
            model_change = math.prod(fb) - math.prod(fa)
            if all(v > 0 for v in fa + fb):
                method = "lmdi"
                contrib = lmdi(fa, fb)
            else:
                method = "shapley"
                contrib = shapley(math.prod, fa, fb)
        for c, a, b, k in zip(children, fa, fb, contrib, strict=True):
            drivers.append(Contribution(name=c, label=_label(registry, c, lang), value_a=a, value_b=b, contribution=k))
        resid = change - sum(contrib)
        if abs(resid) > 1e-9 * max(1.0, abs(ya or 0.0), abs(yb or 0.0), abs(model_change)):
            drivers.append(Contribution(name=RESIDUAL, label=_label(registry, RESIDUAL, lang), contribution=resid))
        else:
            # Float noise only: give it to the largest driver so the parts sum exactly.
            big = max(range(len(drivers)), key=lambda i: abs(drivers[i].contribution))
            drivers[big].contribution += resid
    dims: list[Contribution] = []
    if by and change is not None:
        dims = _explain_dims(wh, registry, m, period_a, period_b, by, change, lang)
    for part in drivers + dims:
        part.share = part.contribution / change if change else None
    return ExplainResult(
        metric=name, label=m.label_for(lang), format=m.format, period_a=period_a, period_b=period_b,
        value_a=ya, value_b=yb, change=change, change_pct=(change / ya if change is not None and ya else None),
        method=method, drivers=drivers, by=by, dimensions=dims,
    )


def _explain_dims(
    wh: Warehouse, reg: Registry, m: MetricSpec, pa: Period, pb: Period, by: str, change: float, lang: str
) -> list[Contribution]:
    out: list[Contribution] = []
    if m.type == "ratio":
        assert m.numerator and m.denominator
        names = [m.numerator, m.denominator, m.name]
        a, b = _totals(wh, reg, names, pa, by), _totals(wh, reg, names, pb, by)

        def vals(d: dict[str | None, float | None]) -> dict[str, float]:
            return {str(k): float(v) for k, v in d.items() if v is not None and not math.isnan(v)}

        eff = rate_mix(vals(a[m.numerator]), vals(a[m.denominator]), vals(b[m.numerator]), vals(b[m.denominator]))
        for k, (rate, mix) in eff.items():
            out.append(Contribution(
                name=k, label=k, value_a=_clean(a[m.name].get(k)), value_b=_clean(b[m.name].get(k)),
                contribution=rate + mix, rate_effect=rate, mix_effect=mix,
            ))
    else:
        a, b = _totals(wh, reg, [m.name], pa, by), _totals(wh, reg, [m.name], pb, by)
        for k in sorted({str(x) for x in a[m.name]} | {str(x) for x in b[m.name]}):
            va = _clean(a[m.name].get(k)) or 0.0
            vb = _clean(b[m.name].get(k)) or 0.0
            out.append(Contribution(name=k, label=k, value_a=va, value_b=vb, contribution=vb - va))
    resid = change - sum(c.contribution for c in out)
    if abs(resid) > 1e-9 * max(1.0, abs(change)):
        # Distinct counts overlap across values; a ratio of ratios is not a weighted mean.
        out.append(Contribution(name=RESIDUAL, label=t("metrics.explain.overlap"), contribution=resid))
    elif out:
        big = max(range(len(out)), key=lambda i: abs(out[i].contribution))
        out[big].contribution += resid
    out.sort(key=lambda c: -abs(c.contribution))
    return out


# -- what-if ---------------------------------------------------------------------------


def model_inputs(reg: Registry, name: str, seen: frozenset[str] = frozenset()) -> list[str]:
    """Direct inputs of a node in the what-if model: tree children, else a derived formula's."""
    m = reg.get(name)
    if name in seen:
        return []
    if m.tree:
        return list(m.tree.children)
    if m.type == "derived":
        return m.deps()
    return []


def model_nodes(reg: Registry, name: str) -> list[str]:
    out: list[str] = []

    def visit(n: str, seen: frozenset[str]) -> None:
        if n in out:
            return
        out.append(n)
        for c in model_inputs(reg, n, seen):
            visit(c, seen | {n})

    visit(name, frozenset())
    return out


def leaves(reg: Registry, name: str) -> list[str]:
    return [n for n in model_nodes(reg, name) if not model_inputs(reg, n) and n != name]


class Model:
    """The tree as arithmetic: baseline values from the warehouse, then any overrides."""

    def __init__(self, reg: Registry, target: str, base: dict[str, float]) -> None:
        self.reg, self.target, self.base = reg, target, base
        self.nodes = model_nodes(reg, target)
        # Keep the baseline exact: a parent differs from its children's sum/product by a
        # residual (additive) or factor (multiplicative) that stays fixed in scenarios.
        self.adjust: dict[str, float] = {}
        for n in self.nodes:
            ins = model_inputs(reg, n)
            if not ins:
                continue
            raw = self._combine(n, {c: base[c] for c in ins})
            m = reg.get(n)
            if m.tree and m.tree.kind == "multiplicative":
                self.adjust[n] = base[n] / raw if raw else 1.0
            else:
                self.adjust[n] = base[n] - raw

    def _combine(self, n: str, vals: dict[str, float]) -> float:
        m = self.reg.get(n)
        if m.tree:
            xs = [vals[c] for c in m.tree.children]
            return math.prod(xs) if m.tree.kind == "multiplicative" else sum(xs)
        assert m.formula
        v = eval_formula(parse_formula(m.formula), vals, lambda a, b: float("nan") if b == 0 else a / b)
        return float(v)

    def evaluate(self, overrides: dict[str, float]) -> dict[str, float]:
        memo: dict[str, float] = {}

        def ev(n: str, seen: frozenset[str]) -> float:
            if n in overrides:
                return overrides[n]
            if n in memo:
                return memo[n]
            ins = model_inputs(self.reg, n, seen)
            if not ins:
                v = self.base[n]
            else:
                raw = self._combine(n, {c: ev(c, seen | {n}) for c in ins})
                m = self.reg.get(n)
                mult = m.tree is not None and m.tree.kind == "multiplicative"
                v = raw * self.adjust[n] if mult else raw + self.adjust[n]
            memo[n] = v
            return v

        ev(self.target, frozenset())
        return {n: memo.get(n, overrides.get(n, self.base.get(n, float("nan")))) for n in self.nodes}


def resolve_driver(model: Model, name: str, key: str) -> str:
    """A driver by exact name or unique prefix (``conversion`` → ``conversion_rate``)."""
    drivers = [n for n in model.nodes if n != name]
    if key in drivers:
        return key
    hits = [n for n in drivers if n.startswith(key)]
    if len(hits) == 1:
        return hits[0]
    raise YunyingError("metrics.not_a_driver", driver=key, name=name, drivers=", ".join(drivers) or "-")


def parse_change(text: str) -> tuple[str, str]:
    if "=" not in text:
        raise YunyingError("metrics.bad_change", value=text)
    name, val = text.split("=", 1)
    return name.strip(), val.strip()


def apply_change(base: float, spec: str, name: str = "") -> float:
    """``+5%``/``-2%`` relative, ``+10``/``-3`` a delta, ``0.04`` an absolute value.

    NaN and infinity are refused, and so is a change that takes a value that is not
    negative (a count, an amount, a rate) below zero: -100% is the floor.
    """
    s = spec.strip().replace(" ", "")
    try:
        number = float(s[:-1] if s.endswith("%") else s)
    except ValueError as e:
        raise YunyingError("metrics.bad_change", value=spec) from e
    if not math.isfinite(number):
        raise YunyingError("metrics.bad_change", value=spec)
    if s.endswith("%"):
        out = base * (1 + number / 100)
    elif s[:1] in "+-":
        out = base + number
    else:
        out = number
    if not math.isfinite(out):
        raise YunyingError("metrics.bad_change", value=spec)
    if base >= 0 and out < 0:
        raise YunyingError("metrics.change_negative", value=spec, name=name or "-", result=f"{out:,.6g}")
    return out


class NodeValue(BaseModel):
    name: str
    label: str
    format: str
    base: float | None
    scenario: float | None
    change_pct: float | None
    changed: bool = False


class WhatIfResult(BaseModel):
    metric: str
    period: Period
    changes: dict[str, str]
    base: float | None
    scenario: float | None
    change: float | None
    change_pct: float | None
    nodes: list[NodeValue]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [t("metrics.col.name"), t("metrics.col.base"), t("metrics.col.scenario"), t("metrics.col.change_pct")]
        rows = []
        for n in self.nodes:
            mark = " *" if n.changed else ""
            rows.append([n.label + mark, format_value(n.base, n.format), format_value(n.scenario, n.format),
                         "" if n.change_pct is None else f"{n.change_pct * 100:+.2f}%"])
        return headers, rows


def build_model(wh: Warehouse, registry: Registry, name: str, period: Period) -> Model:
    nodes = model_nodes(registry, name)
    vals = _totals(wh, registry, nodes, period)
    base: dict[str, float] = {}
    for n in nodes:
        v = _clean(vals[n][None])
        if v is None:
            raise YunyingError("metrics.explain_missing", name=n)
        base[n] = v
    return Model(registry, name, base)


def _pct(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or a == 0 or math.isnan(a) or math.isnan(b):
        return None
    return b / a - 1


def whatif(
    wh: Warehouse, registry: Registry, name: str, period: Period, changes: dict[str, str], model: Model | None = None
) -> WhatIfResult:
    """Apply ``changes`` (driver → "+5%", "-2%", "+100", "0.04") and propagate up the tree."""
    model = model or build_model(wh, registry, name, period)
    over: dict[str, float] = {}
    resolved: dict[str, str] = {}
    for key, spec in changes.items():
        k = resolve_driver(model, name, key)
        resolved[k] = spec
        over[k] = apply_change(model.base[k], spec, k)
    scen = model.evaluate(over)
    base = model.evaluate({})
    lang = get_language()
    nodes = [
        NodeValue(name=n, label=registry.get(n).label_for(lang), format=registry.get(n).format,
                  base=base[n], scenario=scen[n], change_pct=_pct(base[n], scen[n]), changed=n in over)
        for n in model.nodes
    ]
    b, s = base[name], scen[name]
    return WhatIfResult(metric=name, period=period, changes=resolved, base=b, scenario=s,
                        change=s - b, change_pct=_pct(b, s), nodes=nodes)


class GoalSeekResult(BaseModel):
    metric: str
    driver: str
    period: Period
    target_base: float
    target_goal: float
    driver_base: float
    driver_required: float
    driver_change_pct: float | None
    achieved: float

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return (
            [t("metrics.col.name"), t("metrics.col.base"), t("metrics.col.scenario"), t("metrics.col.change_pct")],
            [
                [self.metric, f"{self.target_base:,.4g}", f"{self.target_goal:,.4g}", f"{(_pct(self.target_base, self.target_goal) or 0) * 100:+.2f}%"],
                [self.driver, f"{self.driver_base:,.6g}", f"{self.driver_required:,.6g}",
                 "" if self.driver_change_pct is None else f"{self.driver_change_pct * 100:+.2f}%"],
            ],
        )


def goal_seek(
    wh: Warehouse, registry: Registry, name: str, period: Period, goal: str, driver: str, model: Model | None = None
) -> GoalSeekResult:
    """Find the driver value that takes ``name`` to ``goal`` ("+10%", "+5000" or a value)."""
    model = model or build_model(wh, registry, name, period)
    driver = resolve_driver(model, name, driver)
    y0 = model.evaluate({})[name]
    target = apply_change(y0, goal, name)
    x0 = model.base[driver]

    def f(x: float) -> float:
        return model.evaluate({driver: x})[name] - target

    x = _solve(f, x0)
    if x is not None and (not math.isfinite(x) or (x0 >= 0 and x < 0)):
        x = None  # a count, amount or rate cannot go below zero
    if x is None:
        raise YunyingError("metrics.goal_unreachable", name=name, driver=driver, goal=goal)
    return GoalSeekResult(
        metric=name, driver=driver, period=period, target_base=y0, target_goal=target, driver_base=x0,
        driver_required=x, driver_change_pct=_pct(x0, x), achieved=model.evaluate({driver: x})[name],
    )


def _solve(f: Callable[[float], float], x0: float) -> float | None:
    """Secant steps, then bracketing bisection: trees are monotone in each driver."""
    a = x0
    b = x0 * 1.01 if x0 else 1.0
    fa, fb = f(a), f(b)
    for _ in range(60):
        if fb == 0:
            return b
        if fb == fa or math.isnan(fa) or math.isnan(fb):
            break
        c = b - fb * (b - a) / (fb - fa)
        a, fa = b, fb
        b, fb = c, f(c)
        if abs(fb) <= 1e-10 * max(1.0, abs(b)) or abs(b - a) <= 1e-13 * max(1.0, abs(b)):
            return b
    lo, hi = -abs(x0) * 1e3 - 1e3, abs(x0) * 1e3 + 1e3
    flo, fhi = f(lo), f(hi)
    if math.isnan(flo) or math.isnan(fhi) or flo * fhi > 0:
        return None
    for _ in range(200):
        mid = (lo + hi) / 2
        fm = f(mid)
        if fm == 0 or hi - lo < 1e-12 * max(1.0, abs(mid)):
            return mid
        if (fm > 0) == (fhi > 0):
            hi, fhi = mid, fm
        else:
            lo, flo = mid, fm
    return (lo + hi) / 2


class SensitivityRow(BaseModel):
    driver: str
    label: str
    base: float
    elasticity: float | None  # % change of the metric for +1% of the driver
    values: dict[str, float]  # step ("-10%") → metric value


class SensitivityResult(BaseModel):
    metric: str
    period: Period
    base: float
    steps: list[str]
    rows: list[SensitivityRow]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [t("metrics.col.name"), t("metrics.col.base"), t("metrics.col.elasticity"), *self.steps]
        rows = [
            [r.label, f"{r.base:,.4g}", "" if r.elasticity is None else f"{r.elasticity:.3f}",
             *[f"{r.values[s]:,.4g}" for s in self.steps]]
            for r in self.rows
        ]
        return headers, rows


def sensitivity(
    wh: Warehouse, registry: Registry, name: str, period: Period, steps: tuple[float, ...] = (-10, -5, 5, 10)
) -> SensitivityResult:
    model = build_model(wh, registry, name, period)
    y0 = model.evaluate({})[name]
    labels = [f"{s:+g}%" for s in steps]
    lang = get_language()
    rows = []
    for d in leaves(registry, name):
        x0 = model.base[d]
        vals = {lab: model.evaluate({d: x0 * (1 + s / 100)})[name] for lab, s in zip(labels, steps, strict=True)}
        up = model.evaluate({d: x0 * 1.01})[name]
        el = ((up / y0 - 1) / 0.01) if y0 else None
        rows.append(SensitivityRow(driver=d, label=registry.get(d).label_for(lang), base=x0, elasticity=el, values=vals))
    rows.sort(key=lambda r: -abs(r.elasticity or 0.0))
    return SensitivityResult(metric=name, period=period, base=y0, steps=labels, rows=rows)


# -- scenarios -------------------------------------------------------------------------


class Scenario(BaseModel):
    name: str = Field(pattern=r"^[A-Za-z0-9_\-]+$")
    metric: str
    period: str
    changes: dict[str, str]
    description: str = ""


def scenarios_dir(settings: Settings) -> Path:
    return settings.resolve(settings.metrics.folder) / "scenarios"


def save_scenario(settings: Settings, sc: Scenario) -> Path:
    path = scenarios_dir(settings) / f"{sc.name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(sc.model_dump(), allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def load_scenario(settings: Settings, name: str) -> Scenario:
    path = scenarios_dir(settings) / f"{name}.yaml"
    if not path.exists():
        raise YunyingError("metrics.unknown_scenario", name=name, folder=str(path.parent))
    doc = load_yaml(path.read_text(encoding="utf-8"), str(path))
    try:
        return Scenario.model_validate(doc)
    except ValidationError as e:
        err = e.errors()[0]
        raise YunyingError("metrics.invalid_spec", file=str(path), line=getattr(doc, "line", 1),
                           field=".".join(str(x) for x in err["loc"]), reason=err["msg"]) from e


class ScenarioComparison(BaseModel):
    metric: str
    rows: list[WhatIfResult]
    names: list[str]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [t("metrics.col.scenario"), t("metrics.col.changes"), t("metrics.col.base"),
                   t("metrics.col.scenario_value"), t("metrics.col.change_pct")]
        rows = [
            [n, ", ".join(f"{k}={v}" for k, v in r.changes.items()), f"{r.base:,.4g}" if r.base is not None else "",
             f"{r.scenario:,.4g}" if r.scenario is not None else "",
             "" if r.change_pct is None else f"{r.change_pct * 100:+.2f}%"]
            for n, r in zip(self.names, self.rows, strict=True)
        ]
        return headers, rows


def compare_scenarios(wh: Warehouse, registry: Registry, settings: Settings, names: list[str]) -> ScenarioComparison:
    scs = [load_scenario(settings, n) for n in names]
    metrics = {s.metric for s in scs}
    if len(metrics) != 1:
        raise YunyingError("metrics.scenarios_differ", metrics=", ".join(sorted(metrics)))
    rows = [whatif(wh, registry, s.metric, parse_period(s.period), s.changes) for s in scs]
    return ScenarioComparison(metric=scs[0].metric, rows=rows, names=names)
