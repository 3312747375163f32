"""The benchmark's generator on a small size: simulated customers give back their parameters.

This keeps ``benchmarks/_value_section.py`` working and checks the whole path (orders ->
warehouse -> per-customer summary -> both fits) recovers known truth, not only CDNOW.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from yunying.analytics.clv import ClvQuery, fit_clv
from yunying.config import load_settings
from yunying.warehouse.engine import Warehouse

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "_value_section.py"


def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("_value_section", BENCH)
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    sys.modules["_value_section"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_generated_orders_recover_true_parameters(tmp_path: Path) -> None:
    vs = bench()
    orders = vs.generate(40_000, seed=3)
    assert orders.num_rows > 40_000 and orders.schema.field("amount").type.scale == 2
    s = load_settings(tmp_path, timezone="UTC")
    with Warehouse(s, "duckdb") as wh:
        wh.append_arrow("orders", orders)
        fit = fit_clv(wh, ClvQuery(calibration_end=vs.CAL_END, period="week"))
    assert len(fit.customers) == 40_000
    bg, gg, true = fit.bgnbd, fit.gamma_gamma, vs.TRUE
    # 40k customers: the estimates land within ~15 % of the truth (same-day orders merge,
    # which the simulation does not know about, costs a little).
    assert bg.r == pytest.approx(true["r"], rel=0.15)
    assert bg.alpha == pytest.approx(true["alpha"], rel=0.15)
    assert bg.a == pytest.approx(true["a"], rel=0.15)
    assert bg.b == pytest.approx(true["b"], rel=0.2)
    assert gg.p == pytest.approx(true["p"], rel=0.15)
    assert gg.q == pytest.approx(true["q"], rel=0.15)
    assert gg.v == pytest.approx(true["v"], rel=0.15)


def test_bench_steps_agree_with_their_baselines(tmp_path: Path) -> None:
    """The timed steps on a small size: RFM classes equal the pandas recipe's, the summary
    equals lifetimes', and each step reports a positive time."""
    import pandas as pd
    import pyarrow.parquet as pq

    vs = bench()
    orders = vs.generate(3_000, seed=5)
    pq.write_table(orders, tmp_path / "orders.parquet")
    project = tmp_path / "project"
    project.mkdir()
    with vs._wh(str(project)) as wh:
        wh.append_arrow("orders", orders)
    (yy, t_yy), (pd_, t_pd) = vs.yy_rfm(str(project)), vs.pd_rfm(str(tmp_path / "orders.parquet"))
    assert yy == pd_ and sum(yy.values()) == 3_000 and t_yy > 0 and t_pd > 0
    ys, ls = tmp_path / "ys.parquet", tmp_path / "ls.parquet"
    assert vs.yy_summary(str(project), str(ys))[0] == vs.lt_summary(str(tmp_path / "orders.parquet"), str(ls))[0]
    y = pd.read_parquet(ys).set_index("user_id").sort_index()
    lt = pd.read_parquet(ls).sort_index()
    assert list(y.index) == list(lt.index.astype(str))
    for a, b in (("frequency", "frequency"), ("recency", "recency"), ("T", "T"), ("monetary", "monetary_value")):
        assert y[a].to_numpy() == pytest.approx(lt[b].to_numpy(), abs=1e-9)
