"""Vintage curves (账龄分析) for the credit library: bad rate by disbursement cohort and age.

A loan turns bad when one of its installments is not repaid ``dpd`` days after it fell
due. For each monthly cohort of ``loan_disburse`` events, the curve gives the share of
the cohort's loans that turned bad within k months on book (MOB, 30-day months) — a
cumulative rate, shown only where the whole MOB has been observed. Events and properties
are the ones documented for the credit library.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel

from yunying import clock
from yunying.errors import YunyingError
from yunying.i18n import t
from yunying.metrics.compute import Source, json_prop, local_ts, utc_bound
from yunying.warehouse.engine import Warehouse


class VintageRow(BaseModel):
    cohort: dt.date
    loans: int
    rates: list[float | None]  # index k-1 → bad share by MOB k


class VintageResult(BaseModel):
    dpd: int
    mobs: int
    as_of: dt.date
    rows: list[VintageRow]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        headers = [t("metrics.col.cohort"), t("metrics.col.loans")] + [f"MOB{k}" for k in range(1, self.mobs + 1)]
        rows = [
            [r.cohort.isoformat()[:7], r.loans] + ["" if v is None else f"{v * 100:.2f}%" for v in r.rates]
            for r in self.rows
        ]
        return headers, rows


def _key(wh: Warehouse, tbl: ir.Table, with_installment: bool) -> ir.StringValue:
    loan = json_prop(wh, tbl.properties, "loan_id")
    if not with_installment:
        return loan
    return loan.concat("|", json_prop(wh, tbl.properties, "installment"))


def vintage(
    wh: Warehouse, start: dt.date, end: dt.date, mobs: int = 6, dpd: int = 30, as_of: dt.date | None = None
) -> VintageResult:
    """Cohorts of loans disbursed between ``start`` and ``end`` (local dates, inclusive)."""
    if end < start or mobs < 1 or dpd < 0:
        raise YunyingError("metrics.bad_range", start=start.isoformat(), end=end.isoformat())
    as_of = as_of or clock.today(wh.settings.timezone)
    tz = wh.settings.timezone
    lo, hi = utc_bound(start, tz), utc_bound(end + dt.timedelta(days=1), tz)
    wh.refresh()
    ev = Source(wh, "events", []).t
    d = ev.filter((ev.event == "loan_disburse") & (ev.ts >= ibis.literal(lo)) & (ev.ts < ibis.literal(hi)))
    d = d.mutate(_loan=_key(wh, d, False), _cohort=local_ts(d.ts, tz, lo, hi).truncate("M").date())
    d = d.group_by(["_loan", "_cohort"]).aggregate(_t0=d.ts.min())
    due = ev.filter(ev.event == "repayment_due")
    due = due.mutate(_k=_key(wh, due, True), _dl=_key(wh, due, False)).select("_k", "_dl", _due="ts")
    rep = ev.filter(ev.event == "repayment")
    rep = rep.mutate(_rk=_key(wh, rep, True)).select("_rk", _rt="ts")
    late = ibis.interval(days=dpd)
    bad = due.anti_join(
        rep,
        [due._k == rep._rk, rep._rt > due._due - ibis.interval(days=366), rep._rt <= due._due + late],
    )
    bad = bad.group_by("_dl").aggregate(_bad=(bad._due + late).min())
    j = d.left_join(bad, d._loan == bad._dl)
    df = wh.execute(j.select("_loan", "_cohort", "_t0", "_bad"))
    rows: list[VintageRow] = []
    if len(df):
        import pandas as pd

        df["_cohort"] = pd.to_datetime(df["_cohort"]).dt.date
        for cohort, g in sorted(df.groupby("_cohort"), key=lambda kv: kv[0]):
            n = len(g)
            age = (pd.to_datetime(g["_bad"]) - pd.to_datetime(g["_t0"])).dt.total_seconds() / 86400
            mob_bad = [math.ceil(a / 30) if not pd.isna(a) else None for a in age]
            last = (cohort.replace(day=28) + dt.timedelta(days=4)).replace(day=1) - dt.timedelta(days=1)
            rates: list[float | None] = []
            for k in range(1, mobs + 1):
                if last + dt.timedelta(days=30 * k) > as_of:
                    rates.append(None)
                else:
                    rates.append(sum(1 for m in mob_bad if m is not None and m <= k) / n)
            rows.append(VintageRow(cohort=cohort, loans=n, rates=rates))
    return VintageResult(dpd=dpd, mobs=mobs, as_of=as_of, rows=rows)
