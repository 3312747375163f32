"""Points lots (FIFO by expiry, expiry at the second), statements and tier upgrades/downgrades."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from tests.engage.conftest import uid
from yunying.engage import points as P
from yunying.engage import service as S
from yunying.errors import YunyingError

AT = dt.datetime(2026, 1, 1, 10, 0, 0)


def earn(url: str, user: str, pts: int, at: dt.datetime, key: str | None = None) -> P.EarnResult:
    return P.earn(url, P.EarnRequest(key=key or uid("e"), user_id=user, points=pts, at=at))


def test_earn_by_rule_spend_fifo_and_expire_at_the_second(url: str) -> None:
    u = uid("u")
    P.set_rule(url, P.RuleSpec(event="order_paid", points=2, per_amount=True, expiry_days=30))
    first = P.earn(url, P.EarnRequest(key=uid("e"), user_id=u, event="order_paid", amount=Decimal("50.99"), at=AT))
    assert first.points == 100 and first.expires_at == AT + dt.timedelta(days=30)  # 2 × floor(50.99)
    with pytest.raises(YunyingError) as e:
        P.earn(url, P.EarnRequest(key=uid("e"), user_id=u, event="nope", at=AT))
    assert e.value.key == "engage.points_no_rule"
    late = earn(url, u, 500, AT + dt.timedelta(days=1))  # expires a day later (365 days)
    key = uid("s")
    spent = P.spend(url, P.SpendRequest(key=key, user_id=u, points=120, at=AT + dt.timedelta(days=2)))
    assert spent.lots == [first.lot_id, late.lot_id]  # the lot expiring first goes first
    assert P.spend(url, P.SpendRequest(key=key, user_id=u, points=120, at=AT)).replayed
    with pytest.raises(YunyingError) as e:
        P.spend(url, P.SpendRequest(key=uid("s"), user_id=u, points=481, at=AT + dt.timedelta(days=2)))
    assert e.value.key == "engage.points_insufficient"
    # Expiry at the second: a lot expiring at T is spendable at T-1s, not at T.
    short = earn(url, u, 7, AT)
    st = P.statement(url, u, at=AT + dt.timedelta(days=365) - dt.timedelta(seconds=1))
    assert st.available == 7 + 480
    exp = short.expires_at
    assert P.expire(url, exp - dt.timedelta(seconds=1)).points == 0
    with pytest.raises(YunyingError):
        P.spend(url, P.SpendRequest(key=uid("s"), user_id=u, points=488, at=exp))
    done = P.expire(url, exp)
    assert done.points >= 7
    assert P.expire(url, exp).points == 0  # idempotent
    st = P.statement(url, u, at=exp)
    assert st.balance == 100 + 500 - 120 + 7 - 7
    assert [x.kind for x in st.lines] == ["points_earned", "points_earned", "points_spent", "points_earned",
                                          "points_expired"]
    assert st.lines[-1].balance == st.balance
    assert S.check_ledger(url).unbalanced == []


def test_tiers_upgrade_now_downgrade_after_hold(url: str) -> None:
    P.set_tiers(url, [P.TierSpec(name="普通", min_points=0), P.TierSpec(name="银卡", min_points=1000),
                      P.TierSpec(name="金卡", min_points=5000)])
    with pytest.raises(YunyingError):
        P.set_tiers(url, [P.TierSpec(name="x", min_points=10)])
    u = uid("u")
    earn(url, u, 999, AT)
    ev = P.evaluate_tiers(url, AT, window_days=365, hold_days=30)
    assert [c.new for c in ev.changes if c.user_id == u] == ["普通"]
    earn(url, u, 1, AT + dt.timedelta(days=1))  # exactly 1,000
    ev = P.evaluate_tiers(url, AT + dt.timedelta(days=1), window_days=365, hold_days=30)
    assert [(c.old, c.new) for c in ev.changes if c.user_id == u] == [("普通", "银卡")]
    # A year later the 999 fall out of the window: below 银卡, downgrade (held > 30 days).
    later = AT + dt.timedelta(days=365)
    ev = P.evaluate_tiers(url, later, window_days=365, hold_days=30)
    assert [(c.old, c.new) for c in ev.changes if c.user_id == u] == [("银卡", "普通")]
    v = uid("v")
    earn(url, v, 6000, later)
    P.evaluate_tiers(url, later, window_days=365, hold_days=30)
    # Within the hold period a downgrade waits even though the points left the window.
    ev = P.evaluate_tiers(url, later + dt.timedelta(days=20), window_days=10, hold_days=30)
    assert not [c for c in ev.changes if c.user_id == v]
    ev = P.evaluate_tiers(url, later + dt.timedelta(days=30), window_days=10, hold_days=30)
    assert [(c.old, c.new) for c in ev.changes if c.user_id == v] == [("金卡", "普通")]
    assert P.statement(url, v).tier == "普通"
