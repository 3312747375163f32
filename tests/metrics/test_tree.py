"""Trees: attribution sums exactly to the change; what-if and goal-seek round-trip."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.metrics import data
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.metrics import (
    Scenario,
    compare_scenarios,
    explain,
    goal_seek,
    parse_period,
    save_scenario,
    sensitivity,
    whatif,
)
from yunying.metrics.spec import Registry, registry_from_texts
from yunying.metrics.tree import lmdi, logmean, rate_mix, shapley
from yunying.warehouse.engine import Warehouse

EXTRA = """\
metrics:
  - name: views_ios
    label: {zh: iOS 浏览, en: iOS views}
    type: simple
    table: events
    agg: count
    where: {event: view, properties.platform: ios}
  - name: views_android
    label: {zh: 安卓浏览, en: Android views}
    type: simple
    table: events
    agg: count
    where: {event: view, properties.platform: android}
  - name: all_views
    label: {zh: 浏览, en: Views}
    type: simple
    table: events
    agg: count
    where: {event: view}
    tree: {kind: additive, children: [views_ios, views_android]}
  - name: gmv_organic
    label: {zh: 自然 GMV, en: Organic GMV}
    type: simple
    table: orders
    agg: sum
    column: amount
    where: {status: [paid, refunded], channel: organic}
  - name: gmv_sem
    label: {zh: SEM GMV, en: SEM GMV}
    type: simple
    table: orders
    agg: sum
    column: amount
    where: {status: [paid, refunded], user.channel: sem}
  - name: gmv_by_channel
    label: {zh: 渠道 GMV, en: GMV by channel}
    type: derived
    formula: gmv_organic + gmv_sem
    tree: {kind: additive, children: [gmv_organic, gmv_sem]}
"""

OCT1, OCT2, OCT = parse_period("2026-10-01"), parse_period("2026-10-02"), parse_period("2026-10-01..2026-10-07")


@pytest.fixture
def reg() -> Registry:
    return registry_from_texts({"metrics/extra.yaml": EXTRA}, ["ecommerce"])


def test_additive_tree_attribution_is_exact(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    ex = explain(wh, reg, "all_views", OCT1, OCT2)
    assert (ex.value_a, ex.value_b, ex.change, ex.method) == (4, 3, -1, "additive")
    assert {d.name: d.contribution for d in ex.drivers} == {"views_ios": -2, "views_android": 1}
    assert sum(d.share or 0 for d in ex.drivers) == pytest.approx(1.0)


def test_additive_tree_over_channels_filtered_through_users(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    ex = explain(wh, reg, "gmv_by_channel", OCT1, OCT2)
    # 1 Oct: organic 100 (u1), sem 200 (u2). 2 Oct: organic 70 (u3), sem 0.
    assert (ex.value_a, ex.value_b) == (300, 70)
    assert {d.name: d.contribution for d in ex.drivers} == {"gmv_organic": -30, "gmv_sem": -200}
    w = whatif(wh, reg, "gmv_by_channel", OCT, {"gmv_sem": "+50%"})
    assert w.scenario == pytest.approx(420 + 100)


def test_multiplicative_tree_lmdi_sums_to_the_change(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    ex = explain(wh, reg, "gmv", OCT1, OCT2)
    # 1 Oct: UV 3, buyers 2, GMV 300. 2 Oct: UV 2, buyers 1, GMV 70.
    assert (ex.value_a, ex.value_b, ex.method) == (300, 70, "lmdi")
    assert sum(d.contribution for d in ex.drivers) == pytest.approx(-230, abs=1e-9)
    contrib = {d.name: d.contribution for d in ex.drivers}
    w = logmean(70, 300)
    assert contrib["uv"] == pytest.approx(w * math.log(2 / 3))
    assert contrib["conversion_rate"] == pytest.approx(w * math.log(0.5 / (2 / 3)))
    assert contrib["aov"] == pytest.approx(w * math.log(70 / 150))
    assert all(d.name != "_residual" for d in ex.drivers)


def test_dimension_attribution_with_rate_and_mix(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    ex = explain(wh, reg, "conversion_rate", OCT1, OCT2, by="channel")
    assert ex.change == pytest.approx(0.5 - 2 / 3)
    assert sum(d.contribution for d in ex.dimensions) == pytest.approx(ex.change, abs=1e-12)
    for d in ex.dimensions:
        assert d.rate_effect is not None and d.mix_effect is not None
        assert d.rate_effect + d.mix_effect == pytest.approx(d.contribution)
    gmv = explain(wh, reg, "gmv", OCT1, OCT2, by="channel")
    assert {d.name: d.contribution for d in gmv.dimensions} == {"sem": -200.0, "organic": -30.0}


@given(
    st.lists(st.floats(0.01, 1e4), min_size=2, max_size=5).flatmap(
        lambda a: st.tuples(st.just(a), st.lists(st.floats(0.01, 1e4), min_size=len(a), max_size=len(a)))
    )
)
def test_lmdi_and_shapley_always_sum_exactly(pair: tuple[list[float], list[float]]) -> None:
    a, b = pair
    total = math.prod(b) - math.prod(a)
    # Float error scales with the products and with terms that cancel each other;
    # explain() hands that last-bit noise to the largest driver so its lines add up exactly.
    lm, sh = lmdi(a, b), shapley(math.prod, a, b)
    tol = 1e-9 * max(1.0, math.prod(a), math.prod(b), sum(map(abs, lm)), sum(map(abs, sh)))
    assert sum(lm) == pytest.approx(total, abs=tol)
    assert sum(sh) == pytest.approx(total, abs=tol)


def test_shapley_handles_zero_and_rate_mix_sums() -> None:
    assert sum(shapley(math.prod, [2.0, 3.0, 0.0], [4.0, 1.0, 5.0])) == pytest.approx(20.0)
    eff = rate_mix({"x": 1, "y": 4}, {"x": 10, "y": 10}, {"x": 3, "y": 2}, {"x": 20, "y": 5})
    total = sum(r + m for r, m in eff.values())
    assert total == pytest.approx(5 / 25 - 5 / 20)


def test_whatif_and_goal_seek_round_trip(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    w = whatif(wh, reg, "gmv", OCT, {"conversion": "+5%", "aov": "-2%"})
    assert w.base == pytest.approx(420.0)
    assert w.scenario == pytest.approx(420.0 * 1.05 * 0.98)
    assert w.changes == {"conversion_rate": "+5%", "aov": "-2%"}
    g = goal_seek(wh, reg, "gmv", OCT, "+10%", "conversion_rate")
    assert g.driver_required == pytest.approx(0.75 * 1.1)
    back = whatif(wh, reg, "gmv", OCT, {"conversion_rate": repr(g.driver_required)})
    assert back.scenario == pytest.approx(g.target_goal) == pytest.approx(462.0)
    # Through a derived formula on top of the tree: net GMV = GMV − refunds.
    net = whatif(wh, reg, "net_gmv", OCT, {"uv": "+10%", "refund_amount": "-50%"})
    assert net.scenario == pytest.approx(420 * 1.1 - 100)
    g2 = goal_seek(wh, reg, "net_gmv", OCT, "300", "refund_amount")
    assert g2.driver_required == pytest.approx(120.0)


def test_sensitivity_and_driver_errors(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    s = sensitivity(wh, reg, "gmv", OCT)
    assert {r.driver for r in s.rows} == {"uv", "conversion_rate", "aov"}
    for r in s.rows:
        assert r.elasticity == pytest.approx(1.0)
        assert r.values["+10%"] == pytest.approx(462.0)
    with pytest.raises(YunyingError) as e:
        whatif(wh, reg, "gmv", OCT, {"refund_rate": "+5%"})
    assert "not a driver of 'gmv'" in e.value.message("en")
    with pytest.raises(YunyingError):
        whatif(wh, reg, "gmv", OCT, {"uv": "lots"})


def test_scenarios_are_saved_and_compared(wh: Warehouse, settings: Settings) -> None:
    from yunying.metrics import load_registry

    data.shop(wh)
    reg = load_registry(settings, ["ecommerce"])
    save_scenario(settings, Scenario(name="promo", metric="gmv", period="2026-10-01..2026-10-07",
                                     changes={"conversion_rate": "+10%"}))
    save_scenario(settings, Scenario(name="price_cut", metric="gmv", period="2026-10-01..2026-10-07",
                                     changes={"aov": "-5%", "uv": "+20%"}))
    assert (settings.project_dir / "metrics" / "scenarios" / "promo.yaml").exists()
    # Scenario files do not disturb the spec loader.
    reg = load_registry(settings, ["ecommerce"])
    cmp = compare_scenarios(wh, reg, settings, ["promo", "price_cut"])
    assert [r.scenario for r in cmp.rows] == pytest.approx([462.0, 420 * 0.95 * 1.2])
    with pytest.raises(YunyingError):
        compare_scenarios(wh, reg, settings, ["missing"])
