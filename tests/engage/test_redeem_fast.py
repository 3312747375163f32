"""The one-statement PostgreSQL redemption path gives the same answers and books as the generic path."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tests.engage.conftest import T0, spec, uid
from yunying.appdb import engine_for, migrate
from yunying.engage import service as S
from yunying.engage.schemas import RedeemRequest, ToolSpec
from yunying.errors import YunyingError

pytestmark = pytest.mark.postgres

AT = dt.datetime(2026, 11, 10, 12, 0, 0)


def books(url: str, tid: str) -> str:
    """Everything the redemptions of one tool wrote, with the tool's id and redemption ids masked."""
    with engine_for(url).connect() as c:
        def q(sql: str) -> list[list[Any]]:
            return [list(r) for r in c.execute(sa.text(sql), {"t": tid})]

        out = {
            "ops": q("SELECT o.key, o.kind, o.result::jsonb - 'redemption_id', o.at FROM engage_ops o "
                     "JOIN engage_redemptions r ON r.op_key = o.key WHERE r.tool_id = :t ORDER BY o.key"),
            "red": q("SELECT op_key, user_id, grant_id, order_id, quantity, amount_cents, status, detail::text, at, "
                     "matures_at, settled_at, converted_at FROM engage_redemptions WHERE tool_id = :t "
                     "ORDER BY op_key"),
            "legs": q("SELECT op_key, kind, account, asset, amount, at, count(*) OVER (PARTITION BY tx_id) "
                      "FROM engage_ledger WHERE tool_id = :t ORDER BY op_key, id"),
            "outbox": q("SELECT event, user_id, ts, properties::jsonb - 'redemption_id', sent_at FROM engage_outbox "
                        "WHERE properties::jsonb->>'tool_id' = :t ORDER BY id"),
            "counts": q("SELECT user_id, taken FROM engage_user_counts WHERE tool_id = :t ORDER BY user_id"),
            "shards": q('SELECT sum("left"), sum(budget_left_cents), sum(used_cents), sum(sold) '
                        "FROM engage_tool_shards WHERE tool_id = :t"),
        }
    return json.dumps(out, default=str, sort_keys=True).replace(tid, "T")


def script(url: str, tid: str, tag: str) -> list[Any]:
    """The same sequence of requests for one tool: sales, a replay, the user limit, a sell-out."""
    answers: list[Any] = []

    def go(key: str, user: str, quantity: int = 1) -> None:
        req = RedeemRequest(key=f"{tag}:{key}", tool_id=tid, user_id=user, quantity=quantity, at=AT)
        try:
            r = S.redeem(url, req)
            answers.append(("ok", r.model_dump(exclude={"redemption_id", "tool_id"})))
        except YunyingError as e:
            answers.append(("err", e.key))

    go("a", "u1")
    go("b", "u1", 2)
    go("a", "u1")  # replay
    go("c", "u1")  # limit 3 reached
    go("d", "u2", 4)  # more than the limit at once
    for i in range(5):
        go(f"e{i}", f"v{i}")
    go("f", "u3", 3)  # 8 of 10 sold: only 2 left
    go("g", "u3", 2)
    go("h", "u4")  # sold out
    return answers


@pytest.mark.parametrize("shards", [1, 4])
def test_fast_path_matches_generic_path(pg_url: str, shards: int, monkeypatch: pytest.MonkeyPatch) -> None:
    migrate(pg_url)
    used: list[bool] = []
    real: Callable[..., Any] = S._redeem_fast

    def spy(*a: Any) -> Any:
        r = real(*a)
        used.append(r is not None)
        return r

    monkeypatch.setattr(S, "_redeem_fast", spy)
    out = {}
    for fast in (True, False):
        monkeypatch.setattr(S, "FAST_PATH", fast)
        tid = uid(f"fs{int(fast)}")
        S.create_tool(pg_url, ToolSpec(
            id=tid, kind="flash_sale", name="秒杀", starts_at=T0, ends_at=T0.replace(year=2030), campaign_id="c",
            rules={"price": "5", "list_price": "10"}, stock=10, budget=Decimal("500"), per_user_limit=3,
            shards=shards,
        ))
        answers = script(pg_url, tid, tid)
        out[fast] = (answers, books(pg_url, tid))
        if fast:
            # Every sale went through the function, refusals and the replay did not; with shards
            # the last sale may find its 2 units on two shards: the generic path merges them.
            assert sum(used) == 8 if shards == 1 else 7 <= sum(used) <= 8
            used.clear()
        else:
            assert not any(used)
    (fast_answers, fast_books), (slow_answers, slow_books) = out[True], out[False]
    assert fast_answers == slow_answers
    assert [a for a, _ in fast_answers].count("ok") == 9  # 8 sales and the replay
    assert fast_books == slow_books
    assert '"T:a"' in fast_books and "stock:T" in fast_books  # the books hold what was compared
    assert S.check_ledger(pg_url).unbalanced == []


def test_fast_path_leaves_rule_errors_and_grant_kinds_to_the_generic_path(pg_url: str) -> None:
    migrate(pg_url)
    t = S.create_tool(pg_url, spec("privileged", {"price": "1", "list_price": "3"}, stock=5, segment="vip"))
    req = RedeemRequest(key=uid("k"), tool_id=t.id, user_id="x", at=AT)
    # Not eligible: the function is not called, the generic path gives the rule's error.
    assert S._redeem_fast(pg_url, req, AT, S.StaticEligibility(members={"vip": set()})) is None
    with pytest.raises(YunyingError) as e:
        S.redeem(pg_url, req, S.StaticEligibility(members={"vip": set()}))
    assert e.value.key == "engage.not_eligible_segment"
    r = S.redeem(pg_url, req, S.StaticEligibility(members={"vip": {"x"}}))
    assert r.amount == Decimal("2.00") and not r.replayed
    again = S.redeem(pg_url, req, S.StaticEligibility(members={"vip": {"x"}}))
    assert again.replayed and again.redemption_id == r.redemption_id
    # A kind redeemed against a grant never takes the fast path.
    v = S.create_tool(pg_url, spec("voucher", {"amount": "5"}))
    assert S._redeem_fast(pg_url, RedeemRequest(key=uid("k"), tool_id=v.id, user_id="x", at=AT), AT, None) is None
