"""Every library metric on a hand-computed fixture (see data.py for the rows)."""

from __future__ import annotations

import datetime as dt

import pytest

from tests.metrics import data
from yunying.config import Settings
from yunying.metrics import compute, load_registry
from yunying.metrics.spec import LIBRARIES, Registry
from yunying.warehouse.engine import Warehouse

OCT1, OCT7, OCT31 = dt.date(2026, 10, 1), dt.date(2026, 10, 7), dt.date(2026, 10, 31)


@pytest.fixture
def reg(settings: Settings) -> Registry:
    return load_registry(settings, list(LIBRARIES))


def totals(wh: Warehouse, reg: Registry, names: list[str], start: dt.date, end: dt.date) -> dict[str, float | None]:
    res = compute(wh, reg, names, "total", start, end, use_cache=False)
    return {s.name: s.total() for s in res.series}


def test_every_library_metric_is_covered_here(reg: Registry) -> None:
    covered = set(ECOMMERCE) | set(APP) | set(USER) | set(SAAS) | set(CREDIT)
    assert set(reg.metrics) == covered


ECOMMERCE = {
    "uv": 4, "pv": 7, "cart_adds": 0, "buyers": 3, "orders": 4, "gmv": 420.0, "conversion_rate": 0.75, "aov": 140.0,
    "avg_order_value": 105.0, "repurchase_rate": 1 / 3, "refunded_orders": 1, "refund_rate": 0.25,
    "refund_amount": 200.0, "net_gmv": 220.0, "gmv_mtd": 420.0,
}
APP = {
    "new_users": 3, "total_users": 6, "dau": 4, "avg_dau": 5 / 7, "wau": 4, "mau": 4,
    "stickiness": (5 / 7) / 4, "sessions": 5, "sessions_per_user": 1.25,
    "retention_d1": 1 / 3, "retention_d7": 1 / 3, "retention_d30": 0.0,
}
USER = {
    "users_total": 6, "users_new": 3, "users_active": 1, "users_silent": 1, "users_churned": 1,
    "new_user_share": 0.5, "active_user_share": 1 / 6, "silent_user_share": 1 / 6, "churned_user_share": 1 / 6,
}
SAAS = {
    "mrr": 440.0, "mrr_start": 600.0, "arr": 5280.0, "new_mrr": 80.0, "expansion_mrr": 50.0,
    "contraction_mrr": 180.0, "churned_mrr": 200.0, "reactivation_mrr": 90.0, "net_new_mrr": -160.0,
    "nrr": 270 / 600, "grr": 220 / 600, "customers": 4, "customers_start": 3, "new_customers": 1,
    "churned_customers": 1, "logo_churn": 1 / 3, "arpa": 110.0,
}
CREDIT = {
    "loan_applications": 3, "loan_approvals": 2, "approval_rate": 2 / 3, "loans_disbursed": 2,
    "loan_amount": 1500.5, "amount_due": 250.0, "amount_repaid": 200.0, "collection_rate": 0.8,
    "repaid_on_time": 2 / 3, "repaid_within_30d": 1.0, "repaid_within_90d": 1.0,
    "overdue_rate_m1": 1 / 3, "overdue_rate_m3": 0.0, "collection_rate_m1": 1.0,
}


def test_ecommerce_app_and_user_libraries(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    got = totals(wh, reg, [*ECOMMERCE, *APP, *USER], OCT1, OCT7)
    for name, want in {**ECOMMERCE, **APP, **USER}.items():
        assert got[name] == pytest.approx(want), name


def test_saas_library_follows_chartmogul_movements(wh: Warehouse, reg: Registry) -> None:
    data.saas(wh)
    got = totals(wh, reg, list(SAAS), OCT1, OCT31)
    for name, want in SAAS.items():
        assert got[name] == pytest.approx(want), name
    # The movements reconcile start and end MRR exactly.
    assert got["mrr_start"] + got["net_new_mrr"] == pytest.approx(got["mrr"])


def test_saas_by_account_tier(wh: Warehouse, reg: Registry) -> None:
    data.saas(wh)
    res = compute(wh, reg, ["churned_mrr", "mrr"], "total", OCT1, OCT31, by="tier", use_cache=False)
    churned = {p.dim: p.value for p in res.get("churned_mrr").points}
    mrr = {p.dim: p.value for p in res.get("mrr").points}
    assert churned == {"KA": 0.0, "SMB": 200.0, "mid": 0.0}
    assert mrr == {"KA": 150.0, "SMB": 170.0, "mid": 120.0}


def test_credit_library(wh: Warehouse, reg: Registry) -> None:
    data.credit(wh)
    got = totals(wh, reg, list(CREDIT), OCT1, OCT7)
    for name, want in CREDIT.items():
        assert got[name] == pytest.approx(want), name


def test_daily_values_and_month_to_date(wh: Warehouse, reg: Registry) -> None:
    data.shop(wh)
    res = compute(wh, reg, ["dau", "gmv", "gmv_mtd", "total_users"], "day", OCT1, OCT7, use_cache=False)
    assert [p.value for p in res.get("dau").points] == [3, 2, 0, 0, 0, 0, 0]
    assert [p.value for p in res.get("gmv").points] == [300, 70, 0, 0, 50, 0, 0]
    assert [p.value for p in res.get("gmv_mtd").points] == [300, 370, 370, 370, 420, 420, 420]
    # Running total starts from every user before the range (u4, u5, u6).
    assert [p.value for p in res.get("total_users").points] == [5, 6, 6, 6, 6, 6, 6]


def test_credit_vintage_curves(wh: Warehouse) -> None:
    from yunying.metrics import vintage

    data.credit(wh)
    # L2's first installment (due 6 Oct) was paid on the 20th: 14 days late.
    strict = vintage(wh, OCT1, OCT31, mobs=3, dpd=7, as_of=dt.date(2027, 1, 31))
    assert [(r.cohort, r.loans) for r in strict.rows] == [(OCT1, 2)]
    assert strict.rows[0].rates == [0.5, 0.5, 0.5]
    lenient = vintage(wh, OCT1, OCT31, mobs=3, dpd=30, as_of=dt.date(2026, 12, 15))
    # MOB 1 (to 30 Nov) is observed; MOB 2 is not yet.
    assert lenient.rows[0].rates == [0.0, None, None]
