"""Indicator-system metrics as experiment metrics (``indicator: gmv`` in a definition).

A ``simple`` metric of the metrics library (table, where-filter, count or sum, or a
distinct count of user ids) has a natural per-user value: the same aggregate restricted
to one user. That value is computed after each user's exposure (and before it, for
CUPED), with the metrics module's own filter compiler, so the definition (统计口径) is
the one the indicator system shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir

from yunying.errors import YunyingError
from yunying.experiments.spec import MetricDef
from yunying.warehouse.engine import Warehouse


@dataclass
class IndicatorColumn:
    """One per-user column ``i_<id>`` computed from an indicator metric's definition."""

    spec: Any  # yunying.metrics.spec.MetricSpec
    reducer: str  # "any" | "sum"

    def join_to(
        self,
        wh: Warehouse,
        out: ir.Table,
        name: str,
        pre_days: int,
        end: datetime | None,
        spec_end: datetime | None,
    ) -> ir.Table:
        from yunying.metrics.compute import Source, where_expr

        m = self.spec
        src = Source(wh, m.table, [])
        cond = where_expr(src, m.where)
        tbl = src.t
        if m.agg == "sum":
            v = src.col(m.column).cast("float64").fill_null(0.0)
        else:
            v = ibis.literal(1.0)
        val = ibis.ifelse(cond, v, 0.0) if cond is not None else v
        tbl = tbl.select(_iu=tbl.user_id, _its=tbl.ts, _iv=val)
        x = out.select(_xu="user_id", _xt0="t0")
        j = tbl.inner_join(x, tbl._iu == x._xu)
        lo = j._xt0 - ibis.interval(days=pre_days) if pre_days else j._xt0
        c = j._its >= lo
        if end is not None:
            c = c & (j._its < end)
        if spec_end is not None:
            c = c & (j._its < spec_end)
        j = j.filter(c)
        post = j._its >= j._xt0
        aggs: dict[str, ir.Value] = {}
        if self.reducer == "any":
            aggs[name] = j._iv.max(where=post)
            if pre_days:
                aggs[f"{name}_pre"] = j._iv.max(where=~post)
        else:
            aggs[name] = j._iv.sum(where=post)
            if pre_days:
                aggs[f"{name}_pre"] = j._iv.sum(where=~post)
        g = j.group_by(j._iu).aggregate(**aggs)
        return out.left_join(g, out.user_id == g._iu).drop("_iu")


def indicator_measures(wh: Warehouse, defs: list[MetricDef]) -> dict[str, IndicatorColumn]:
    """Resolve ``indicator:`` names in the project's metric registry."""
    try:
        from yunying.metrics.spec import load_registry
    except ImportError as e:  # the metrics package is a colleague's
        raise YunyingError("experiments.indicators_missing") from e
    reg = load_registry(wh.settings)
    out: dict[str, IndicatorColumn] = {}
    for md in defs:
        assert md.indicator is not None
        m = reg.metrics.get(md.indicator)
        if m is None:
            raise YunyingError("experiments.indicator_unknown", name=md.indicator)
        if m.type != "simple" or m.table not in ("events", "orders"):
            raise YunyingError("experiments.indicator_unsupported", name=m.name, type=m.type)
        if m.agg == "count":
            red = "sum"
        elif m.agg == "sum" and m.column:
            red = "sum"
        elif m.agg == "count_distinct" and m.column == "user_id":
            red = "any"
        else:
            raise YunyingError(
                "experiments.indicator_unsupported", name=m.name, type=f"{m.type}/{m.agg}"
            )
        if md.kind == "proportion" and red != "any":
            raise YunyingError(
                "experiments.indicator_unsupported", name=m.name, type=f"{m.type}/{m.agg}"
            )
        out[f"i_{md.id}"] = IndicatorColumn(m, red)
    return out
