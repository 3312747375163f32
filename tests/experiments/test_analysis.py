"""Analysis end to end on the warehouse, checked against the same numbers in pandas/scipy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from yunying.config import Settings, load_settings
from yunying.experiments.analysis import AnalyzeQuery, ExperimentResult, run_analysis
from yunying.experiments.assignment import exposure_table
from yunying.experiments.spec import ExperimentSpec
from yunying.warehouse.engine import Warehouse

from .data import T0, build, spec_dict


def _frame(wh: Warehouse, variants: dict[str, str | None]) -> pd.DataFrame:
    """Per-user post-period revenue / orders / paid flag, computed in pandas from raw rows."""
    o = wh.execute(wh.table("orders"))
    o = o[o["ts"] >= T0]
    per = o.groupby("user_id").agg(rev=("amount", lambda s: float(sum(s))), cnt=("order_id", "size"))
    users = pd.DataFrame([(u, v) for u, v in variants.items() if v], columns=["user_id", "variant"])
    df = users.merge(per, left_on="user_id", right_index=True, how="left").fillna({"rev": 0.0, "cnt": 0})
    df["paid"] = (df["cnt"] > 0).astype(float)
    return df


def test_planted_effect_matches_scipy(settings: Settings, wh: Warehouse) -> None:
    spec = ExperimentSpec.model_validate(
        spec_dict(cuped_days=0, correction="none", difference="absolute")
    )
    variants = build(wh, spec, n_users=4000, lift=0.6)
    r = run_analysis(wh, spec)
    df = _frame(wh, variants)
    a, b = df[df.variant == "control"], df[df.variant == "b"]
    assert [v.users for v in r.variants] == [len(a), len(b)]
    assert not r.srm.mismatch
    paid = next(m for m in r.metrics if m.metric == "paid")
    assert paid.value == pytest.approx(b.paid.mean()) and paid.baseline_value == pytest.approx(a.paid.mean())
    ref = stats.ttest_ind(b.paid, a.paid, equal_var=False)
    # The engine uses p(1-p)/n (population variance) as gbstats, scipy n - 1: within 1%.
    assert paid.abs_effect == pytest.approx(b.paid.mean() - a.paid.mean())
    assert paid.p_value is not None and paid.p_value == pytest.approx(ref.pvalue, rel=1e-2)
    assert paid.significant and paid.good
    rev = next(m for m in r.metrics if m.metric == "revenue")
    cap = float(np.quantile(df.rev, 0.99))
    assert rev.winsor_cap == pytest.approx(cap, rel=1e-9)
    ra, rb = a.rev.clip(upper=cap), b.rev.clip(upper=cap)
    ref_rev = stats.ttest_ind(rb, ra, equal_var=False)
    assert rev.value == pytest.approx(rb.mean()) and rev.p_value == pytest.approx(ref_rev.pvalue, rel=1e-6)
    lo, hi = ref_rev.confidence_interval(0.95)
    assert (rev.abs_low, rev.abs_high) == pytest.approx((lo, hi), rel=1e-6)
    aov = next(m for m in r.metrics if m.metric == "aov")
    assert aov.value == pytest.approx(b.rev.sum() / b.cnt.sum())  # ratio: not winsorized
    assert aov.winsor_cap is None


def test_cuped_narrows_the_interval(wh: Warehouse) -> None:
    metrics = [{"id": "orders", "kind": "mean", "measure": {"source": "orders", "agg": "count"}}]
    spec = ExperimentSpec.model_validate(spec_dict(metrics=metrics))
    build(wh, spec, n_users=4000, lift=0.1, rate=2.0)
    with_cuped = run_analysis(wh, spec)
    without = run_analysis(wh, spec.model_copy(update={"cuped_days": 0}))
    w, wo = with_cuped.metrics[0], without.metrics[0]
    assert w.cuped and not wo.cuped
    # Pre- and post-period orders share each user's habit (ρ ≈ 0.5): ~13% narrower.
    assert (w.abs_high - w.abs_low) < 0.92 * (wo.abs_high - wo.abs_low)
    assert w.value == wo.value  # the reported means stay unadjusted


def test_srm_flags_planted_skew_and_multi_variant_users(wh: Warehouse) -> None:
    spec = ExperimentSpec.model_validate(spec_dict(metrics=[{"id": "paid", "measure": {"source": "orders"}}]))
    pairs = [(f"u{i}", "control") for i in range(4900)] + [(f"v{i}", "b") for i in range(5100)]
    wh.append_arrow("events", exposure_table(spec, pairs, T0))
    # The same user seen in both variants is a logging bug: excluded and counted.
    clash = exposure_table(spec, [("u1", "b")], T0 + timedelta(hours=1))
    wh.append_arrow("events", clash.set_column(0, "event_id", [["dup-1"]]))
    r = run_analysis(wh, spec)
    assert r.multi_variant_users == 1
    assert [v.users for v in r.variants] == [4899, 5100]
    assert r.srm.p_value < 0.05
    pairs = [(f"u{i}", "control") for i in range(4900, 49_000)] + [(f"v{i}", "b") for i in range(5100, 51_000)]
    wh.append_arrow("events", exposure_table(spec, pairs, T0))
    r = run_analysis(wh, spec)
    assert r.srm.mismatch and r.srm.p_value < 0.001


def test_bayesian_and_sequential_methods(wh: Warehouse) -> None:
    spec = ExperimentSpec.model_validate(spec_dict(cuped_days=0))
    build(wh, spec, n_users=3000, lift=0.8)
    freq = run_analysis(wh, spec)
    seq = run_analysis(wh, spec, AnalyzeQuery(experiment=spec.id, method="sequential"))
    bay = run_analysis(wh, spec, AnalyzeQuery(experiment=spec.id, method="bayesian"))
    f = next(m for m in freq.metrics if m.metric == "paid")
    s = next(m for m in seq.metrics if m.metric == "paid")
    b = next(m for m in bay.metrics if m.metric == "paid")
    assert s.abs_high - s.abs_low > f.abs_high - f.abs_low  # always-valid costs width
    assert s.p_value is not None and f.p_value is not None and s.p_value >= f.p_value
    assert b.chance_to_win is not None and b.chance_to_win > 0.95 and b.p_value is None
    assert b.risk_variant is not None and b.risk_variant < b.abs_effect


def test_indicator_metric_equals_measure(wh: Warehouse) -> None:
    spec = ExperimentSpec.model_validate(
        spec_dict(
            cuped_days=7,
            metrics=[
                {"id": "rev", "kind": "mean", "measure": {"source": "orders", "agg": "sum"}},
                {"id": "gmv", "kind": "mean", "indicator": "gmv"},
                {"id": "paid", "kind": "proportion", "measure": {"source": "orders"}},
                {"id": "buyers", "kind": "proportion", "indicator": "buyers"},
            ],
        )
    )
    build(wh, spec, n_users=1500)
    r = {(m.metric): m for m in run_analysis(wh, spec).metrics}
    assert r["gmv"].value == pytest.approx(r["rev"].value)
    assert r["gmv"].abs_low == pytest.approx(r["rev"].abs_low)
    assert r["buyers"].value == pytest.approx(r["paid"].value)
    assert r["buyers"].p_value == pytest.approx(r["paid"].p_value)


def test_same_result_on_every_engine(any_wh: Warehouse, tmp_path: Path) -> None:
    """The Ibis runner gives DuckDB's numbers on Spark (winsorizing aside: Spark's cap is
    an approximate quantile)."""
    metrics = [m for m in spec_dict()["metrics"] if m["id"] in ("paid", "aov")]  # type: ignore[attr-defined,index]
    spec = ExperimentSpec.model_validate(spec_dict(metrics=metrics))
    build(any_wh, spec, n_users=300)
    any_wh.refresh()
    got = run_analysis(any_wh, spec)
    with Warehouse(load_settings(tmp_path / "ref"), "duckdb") as ref_wh:
        build(ref_wh, spec, n_users=300)
        ref = run_analysis(ref_wh, spec)

    def key(r: ExperimentResult) -> list[tuple[object, ...]]:
        return [(m.metric, m.users, round(m.value, 9), round(m.abs_low, 9), m.cuped) for m in r.metrics]

    assert [v.users for v in got.variants] == [v.users for v in ref.variants]
    assert key(got) == key(ref) and len(got.metrics) == 2 and got.metrics[0].cuped
