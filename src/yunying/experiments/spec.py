"""Experiment definitions: YAML files in the project's ``experiments/`` folder.

Definitions are data: a file is reviewed in git like code, and the same model is what
the CLI and the API read. The first variant is the control.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.experiments.stats.bayesian import Prior
from yunying.experiments.stats.correction import Correction

FOLDER = "experiments"
EXPOSURE_EVENT = "$exposure"
HOLDOUT = "holdout"
SLUG = r"^[A-Za-z0-9][A-Za-z0-9_\-]{0,63}$"
PROPERTY = r"^[A-Za-z_][A-Za-z0-9_\-]{0,63}$"


class Variant(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(pattern=SLUG)
    weight: float = Field(default=1.0, gt=0)
    name: str = ""


class Measure(BaseModel):
    """Per-user value from the warehouse after exposure.

    ``events`` + ``event``: ``any`` (did it, 0/1), ``count`` (how often) or ``sum`` of a
    numeric property ``value``; ``orders``: paid orders, ``any``/``count``/``sum`` of amount.
    """

    model_config = ConfigDict(extra="forbid")
    source: Literal["events", "orders"] = "events"
    event: str | None = Field(default=None, min_length=1, max_length=256)
    agg: Literal["any", "count", "sum"] = "any"
    value: str | None = Field(default=None, pattern=PROPERTY)
    status: str = "paid"

    @model_validator(mode="after")
    def _check(self) -> Measure:
        if self.source == "events" and not self.event:
            raise ValueError("an events measure needs 'event'")
        if self.source == "events" and self.agg == "sum" and not self.value:
            raise ValueError("a sum over events needs 'value' (a numeric property)")
        return self


class MetricDef(BaseModel):
    """An experiment metric: proportion, mean per user, or ratio of two per-user sums."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=SLUG)
    name: str = ""
    kind: Literal["proportion", "mean", "ratio"] = "proportion"
    measure: Measure | None = None
    numerator: Measure | None = None
    denominator: Measure | None = None
    # Indicator-system metric (``metrics/`` library) of type simple/sum/count, used per user.
    indicator: str | None = None
    # Cap per-user values at this quantile of all exposed users (e.g. 0.99).
    winsorize: float | None = Field(default=None, gt=0.5, lt=1.0)
    # Whether a higher value is better (a refund rate is not).
    higher_is_better: bool = True
    cuped: bool = True

    @model_validator(mode="after")
    def _check(self) -> MetricDef:
        if self.kind == "ratio":
            if self.numerator is None or self.denominator is None:
                raise ValueError(f"ratio metric '{self.id}' needs numerator and denominator")
        elif self.measure is None and self.indicator is None:
            raise ValueError(f"metric '{self.id}' needs 'measure' or 'indicator'")
        if self.kind == "proportion" and self.measure is not None and self.measure.agg != "any":
            raise ValueError(f"proportion metric '{self.id}' needs agg: any")
        return self


class Targeting(BaseModel):
    """Who may enter: a segment (colleagues' segments) and/or a list or CSV of user ids."""

    model_config = ConfigDict(extra="forbid")
    segment: str | None = None
    users: list[str] | None = None
    users_file: str | None = None


class ExperimentSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=SLUG)
    name: str = ""
    hypothesis: str = ""
    salt: str = ""
    variants: list[Variant] = Field(min_length=2)
    # Mutual exclusion: experiments in one layer take disjoint slices [from, to) of it.
    layer: str | None = None
    layer_range: tuple[float, float] = (0.0, 1.0)
    coverage: float = Field(default=1.0, gt=0, le=1)
    holdout: float = Field(default=0.0, ge=0, lt=1)
    targeting: Targeting | None = None
    start: datetime | None = None
    end: datetime | None = None
    metrics: list[MetricDef] = Field(min_length=1)
    method: Literal["frequentist", "bayesian", "sequential"] = "frequentist"
    difference: Literal["relative", "absolute"] = "relative"
    alpha: float = Field(default=0.05, gt=0, lt=0.5)
    correction: Correction = "holm"
    # Days before exposure used as the CUPED covariate; 0 switches CUPED off.
    cuped_days: int = Field(default=14, ge=0, le=365)
    sequential_tuning_n: float = Field(default=5000, gt=0)
    prior: dict[str, float] | None = None
    # Goal of the primary (first) metric, as an absolute change, for "goal vs actual".
    goal_lift: float | None = None
    owner: str = ""

    @model_validator(mode="after")
    def _check(self) -> ExperimentSpec:
        keys = [v.key for v in self.variants]
        if len(set(keys)) != len(keys):
            raise ValueError("variant keys must be unique")
        if HOLDOUT in keys:
            raise ValueError(f"'{HOLDOUT}' is reserved for the holdout group")
        lo, hi = self.layer_range
        if not 0 <= lo < hi <= 1:
            raise ValueError("layer_range must satisfy 0 <= from < to <= 1")
        ids = [m.id for m in self.metrics]
        if len(set(ids)) != len(ids):
            raise ValueError("metric ids must be unique")
        if self.start and self.end and self.start >= self.end:
            raise ValueError("start must be before end")
        return self

    @property
    def hash_salt(self) -> str:
        return self.salt or self.id

    @property
    def control(self) -> str:
        return self.variants[0].key

    def bayes_prior(self) -> Prior:
        if not self.prior:
            return Prior()
        return Prior(
            mean=float(self.prior.get("mean", 0.0)), sd=float(self.prior.get("sd", 0.3)), proper=True
        )


def folder(settings: Settings) -> Path:
    return settings.project_dir / FOLDER


def parse(text: str, source: str) -> ExperimentSpec:
    try:
        data: Any = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise YunyingError("experiments.bad_yaml", path=source, reason=str(e)) from e
    if not isinstance(data, dict):
        raise YunyingError("experiments.bad_yaml", path=source, reason="not a mapping")
    try:
        return ExperimentSpec.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise YunyingError(
            "experiments.invalid",
            path=source,
            field=".".join(str(x) for x in first["loc"]) or "-",
            reason=first["msg"],
        ) from e


def to_yaml(spec: ExperimentSpec) -> str:
    data = spec.model_dump(mode="json", exclude_defaults=True)
    data["id"] = spec.id
    data["variants"] = [v.model_dump(exclude_defaults=True) | {"key": v.key} for v in spec.variants]
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False)


def load_all(settings: Settings) -> list[ExperimentSpec]:
    root = folder(settings)
    if not root.exists():
        return []
    specs = [parse(p.read_text(encoding="utf-8"), str(p)) for p in sorted(root.glob("*.y*ml"))]
    check_layers(specs)
    return specs


def load(settings: Settings, experiment_id: str) -> ExperimentSpec:
    for s in load_all(settings):
        if s.id == experiment_id:
            return s
    raise YunyingError("experiments.not_found", id=experiment_id, folder=str(folder(settings)))


def check_layers(specs: list[ExperimentSpec]) -> None:
    """Experiments sharing a layer must not overlap, or they would not be exclusive."""
    by_layer: dict[str, list[ExperimentSpec]] = {}
    for s in specs:
        if s.layer:
            by_layer.setdefault(s.layer, []).append(s)
    for layer, group in by_layer.items():
        group.sort(key=lambda s: s.layer_range[0])
        for a, b in zip(group, group[1:], strict=False):
            if b.layer_range[0] < a.layer_range[1]:
                raise YunyingError("experiments.layer_overlap", layer=layer, a=a.id, b=b.id)


def save(settings: Settings, spec: ExperimentSpec, overwrite: bool = False) -> Path:
    root = folder(settings)
    path = root / f"{spec.id}.yaml"
    if path.exists() and not overwrite:
        raise YunyingError("experiments.exists", id=spec.id, path=str(path))
    others = [s for s in load_all(settings) if s.id != spec.id]
    check_layers([*others, spec])
    root.mkdir(parents=True, exist_ok=True)
    path.write_text(to_yaml(spec), encoding="utf-8")
    return path
