"""The power calculator (样本量计算) as a typed query and result: the CLI's
``yunying experiment power`` options and the HTTP API's body are the same ``PowerQuery``."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from yunying.errors import YunyingError
from yunying.i18n import t


class PowerQuery(BaseModel):
    """Users needed to detect an absolute change ``mde`` of a rate (``baseline``) or of a
    per-user mean (standard deviation ``sd``)."""

    model_config = ConfigDict(extra="forbid")

    mde: float = Field(description="Absolute change to detect (0.01 = 1 pp).")
    baseline: float | None = Field(default=None, description="Baseline conversion rate.")
    sd: float | None = Field(default=None, description="Std dev of a per-user metric.")
    alpha: float = 0.05
    power: float = 0.8
    variants: int = Field(default=2, le=100)


class PowerResult(BaseModel):
    per_variant: int
    total: int
    mde_abs: float
    alpha: float
    power: float

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return (
            ["key", "value"],
            [
                [t("experiments.power.per_variant"), self.per_variant],
                [t("experiments.power.total"), self.total],
                [t("experiments.power.mde"), self.mde_abs],
            ],
        )


def power(q: PowerQuery, source: str = "--options") -> PowerResult:
    from yunying.experiments.stats.power import sample_size_mean, sample_size_proportion

    if not q.mde > 0 or not 0 < q.alpha < 1 or not 0 < q.power < 1 or q.variants < 2:
        raise YunyingError("experiments.invalid", path=source, field="mde/alpha/power", reason="out of range")
    if q.baseline is not None:
        if not 0 < q.baseline < 1 or not 0 < q.baseline + q.mde < 1:
            raise YunyingError("experiments.invalid", path=source, field="baseline", reason="must be in (0, 1)")
        n = sample_size_proportion(q.baseline, q.mde, q.alpha, q.power, q.variants)
    elif q.sd is not None and q.sd > 0:
        n = sample_size_mean(q.sd, q.mde, q.alpha, q.power, q.variants)
    else:
        raise YunyingError("experiments.invalid", path=source, field="baseline/sd", reason="give --baseline or --sd")
    return PowerResult(per_variant=n.per_variant, total=n.total, mde_abs=q.mde, alpha=q.alpha, power=q.power)
