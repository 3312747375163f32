"""Each tool's rules as a pydantic model, and the exact arithmetic they imply.

Pure functions (no database): the service calls them inside its transaction, the tests
call them directly on boundaries. Money is ``Decimal`` rounded to the cent with
``ROUND_HALF_UP``; yields use the ACT/365 (Fixed) day count: ``principal × rate × days / 365``.
"""

from __future__ import annotations

import datetime as dt
import random
from decimal import ROUND_DOWN, ROUND_HALF_UP, Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationError, model_validator

from yunying.errors import YunyingError

CENT = Decimal("0.01")
DAYS_PER_YEAR = Decimal(365)

Kind = Literal[
    "voucher",
    "cashback",
    "trial_credit",
    "trial_class",
    "flash_sale",
    "rate_boost",
    "lottery",
    "privileged",
]
KINDS: tuple[str, ...] = (
    "voucher",
    "cashback",
    "trial_credit",
    "trial_class",
    "flash_sale",
    "rate_boost",
    "lottery",
    "privileged",
)
# Coupon-like tools: issued to a user first (a grant), then redeemed.
GRANT_KINDS = frozenset({"voucher", "cashback", "trial_credit", "trial_class", "rate_boost"})
# Paid at term end by ``settle``: the budget is reserved at redemption.
DEFERRED_KINDS = frozenset({"trial_credit", "rate_boost"})
# Tools that sell or give units from a fixed stock.
STOCK_KINDS = frozenset({"flash_sale", "privileged", "trial_class"})


def money(v: Decimal | int | str) -> Decimal:
    return Decimal(v).quantize(CENT, rounding=ROUND_HALF_UP)


def to_cents(v: Decimal) -> int:
    return int((money(v) * 100).to_integral_value())


def from_cents(c: int) -> Decimal:
    return (Decimal(c) / 100).quantize(CENT)


class Scope(BaseModel):
    """Which order lines count: a line in any listed product or category; none listed = all."""

    products: list[str] = Field(default_factory=list)
    categories: list[str] = Field(default_factory=list)


class OrderLine(BaseModel):
    product_id: str
    category: str = ""
    amount: Decimal = Field(ge=0, description="Line total (price × quantity).")


class Order(BaseModel):
    order_id: str = Field(min_length=1, max_length=128)
    lines: list[OrderLine] = Field(min_length=1)

    def eligible_amount(self, scope: Scope) -> Decimal:
        total = Decimal(0)
        everything = not scope.products and not scope.categories
        for ln in self.lines:
            if everything or ln.product_id in scope.products or ln.category in scope.categories:
                total += ln.amount
        return money(total)


class DiscountRules(BaseModel):
    """满减 / 折扣: fixed ``amount`` off or ``percent`` off the in-scope subtotal."""

    mode: Literal["fixed", "percent"] = "fixed"
    amount: Decimal | None = Field(default=None, gt=0)
    percent: Decimal | None = Field(default=None, gt=0, le=100)
    threshold: Decimal = Field(default=Decimal(0), ge=0)
    max_discount: Decimal | None = Field(default=None, gt=0)
    scope: Scope = Field(default_factory=Scope)

    @model_validator(mode="after")
    def _one_mode(self) -> DiscountRules:
        if self.mode == "fixed" and self.amount is None:
            raise ValueError("fixed mode needs amount")
        if self.mode == "percent" and self.percent is None:
            raise ValueError("percent mode needs percent")
        return self

    def value(self, order: Order) -> Decimal:
        """The discount (or cashback) for ``order``; raises when the threshold is not met."""
        base = order.eligible_amount(self.scope)
        if base <= 0 or base < self.threshold:
            raise YunyingError("engage.threshold_not_met", amount=str(base), threshold=str(self.threshold))
        if self.mode == "fixed":
            assert self.amount is not None
            v = money(self.amount)
        else:
            assert self.percent is not None
            v = money(base * self.percent / 100)
        if self.max_discount is not None:
            v = min(v, money(self.max_discount))
        return min(v, base)


class VoucherRules(DiscountRules):
    pass


class CashbackRules(DiscountRules):
    pass


def act365_yield(principal: Decimal, annual_rate: Decimal, days: int) -> Decimal:
    """Simple interest, ACT/365 Fixed, rounded half-up to the cent."""
    return money(Decimal(principal) * Decimal(annual_rate) * Decimal(days) / DAYS_PER_YEAR)


class TrialCreditRules(BaseModel):
    """体验金: a virtual ``principal`` earns ``annual_rate`` for ``term_days``; only the yield is paid."""

    principal: Decimal = Field(gt=0)
    annual_rate: Decimal = Field(gt=0, lt=1)
    term_days: int = Field(gt=0, le=3650)

    def payout(self) -> Decimal:
        return act365_yield(self.principal, self.annual_rate, self.term_days)


class RateBoostRules(BaseModel):
    """加息券: ``extra_rate`` a year on up to ``max_principal`` of an investment for ``days`` days."""

    extra_rate: Decimal = Field(gt=0, lt=1)
    days: int = Field(gt=0, le=3650)
    max_principal: Decimal = Field(gt=0)
    min_principal: Decimal = Field(default=Decimal(0), ge=0)

    def payout(self, principal: Decimal) -> Decimal:
        if principal < self.min_principal or principal <= 0:
            raise YunyingError(
                "engage.threshold_not_met", amount=str(principal), threshold=str(self.min_principal)
            )
        return act365_yield(min(principal, self.max_principal), self.extra_rate, self.days)


class TrialClassRules(BaseModel):
    """体验课: a free first session costing the company ``session_cost``; converts within ``convert_days``."""

    session_cost: Decimal = Field(default=Decimal(0), ge=0)
    convert_days: int = Field(default=30, gt=0)


class PriceRules(BaseModel):
    """秒杀 / 特权标: units sold at ``price``; the subsidy ``list_price - price`` is charged to the budget."""

    price: Decimal = Field(ge=0)
    list_price: Decimal = Field(ge=0)

    @model_validator(mode="after")
    def _sane(self) -> PriceRules:
        if self.price > self.list_price:
            raise ValueError("price above list_price")
        return self

    def subsidy(self, quantity: int) -> Decimal:
        return money((self.list_price - self.price) * quantity)


class FlashSaleRules(PriceRules):
    pass


class PrivilegedRules(PriceRules):
    pass


class PrizeSpec(BaseModel):
    id: str = Field(min_length=1, max_length=64)
    name: str
    weight: int = Field(gt=0)
    stock: int = Field(ge=0)
    value: Decimal = Field(ge=0)


class LotteryRules(BaseModel):
    """抽奖: each draw picks a prize in stock by weight, or nothing with ``no_win_weight``."""

    prizes: list[PrizeSpec] = Field(min_length=1)
    no_win_weight: int = Field(ge=0)


RULES: dict[str, type[BaseModel]] = {
    "voucher": VoucherRules,
    "cashback": CashbackRules,
    "trial_credit": TrialCreditRules,
    "trial_class": TrialClassRules,
    "flash_sale": FlashSaleRules,
    "rate_boost": RateBoostRules,
    "lottery": LotteryRules,
    "privileged": PrivilegedRules,
}


def parse_rules(kind: str, data: dict[str, Any]) -> BaseModel:
    if kind not in RULES:
        raise YunyingError("engage.unknown_kind", kind=kind, kinds=", ".join(KINDS))
    try:
        return RULES[kind].model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise YunyingError(
            "engage.bad_rules",
            kind=kind,
            field=".".join(str(x) for x in first["loc"]) or "-",
            reason=first["msg"],
        ) from e


def draw(seed: int, candidates: list[tuple[str, int]], no_win_weight: int) -> str | None:
    """The prize a seed picks among ``(prize_id, weight)`` candidates; ``None`` is no win.

    Deterministic: the recorded seed and candidate list reproduce every draw.
    """
    total = sum(w for _, w in candidates) + no_win_weight
    if total <= 0:
        return None
    x = random.Random(seed).randrange(total)
    for pid, w in candidates:
        if x < w:
            return pid
        x -= w
    return None


def in_window(starts_at: dt.datetime, ends_at: dt.datetime, at: dt.datetime) -> bool:
    """Validity is ``starts_at <= at < ends_at`` at the second (start inclusive, end exclusive)."""
    return starts_at <= at < ends_at


def whole_units(amount: Decimal) -> int:
    return int(Decimal(amount).to_integral_value(rounding=ROUND_DOWN))
