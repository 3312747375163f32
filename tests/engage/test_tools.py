"""Every tool's rules and the common rules, on SQLite and PostgreSQL, with their boundaries."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tests.engage.conftest import T0, T1, D, spec, uid
from yunying.engage import service as S
from yunying.engage.rules import Order, OrderLine, act365_yield, draw
from yunying.engage.schemas import (
    ConvertRequest,
    IssueRequest,
    RedeemRequest,
    RollbackRequest,
)
from yunying.errors import YunyingError

AT = dt.datetime(2026, 11, 10, 12, 0, 0)


def order(*lines: tuple[str, str, str], oid: str | None = None) -> Order:
    return Order(
        order_id=oid or uid("o"),
        lines=[OrderLine(product_id=p, category=c, amount=Decimal(a)) for p, c, a in lines],
    )


def give(url: str, tool_id: str, user: str, at: dt.datetime = AT) -> str:
    return S.issue(url, IssueRequest(key=uid("i"), tool_id=tool_id, user_id=user, at=at)).grant_id


def use(url: str, tool_id: str, user: str, grant: str | None, o: Order | None = None, at: dt.datetime = AT,
        **kw: object) -> S.RedeemResult:
    return S.redeem(url, RedeemRequest(key=uid("r"), tool_id=tool_id, user_id=user, grant_id=grant, order=o, at=at,
                                       **kw))  # type: ignore[arg-type]


def balanced(url: str) -> None:
    assert S.check_ledger(url).unbalanced == []


def test_voucher_threshold_scope_and_cap(url: str) -> None:
    t = S.create_tool(url, spec("voucher", {"amount": "20", "threshold": "100", "scope": {"categories": ["food"]}}))
    g = give(url, t.id, "u1")
    # 99.99 in scope (plus 500 outside the scope) does not reach 满100.
    with pytest.raises(YunyingError) as e:
        use(url, t.id, "u1", g, order(("a", "food", "99.99"), ("b", "toys", "500")))
    assert e.value.key == "engage.threshold_not_met"
    r = use(url, t.id, "u1", g, order(("a", "food", "100.00")))  # exactly met
    assert r.amount == D("20.00")
    with pytest.raises(YunyingError) as e:  # a coupon is used once
        use(url, t.id, "u1", g, order(("a", "food", "300")))
    assert e.value.key == "engage.grant_used"
    pct = S.create_tool(url, spec("voucher", {"mode": "percent", "percent": "15", "max_discount": "30",
                                              "scope": {"products": ["sku-1"]}}))
    g2 = give(url, pct.id, "u1")
    assert S.validate(url, RedeemRequest(key="q", tool_id=pct.id, user_id="u1", grant_id=g2,
                                         order=order(("sku-1", "", "33.33")), at=AT)).amount == D("5.00")
    r2 = use(url, pct.id, "u1", g2, order(("sku-1", "", "500"), ("sku-2", "", "900")))
    assert r2.amount == D("30.00")  # 15% of 500 = 75, capped at 30
    balanced(url)


def test_validity_window_is_start_inclusive_end_exclusive(url: str) -> None:
    t = S.create_tool(url, spec("voucher", {"amount": "5"}))
    assert give(url, t.id, "u1", at=T0)  # first second counts
    last = T1 - dt.timedelta(seconds=1)
    assert give(url, t.id, "u2", at=last + dt.timedelta(microseconds=999_999))  # 23:59:59.999 → :59
    with pytest.raises(YunyingError) as e:
        give(url, t.id, "u3", at=T1)
    assert e.value.key == "engage.outside_window"
    with pytest.raises(YunyingError):
        give(url, t.id, "u3", at=T0 - dt.timedelta(seconds=1))
    aware = dt.datetime(2026, 12, 1, 7, 59, 59, tzinfo=dt.timezone(dt.timedelta(hours=8)))  # 23:59:59 UTC
    assert give(url, t.id, "u4", at=aware)


def test_limits_budget_and_idempotent_replay(url: str) -> None:
    t = S.create_tool(url, spec("voucher", {"amount": "20"}, per_user_limit=2, total_limit=7, budget=D("100")))
    grants = [give(url, t.id, "u1"), give(url, t.id, "u1")]
    with pytest.raises(YunyingError) as e:
        give(url, t.id, "u1")
    assert e.value.key == "engage.user_limit"
    grants += [give(url, t.id, f"u{i}") for i in range(2, 7)]
    with pytest.raises(YunyingError) as e:
        give(url, t.id, "u99")
    assert e.value.key == "engage.total_limit"
    # Budget 100 at 20 each: five redemptions fit, the sixth of the batch fails mid-batch.
    users = ["u1", "u1", "u2", "u3", "u4", "u5", "u6"]
    done, failed = [], []
    for g, u in zip(grants, users, strict=True):
        try:
            done.append(use(url, t.id, u, g, order(("p", "", "50"))))
        except YunyingError as err:
            failed.append(err.key)
    assert len(done) == 5 and failed == ["engage.budget_exhausted", "engage.budget_exhausted"]
    assert S.get_tool(url, t.id).budget_used == D("100.00")
    # A replay answers the original result, even after the budget ran out.
    req = RedeemRequest(key="replay-" + t.id, tool_id=t.id, user_id="u1", grant_id=grants[0],
                        order=order(("p", "", "50")), at=AT)
    S.rollback(url, RollbackRequest(key=uid("b"), redemption_id=done[0].redemption_id, at=AT))
    first = S.redeem(url, req)
    again = S.redeem(url, req)
    assert again.replayed and again.model_dump(exclude={"replayed"}) == first.model_dump(exclude={"replayed"})
    with pytest.raises(YunyingError) as e:  # the key belongs to a redemption, not an issue
        S.issue(url, IssueRequest(key=req.key, tool_id=t.id, user_id="u1", at=AT))
    assert e.value.key == "engage.key_reused"
    balanced(url)


def test_cashback_credit_and_refund_reversal(url: str) -> None:
    t = S.create_tool(url, spec("cashback", {"mode": "percent", "percent": "10", "threshold": "50",
                                             "max_discount": "8"}, budget=D("1000")))
    g = give(url, t.id, "u1")
    with pytest.raises(YunyingError):
        use(url, t.id, "u1", g, order(("p", "", "49.99")))
    r = use(url, t.id, "u1", g, order(("p", "", "55.55")))
    assert r.amount == D("5.56")  # 5.555 rounds half up
    bal = S.check_ledger(url, prefix="user:u1").balances
    assert bal["user:u1|money"] >= 556
    before = S.check_ledger(url).balances.get(f"budget:{t.id}|money")
    assert before == -556
    rb = S.rollback(url, RollbackRequest(key=uid("b"), redemption_id=r.redemption_id, at=AT))
    assert rb.amount == D("5.56")
    assert S.check_ledger(url).balances[f"budget:{t.id}|money"] == 0
    assert S.get_tool(url, t.id).budget_used == D("0")
    with pytest.raises(YunyingError) as e:  # a second refund with another key is refused
        S.rollback(url, RollbackRequest(key=uid("b"), redemption_id=r.redemption_id, at=AT))
    assert e.value.key == "engage.not_redeemed"
    r2 = use(url, t.id, "u1", g, order(("p", "", "200")))  # the coupon came back with the refund
    assert r2.amount == D("8.00")
    balanced(url)


def test_trial_credit_pays_only_yield_at_term_end(url: str) -> None:
    t = S.create_tool(url, spec("trial_credit", {"principal": "10000", "annual_rate": "0.05", "term_days": 7},
                                new_user_days=7))
    elig = S.StaticEligibility(first_seen_at={"new": AT - dt.timedelta(days=6, hours=23), "old": AT - dt.timedelta(days=7)})
    g = S.issue(url, IssueRequest(key=uid("i"), tool_id=t.id, user_id="new", at=AT), elig).grant_id
    with pytest.raises(YunyingError) as e:
        S.issue(url, IssueRequest(key=uid("i"), tool_id=t.id, user_id="old", at=AT), elig)
    assert e.value.key == "engage.not_new_user"
    r = S.redeem(url, RedeemRequest(key=uid("r"), tool_id=t.id, user_id="new", grant_id=g, at=AT), elig)
    assert r.amount == D("9.59")  # 10000 × 5% × 7 / 365 = 9.589… → 9.59 (ACT/365, half up)
    assert r.matures_at == AT + dt.timedelta(days=7)
    assert S.settle(url, AT + dt.timedelta(days=7, seconds=-1)).settled == 0
    assert f"budget:{t.id}|money" not in S.check_ledger(url).balances
    paid = S.settle(url, AT + dt.timedelta(days=7))
    assert paid.settled >= 1 and S.check_ledger(url).balances[f"budget:{t.id}|money"] == -959
    assert S.settle(url, AT + dt.timedelta(days=8)).settled == 0
    assert S.check_ledger(url).balances[f"budget:{t.id}|money"] == -959  # never paid twice
    with pytest.raises(YunyingError) as e:
        S.rollback(url, RollbackRequest(key=uid("b"), redemption_id=r.redemption_id, at=AT))
    assert e.value.key == "engage.already_settled"


def test_rate_boost_exact_yield() -> None:
    assert act365_yield(D("50000"), D("0.02"), 30) == D("82.19")  # 82.1917…
    assert act365_yield(D("1"), D("0.0365"), 1) == D("0.00")
    assert act365_yield(D("10000"), D("0.0365"), 5) == D("5.00")


def test_rate_boost_caps_principal(url: str) -> None:
    t = S.create_tool(url, spec("rate_boost", {"extra_rate": "0.02", "days": 30, "max_principal": "50000",
                                               "min_principal": "1000"}, budget=D("100")))
    g = give(url, t.id, "u1")
    with pytest.raises(YunyingError):
        use(url, t.id, "u1", g, principal=D("999.99"))
    r = use(url, t.id, "u1", g, principal=D("80000"))
    assert r.amount == D("82.19")
    g2 = give(url, t.id, "u2")
    with pytest.raises(YunyingError) as e:  # 82.19 + 82.19 > 100: budget reserved at redemption
        use(url, t.id, "u2", g2, principal=D("60000"))
    assert e.value.key == "engage.budget_exhausted"


def test_trial_class_conversion_window(url: str) -> None:
    t = S.create_tool(url, spec("trial_class", {"session_cost": "30", "convert_days": 14}, per_user_limit=1,
                                stock=2))
    r = use(url, t.id, "u1", give(url, t.id, "u1"))
    assert r.amount == D("30.00")
    with pytest.raises(YunyingError):
        give(url, t.id, "u1")  # one free first session per user
    late = AT + dt.timedelta(days=14)
    with pytest.raises(YunyingError) as e:
        S.convert(url, ConvertRequest(key=uid("c"), redemption_id=r.redemption_id, order_id="paid-1", at=late))
    assert e.value.key == "engage.convert_window"
    c = S.convert(url, ConvertRequest(key=uid("c"), redemption_id=r.redemption_id, order_id="paid-1",
                                      at=late - dt.timedelta(seconds=1)))
    assert c.order_id == "paid-1"
    with pytest.raises(YunyingError) as e:
        S.convert(url, ConvertRequest(key=uid("c"), redemption_id=r.redemption_id, order_id="paid-2", at=AT))
    assert e.value.key == "engage.already_converted"
    use(url, t.id, "u2", give(url, t.id, "u2"))
    g3 = give(url, t.id, "u3")
    with pytest.raises(YunyingError) as e:  # stock of 2 sessions
        use(url, t.id, "u3", g3)
    assert e.value.key == "engage.sold_out"


def test_flash_sale_last_unit_and_user_limit(url: str) -> None:
    t = S.create_tool(url, spec("flash_sale", {"price": "9.90", "list_price": "99"}, stock=5, per_user_limit=3,
                                budget=D("1000")))
    with pytest.raises(YunyingError) as e:
        use(url, t.id, "u1", None, quantity=4)
    assert e.value.key == "engage.user_limit"
    assert use(url, t.id, "u1", None, quantity=3).amount == D("267.30")
    with pytest.raises(YunyingError):
        use(url, t.id, "u1", None)
    with pytest.raises(YunyingError) as e:
        use(url, t.id, "u2", None, quantity=3)  # only 2 left
    assert e.value.key == "engage.sold_out"
    assert use(url, t.id, "u2", None, quantity=2).quantity == 2  # the last units
    with pytest.raises(YunyingError) as e:
        use(url, t.id, "u3", None)
    assert e.value.key == "engage.sold_out"
    tool = S.get_tool(url, t.id)
    assert (tool.stock, tool.sold) == (0, 5)
    bal = S.check_ledger(url).balances
    assert bal[f"stock:{t.id}|unit"] == -5 and bal[f"budget:{t.id}|money"] == -44550
    with pytest.raises(YunyingError):  # not a coupon
        give(url, t.id, "u9")


def test_lottery_weights_stock_and_reproducible_draws(url: str) -> None:
    prizes = [{"id": "big", "name": "iPad", "weight": 1, "stock": 1, "value": "3000"},
              {"id": "small", "name": "5元券", "weight": 50, "stock": 3, "value": "5"}]
    t = S.create_tool(url, spec("lottery", {"prizes": prizes, "no_win_weight": 49}, per_user_limit=100))
    wins: dict[str | None, int] = {}
    for i in range(40):
        r = use(url, t.id, f"u{i % 3}", None)
        wins[r.prize_id] = wins.get(r.prize_id, 0) + 1
        assert r.seed is not None
        detail = S.redemption_detail(url, r.redemption_id)
        assert S.replay_draw(detail) == r.prize_id  # the recorded seed reproduces the draw
    assert wins.get("small", 0) <= 3 and wins.get("big", 0) <= 1
    assert wins.get(None, 0) >= 36
    assert draw(7, [("a", 1)], 0) == "a" and draw(7, [], 5) is None
    balanced(url)


def test_privileged_offer_only_for_matching_users(url: str) -> None:
    with pytest.raises(YunyingError) as e:
        S.create_tool(url, spec("privileged", {"price": "0", "list_price": "0"}, stock=10))
    assert e.value.key == "engage.privileged_needs_rule"
    t = S.create_tool(url, spec("privileged", {"price": "100", "list_price": "100"}, stock=10, segment="newcomers"))
    elig = S.StaticEligibility(members={"newcomers": {"n1"}})
    assert S.redeem(url, RedeemRequest(key=uid("r"), tool_id=t.id, user_id="n1", at=AT), elig).quantity == 1
    with pytest.raises(YunyingError) as e:
        S.redeem(url, RedeemRequest(key=uid("r"), tool_id=t.id, user_id="x", at=AT), elig)
    assert e.value.key == "engage.not_eligible_segment"
    with pytest.raises(YunyingError) as e:
        S.redeem(url, RedeemRequest(key=uid("r"), tool_id=t.id, user_id="n1", at=AT))
    assert e.value.key == "engage.eligibility_unknown"
    pred = S.StaticEligibility(members={"newcomers": lambda u: u.startswith("n")})
    assert S.redeem(url, RedeemRequest(key=uid("r"), tool_id=t.id, user_id="n2", at=AT), pred).quantity == 1


def test_stacking_and_exclusivity(url: str) -> None:
    a = S.create_tool(url, spec("voucher", {"amount": "10"}, stack_group="store"))
    b = S.create_tool(url, spec("voucher", {"amount": "5"}, stack_group="store"))
    c = S.create_tool(url, spec("cashback", {"amount": "3"}))
    x = S.create_tool(url, spec("voucher", {"amount": "50"}, exclusive=True))
    oid = uid("o")
    use(url, a.id, "u1", give(url, a.id, "u1"), order(("p", "", "100"), oid=oid))
    with pytest.raises(YunyingError):  # same group on the same order
        use(url, b.id, "u1", give(url, b.id, "u1"), order(("p", "", "100"), oid=oid))
    use(url, c.id, "u1", give(url, c.id, "u1"), order(("p", "", "100"), oid=oid))  # other group stacks
    with pytest.raises(YunyingError) as e:
        use(url, x.id, "u1", give(url, x.id, "u1"), order(("p", "", "100"), oid=oid))
    assert e.value.key == "engage.not_stackable"
    oid2 = uid("o")
    use(url, x.id, "u2", give(url, x.id, "u2"), order(("p", "", "100"), oid=oid2))
    with pytest.raises(YunyingError) as e:
        use(url, c.id, "u2", give(url, c.id, "u2"), order(("p", "", "100"), oid=oid2))
    assert e.value.key == "engage.not_stackable"


def test_codes_bulk_unique_and_one_time(url: str) -> None:
    t = S.create_tool(url, spec("voucher", {"amount": "10"}, requires_code=True))
    res = S.generate_codes(url, t.id, 2000, show=True)
    assert res.created == 2000 and len(set(res.codes)) == 2000
    with pytest.raises(YunyingError) as e:
        give(url, t.id, "u1")
    assert e.value.key == "engage.code_required"
    code = res.codes[0]
    r = S.issue(url, IssueRequest(key=uid("i"), tool_id=t.id, user_id="u1", code=code.lower(), at=AT))
    assert r.code == code
    with pytest.raises(YunyingError) as e:  # one time
        S.issue(url, IssueRequest(key=uid("i"), tool_id=t.id, user_id="u2", code=code, at=AT))
    assert e.value.key == "engage.code_invalid"
    typo = code[:3] + ("A" if code[3] != "A" else "B") + code[4:]
    with pytest.raises(YunyingError):
        S.issue(url, IssueRequest(key=uid("i"), tool_id=t.id, user_id="u2", code=typo, at=AT))
    shared = S.create_tool(url, spec("voucher", {"amount": "10"}, shared_code="DOUBLE11", requires_code=True,
                                     total_limit=2))
    for u in ("a", "b"):
        S.issue(url, IssueRequest(key=uid("i"), tool_id=shared.id, user_id=u, code="DOUBLE11", at=AT))
    with pytest.raises(YunyingError) as e:
        S.issue(url, IssueRequest(key=uid("i"), tool_id=shared.id, user_id="c", code="DOUBLE11", at=AT))
    assert e.value.key == "engage.total_limit"


def test_bad_input_is_a_clear_error(url: str) -> None:
    with pytest.raises(YunyingError) as e:
        S.create_tool(url, spec("voucher", {"mode": "percent"}))
    assert e.value.key == "engage.bad_rules" and "percent" in e.value.message()
    with pytest.raises(YunyingError) as e:
        S.create_tool(url, spec("voucher", {"amount": "1"}, starts_at=T1, ends_at=T0))
    assert e.value.key == "engage.bad_window"
    t = S.create_tool(url, spec("voucher", {"amount": "1"}))
    with pytest.raises(YunyingError) as e:
        S.create_tool(url, spec("voucher", {"amount": "1"}, id=t.id))
    assert e.value.key == "engage.tool_exists"
    with pytest.raises(YunyingError) as e:
        use(url, "nope", "u1", None)
    assert e.value.key == "engage.unknown_tool"
    q = S.validate(url, RedeemRequest(key="k", tool_id=t.id, user_id="u1", grant_id="zz", at=AT))
    assert not q.ok and q.reason


def test_sharded_stock_merges_instead_of_false_sold_out(url: str) -> None:
    t = S.create_tool(url, spec("flash_sale", {"price": "1", "list_price": "3"}, stock=10, shards=4,
                                budget=D("20")))
    assert t.shards == 4 and t.stock == 10
    r = use(url, t.id, "u1", None, quantity=5)  # no single shard (3, 3, 2, 2) holds 5 units
    assert r.quantity == 5
    with pytest.raises(YunyingError) as e:
        use(url, t.id, "u2", None, quantity=6)
    assert e.value.key == "engage.sold_out"
    S.rollback(url, RollbackRequest(key=uid("b"), redemption_id=r.redemption_id, at=AT))
    assert use(url, t.id, "u2", None, quantity=10).amount == D("20.00")  # all units, exactly the budget
    tool = S.get_tool(url, t.id)
    assert (tool.stock, tool.sold, tool.budget_used) == (0, 10, D("20.00"))
    balanced(url)
