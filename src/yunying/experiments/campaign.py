"""Campaign evaluation: a campaign's holdout analysed by the experiment engine, plus cost.

Everything is read from the warehouse event log, the join the design promises: engage
writes ``campaign_assigned`` (properties campaign_id, group = treatment | holdout) and,
through its outbox, one event per ledger movement with campaign_id, tool_id, kind and
amount. The effect is treatment vs holdout on paid orders after assignment; cost is the
money the ledger paid out for the campaign's tools, net of rollbacks.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import ibis
import ibis.expr.types as ir
from pydantic import BaseModel

from yunying.analytics.common import engine_of, prop_text
from yunying.errors import YunyingError
from yunying.experiments.stats.frequentist import welch_test
from yunying.experiments.stats.models import Proportion, SampleMean
from yunying.i18n import t
from yunying.warehouse.engine import Warehouse

ASSIGN_EVENT = "campaign_assigned"
# Money paid out per redemption event (trial credit's principal is virtual: its cost is
# the yield paid, so its coupon_redeemed rows are not counted).
COST_EVENTS = (
    "coupon_redeemed",
    "cashback_credited",
    "flash_sale_purchased",
    "privileged_offer_taken",
    "lottery_draw",
    "yield_paid",
)
# A rollback gives the money back (cashback_reversed duplicates it, so it is not counted).
REVERSAL_EVENTS = ("coupon_rolled_back",)
VIRTUAL_KINDS = ("trial_credit",)


class CampaignMeta(BaseModel):
    """What the campaign definition says (from engage when available)."""

    id: str
    name: str
    goal_metric: str = ""
    goal_target: float | None = None
    budget: float | None = None
    currency: str = "CNY"
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    holdout_share: float | None = None
    tools: list[str] = []
    segment: str = ""


class GroupStats(BaseModel):
    group: str
    users: int
    payers: int
    conversion: float
    revenue: float
    revenue_per_user: float


class Effect(BaseModel):
    abs_effect: float
    abs_low: float
    abs_high: float
    rel_effect: float
    p_value: float
    significant: bool
    ok: bool


class ToolCost(BaseModel):
    tool_id: str
    kind: str
    cost: float
    entries: int
    users: int


class SegmentEffect(BaseModel):
    segment: str
    treated: int
    holdout: int
    conversion_t: float
    conversion_h: float
    lift: Effect


class CampaignEval(BaseModel):
    meta: CampaignMeta
    alpha: float
    groups: list[GroupStats]
    conversion: Effect | None
    revenue: Effect | None
    incremental_payers: float | None
    incremental_payers_low: float | None
    incremental_payers_high: float | None
    incremental_revenue: float | None
    cost: float
    cpa: float | None
    roi: float | None
    budget_used: float | None
    tools: list[ToolCost]
    segments: list[SegmentEffect]
    burn: list[tuple[str, float]]
    segment_by: str

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        rows: list[list[Any]] = [
            [t("reports.camp.treated"), self._users("treatment")],
            [t("reports.camp.holdout_users"), self._users("holdout")],
        ]
        if self.conversion is not None:
            c = self.conversion
            rows.append([t("reports.camp.effect"), f"{c.abs_effect * 100:+.2f} pp [{c.abs_low * 100:+.2f}, {c.abs_high * 100:+.2f}] p={c.p_value:.3g}"])
        rows += [
            [t("reports.camp.extra_payers"), _r(self.incremental_payers)],
            [t("reports.camp.incr_revenue"), _r(self.incremental_revenue)],
            [t("reports.camp.cost"), round(self.cost, 2)],
            [t("reports.camp.cpa_label"), _r(self.cpa)],
            [t("reports.camp.roi"), _r(self.roi)],
        ]
        return ["key", "value"], rows

    def _users(self, group: str) -> int:
        return next((g.users for g in self.groups if g.group == group), 0)


def _r(v: float | None) -> float | None:
    return None if v is None else round(v, 2)


def _effect(a: Any, b: Any, alpha: float) -> Effect:
    ab = welch_test(a, b, "absolute", alpha)
    rel = welch_test(a, b, "relative", alpha)
    return Effect(
        abs_effect=ab.point if ab.ok else b.mean - a.mean,
        abs_low=ab.ci_low,
        abs_high=ab.ci_high,
        rel_effect=rel.point,
        p_value=ab.p_value,
        significant=ab.ok and ab.p_value < alpha,
        ok=ab.ok,
    )


def campaign_meta(settings: Any, wh: Warehouse, campaign_id: str) -> CampaignMeta:
    """The definition from engage's app database, or what the events alone can tell."""
    try:
        from yunying.engage.campaigns import get_campaign

        c = get_campaign(settings, campaign_id)
        return CampaignMeta(
            id=c.id, name=c.name, goal_metric=c.goal_metric,
            goal_target=float(c.goal_target) if c.goal_target is not None else None,
            budget=float(c.budget), currency=c.currency, starts_at=c.starts_at,
            ends_at=c.ends_at, holdout_share=c.holdout_share, tools=list(c.tools),
            segment=c.segment,
        )
    except Exception:  # no app database, no engage tables, or no campaign row: events only
        return CampaignMeta(id=campaign_id, name=campaign_id, currency=wh.settings.currency)


def assignments(wh: Warehouse, campaign_id: str) -> ir.Table:
    """user_id, grp, t0 (first assignment) of one campaign."""
    engine = engine_of(wh)
    e = wh.table("events")
    e = e.filter(e.event == ASSIGN_EVENT)
    e = e.mutate(_c=prop_text(engine, e, "campaign_id"), _g=prop_text(engine, e, "group"))
    e = e.filter(e._c == campaign_id)
    return e.group_by("user_id").aggregate(grp=e._g.min(), t0=e.ts.min())


def _segment_col(wh: Warehouse, by: str) -> tuple[ir.Table, str]:
    users = wh.table("users")
    if by in ("channel",):
        col = users[by]
    else:
        try:
            col = prop_text(engine_of(wh), users, by)
        except ValueError:
            raise YunyingError("reports.bad_segment_by", name=by) from None
    return users.select(_su=users.user_id, _seg=col.fill_null("(none)")), by


def run_campaign_eval(
    settings: Any,
    wh: Warehouse,
    campaign_id: str,
    end: datetime | None = None,
    alpha: float = 0.05,
    segment_by: str = "channel",
) -> CampaignEval:
    """Treatment vs holdout on paid orders after assignment; cost, CPA, ROI, burn."""
    engine = engine_of(wh)
    meta = campaign_meta(settings, wh, campaign_id)
    a = assignments(wh, campaign_id)
    n_assigned = int(wh.execute(a.count()))
    if n_assigned == 0:
        raise YunyingError("reports.campaign_unknown", id=campaign_id, event=ASSIGN_EVENT)
    stop = end or meta.ends_at
    o = wh.table("orders")
    o = o.filter(o.status == "paid").select(_ou=o.user_id, _ots=o.ts, _amt=o.amount.cast("float64"))
    j = o.inner_join(a, o._ou == a.user_id)
    cond = j._ots >= j.t0
    if stop is not None:
        cond = cond & (j._ots < stop)
    per = j.filter(cond).group_by(_pu=j._ou).aggregate(rev=j._amt.sum(), n_orders=j._amt.count())
    u = a.left_join(per, a.user_id == per._pu)
    segs, by = _segment_col(wh, segment_by)
    u = u.left_join(segs, u.user_id == segs._su)
    u = u.mutate(
        rev=u.rev.fill_null(0.0),
        paid=ibis.ifelse(u.n_orders.fill_null(0) > 0, 1.0, 0.0),
        seg=u._seg.fill_null("(none)"),
    )
    stats_expr = dict(
        n=u.count(), payers=u.paid.sum(), rev_s=u.rev.sum(), rev_ss=(u.rev * u.rev).sum()
    )
    g = wh.execute(u.group_by("grp").aggregate(**stats_expr))
    by_group = {str(r["grp"]): r for r in g.to_dict("records")}
    groups: list[GroupStats] = []
    for name in ("treatment", "holdout"):
        r = by_group.get(name)
        if r is None:
            continue
        n = int(r["n"])
        payers = int(r["payers"] or 0)
        rev = float(r["rev_s"] or 0.0)
        groups.append(GroupStats(group=name, users=n, payers=payers, conversion=payers / n if n else 0.0, revenue=rev, revenue_per_user=rev / n if n else 0.0))
    conv = rev_eff = None
    inc_p = inc_lo = inc_hi = inc_rev = None
    tr, ho = by_group.get("treatment"), by_group.get("holdout")
    if tr is not None and ho is not None:
        pa_, pb = Proportion(int(ho["n"]), float(ho["payers"] or 0)), Proportion(int(tr["n"]), float(tr["payers"] or 0))
        conv = _effect(pa_, pb, alpha)
        ra = SampleMean(int(ho["n"]), float(ho["rev_s"] or 0), float(ho["rev_ss"] or 0))
        rb = SampleMean(int(tr["n"]), float(tr["rev_s"] or 0), float(tr["rev_ss"] or 0))
        rev_eff = _effect(ra, rb, alpha)
        nt = int(tr["n"])
        inc_p, inc_lo, inc_hi = conv.abs_effect * nt, conv.abs_low * nt, conv.abs_high * nt
        inc_rev = rev_eff.abs_effect * nt
    # Segments.
    sg = wh.execute(u.group_by(["seg", "grp"]).aggregate(n=u.count(), payers=u.paid.sum()))
    seg_rows: dict[str, dict[str, Any]] = {}
    for r in sg.to_dict("records"):
        seg_rows.setdefault(str(r["seg"]), {})[str(r["grp"])] = r
    segments: list[SegmentEffect] = []
    for seg in sorted(seg_rows):
        d = seg_rows[seg]
        if "treatment" in d and "holdout" in d:
            h, tt = d["holdout"], d["treatment"]
            ph = Proportion(int(h["n"]), float(h["payers"] or 0))
            pt = Proportion(int(tt["n"]), float(tt["payers"] or 0))
            segments.append(SegmentEffect(segment=seg, treated=pt.n, holdout=ph.n, conversion_t=pt.mean, conversion_h=ph.mean, lift=_effect(ph, pt, alpha)))
    # Cost from the ledger's events.
    e = wh.table("events")
    e = e.filter(e.event.isin([*COST_EVENTS, *REVERSAL_EVENTS]))
    e = e.mutate(
        _c=prop_text(engine, e, "campaign_id"), _tool=prop_text(engine, e, "tool_id").fill_null("(none)"),
        _kind=prop_text(engine, e, "kind").fill_null("(none)"),
        _amt=prop_text(engine, e, "amount").try_cast("float64").fill_null(0.0),
    )
    e = e.filter(
        (e._c == campaign_id) & (~e._kind.isin(list(VIRTUAL_KINDS)) | (e.event == "yield_paid"))
    )
    e = e.mutate(_cost=ibis.ifelse(e.event.isin(list(REVERSAL_EVENTS)), -e._amt, e._amt), _day=e.ts.date())
    tc = wh.execute(e.group_by(["_tool", "_kind"]).aggregate(cost=e._cost.sum(), entries=e.count(), users=e.user_id.nunique()))
    tools = sorted(
        (ToolCost(tool_id=str(r["_tool"]), kind=str(r["_kind"]), cost=round(float(r["cost"] or 0), 2), entries=int(r["entries"]), users=int(r["users"])) for r in tc.to_dict("records")),
        key=lambda x: -x.cost,
    )
    cost = round(sum(x.cost for x in tools), 2)
    daily = wh.execute(e.group_by("_day").aggregate(cost=e._cost.sum()).order_by("_day"))
    burn: list[tuple[str, float]] = []
    acc = 0.0
    for r in daily.to_dict("records"):
        acc += float(r["cost"] or 0)
        burn.append((str(r["_day"])[:10], round(acc, 2)))
    cpa = cost / inc_p if inc_p is not None and inc_p > 0 and cost > 0 else None
    roi = (inc_rev - cost) / cost if inc_rev is not None and cost > 0 else None
    used = cost / meta.budget if meta.budget else None
    return CampaignEval(
        meta=meta, alpha=alpha, groups=groups, conversion=conv, revenue=rev_eff,
        incremental_payers=inc_p, incremental_payers_low=inc_lo, incremental_payers_high=inc_hi,
        incremental_revenue=inc_rev, cost=cost, cpa=cpa, roi=roi, budget_used=used,
        tools=tools, segments=segments, burn=burn, segment_by=by,
    )

