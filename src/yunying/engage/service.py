"""The incentive-tool service: create, issue, validate, redeem, roll back, settle.

Every act is one database transaction that (1) claims the client's idempotency key in
``engage_ops`` (a unique key: a concurrent replay waits, then reads the stored result),
(2) applies the rules, (3) writes the ledger and the outbox, and (4) last, takes stock and
budget with one conditional ``UPDATE … WHERE stock >= q AND budget_used + c <= budget``
on the tool's row, so the hot row is locked only for the end of the transaction.
Correctness under concurrency comes from the database, never from Python locks.
A failed act (sold out, limit reached…) rolls back entirely and stores nothing: the same
key may be tried again. Times are naive UTC, truncated to the second.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from functools import cache
from typing import Any, Protocol, cast

from sqlalchemy import Engine, create_engine, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from yunying import clock
from yunying.appdb import session_scope
from yunying.engage import codes as codes_mod
from yunying.engage.campaign_models import CampaignRow, assignment_group
from yunying.engage.ledger import (
    balanced,
    balances,
    emit,
    event_props,
    move,
    rc,
    transfer,
    unbalanced,
)
from yunying.engage.models import (
    Code,
    Grant,
    LedgerEntry,
    Op,
    OrderTool,
    Prize,
    Redemption,
    Tool,
    ToolShard,
    UserCount,
)
from yunying.engage.rules import (
    DEFERRED_KINDS,
    GRANT_KINDS,
    DiscountRules,
    LotteryRules,
    PriceRules,
    RateBoostRules,
    TrialClassRules,
    TrialCreditRules,
    draw,
    from_cents,
    in_window,
    parse_rules,
    to_cents,
)
from yunying.engage.schemas import (
    CodeList,
    CodeRow,
    CodesResult,
    ConvertRequest,
    ConvertResult,
    IssueRequest,
    IssueResult,
    LedgerCheck,
    Quote,
    RedeemRequest,
    RedeemResult,
    RollbackRequest,
    RollbackResult,
    SettleResult,
    ToolList,
    ToolOut,
    ToolSpec,
)
from yunying.errors import YunyingError

REDEEM_EVENTS = {
    "voucher": "coupon_redeemed",
    "cashback": "cashback_credited",
    "trial_credit": "coupon_redeemed",
    "trial_class": "coupon_redeemed",
    "rate_boost": "coupon_redeemed",
    "flash_sale": "flash_sale_purchased",
    "privileged": "privileged_offer_taken",
    "lottery": "lottery_draw",
}


def now() -> dt.datetime:
    return clock.now().replace(microsecond=0)


def as_utc(at: dt.datetime | None) -> dt.datetime:
    """Naive UTC at the second: aware times are converted, fractions of a second dropped."""
    if at is None:
        return now()
    if at.tzinfo is not None:
        at = at.astimezone(dt.UTC).replace(tzinfo=None)
    return at.replace(microsecond=0)


# -- eligibility --------------------------------------------------------------------------


class Eligibility(Protocol):
    """What the segments module answers: membership and when a user was first seen."""

    def is_member(self, segment: str, user_id: str) -> bool: ...

    def first_seen(self, user_id: str) -> dt.datetime | None: ...


@dataclass
class StaticEligibility:
    """Eligibility from in-memory data: segment → user ids (or a predicate), first-seen times."""

    members: Mapping[str, Collection[str] | Callable[[str], bool]] = field(default_factory=dict)
    first_seen_at: Mapping[str, dt.datetime] = field(default_factory=dict)

    def is_member(self, segment: str, user_id: str) -> bool:
        m = self.members.get(segment)
        if m is None:
            return False
        return bool(m(user_id)) if callable(m) else user_id in m

    def first_seen(self, user_id: str) -> dt.datetime | None:
        return self.first_seen_at.get(user_id)


def _check_eligible(pol: dict[str, Any], user_id: str, at: dt.datetime, elig: Eligibility | None) -> None:
    segment = pol.get("segment")
    days = pol.get("new_user_days")
    if (segment or days) and elig is None:
        raise YunyingError("engage.eligibility_unknown", user=user_id)
    if segment:
        assert elig is not None
        if not elig.is_member(segment, user_id):
            raise YunyingError("engage.not_eligible_segment", user=user_id, segment=segment)
    if days:
        assert elig is not None
        first = elig.first_seen(user_id)
        if first is None or not (first <= at < first + dt.timedelta(days=int(days))):
            raise YunyingError("engage.not_new_user", user=user_id, days=days)


# -- tools --------------------------------------------------------------------------------


@dataclass
class _Totals:
    left: int | None
    budget_left: int | None
    used: int
    sold: int


_HOLDOUT_CACHE: dict[tuple[str, str], tuple[float, tuple[str, float] | None]] = {}


def _campaign_holdout(url: str, s: Session | None, campaign_id: str) -> tuple[str, float] | None:
    """(salt, holdout share) of a tool's campaign; a campaign's salt and share never change,
    so a found one is cached for good and a missing one re-read after a few seconds."""
    key = (url, campaign_id)
    hit = _HOLDOUT_CACHE.get(key)
    now_s = time.monotonic()
    if hit is not None and (hit[1] is not None or now_s - hit[0] < 5.0):
        return hit[1]
    if s is not None:
        row = s.get(CampaignRow, campaign_id)
    else:
        with session_scope(url) as own:
            row = own.get(CampaignRow, campaign_id)
    value = (row.salt, float(row.holdout_share)) if row is not None else None
    _HOLDOUT_CACHE[key] = (now_s, value)
    return value


def _check_not_holdout(url: str, s: Session | None, tool: Tool, user_id: str) -> None:
    """A campaign's holdout group (对照组) gets nothing, or its lift could not be measured."""
    if not tool.campaign_id:
        return
    hp = _campaign_holdout(url, s, tool.campaign_id)
    if hp is not None and hp[1] > 0 and assignment_group(hp[0], hp[1], user_id) == "holdout":
        raise YunyingError("engage.holdout", user=user_id, campaign=tool.campaign_id, tool=tool.id)


def _totals(s: Session, tool_id: str) -> _Totals:
    """Sum of the shards: what is left of stock and budget, what was used and sold."""
    row = s.execute(
        select(
            func.count(),
            func.count(ToolShard.left),
            func.sum(ToolShard.left),
            func.count(ToolShard.budget_left_cents),
            func.sum(ToolShard.budget_left_cents),
            func.sum(ToolShard.used_cents),
            func.sum(ToolShard.sold),
        ).where(ToolShard.tool_id == tool_id)
    ).one()
    n, n_left, left, n_budget, budget_left, used, sold = row
    return _Totals(
        left=int(left or 0) if n_left and n_left == n else None,
        budget_left=int(budget_left or 0) if n_budget and n_budget == n else None,
        used=int(used or 0),
        sold=int(sold or 0),
    )


def _tool_out(s: Session, t: Tool) -> ToolOut:
    tot = _totals(s, t.id)
    return ToolOut(
        id=t.id,
        kind=t.kind,
        name=t.name,
        campaign_id=t.campaign_id,
        starts_at=t.starts_at,
        ends_at=t.ends_at,
        per_user_limit=t.per_user_limit,
        total_limit=t.total_limit,
        issued=t.issued,
        budget=None if t.budget_cents is None else from_cents(t.budget_cents),
        budget_used=from_cents(tot.used),
        stock=tot.left,
        sold=tot.sold,
        shards=t.shards,
        rules=t.rules,
    )


def _split(total: int | None, n: int) -> list[int | None]:
    if total is None:
        return [None] * n
    return [total // n + (1 if i < total % n else 0) for i in range(n)]


def create_tool(url: str, spec: ToolSpec) -> ToolOut:
    """Create a tool; rules are validated for its kind, times become naive UTC seconds."""
    rules = parse_rules(spec.kind, spec.rules)
    starts, ends = as_utc(spec.starts_at), as_utc(spec.ends_at)
    if ends <= starts:
        raise YunyingError("engage.bad_window", starts=str(starts), ends=str(ends))
    if spec.kind == "privileged" and not (spec.segment or spec.new_user_days):
        raise YunyingError("engage.privileged_needs_rule")
    if spec.kind in ("flash_sale", "privileged") and spec.stock is None:
        raise YunyingError("engage.needs_stock", kind=spec.kind)
    stock = spec.stock
    if spec.kind not in GRANT_KINDS and spec.total_limit is not None:
        # For tools taken directly, the total limit caps units like a stock does.
        stock = spec.total_limit if stock is None else min(stock, spec.total_limit)
    shards = max(1, min(spec.shards, stock)) if stock else spec.shards
    policy = {
        "rules": rules.model_dump(mode="json"),
        "segment": spec.segment,
        "new_user_days": spec.new_user_days,
        "exclusive": spec.exclusive,
        "stack_group": spec.stack_group,
        "requires_code": spec.requires_code,
    }
    tool = Tool(
        id=spec.id,
        kind=spec.kind,
        name=spec.name,
        campaign_id=spec.campaign_id,
        rules=policy,
        starts_at=starts,
        ends_at=ends,
        per_user_limit=spec.per_user_limit,
        total_limit=spec.total_limit,
        issued=0,
        budget_cents=None if spec.budget is None else to_cents(spec.budget),
        stock=stock,
        shards=shards,
        shared_code=spec.shared_code,
        created_at=now(),
    )
    try:
        with session_scope(url) as s:
            s.add(tool)
            budget = None if spec.budget is None else to_cents(spec.budget)
            for i, (left, bleft) in enumerate(zip(_split(stock, shards), _split(budget, shards), strict=True)):
                s.add(ToolShard(tool_id=spec.id, shard=i, left=left, budget_left_cents=bleft, used_cents=0, sold=0))
            if isinstance(rules, LotteryRules):
                for p in rules.prizes:
                    s.add(
                        Prize(
                            tool_id=spec.id,
                            prize_id=p.id,
                            name=p.name,
                            weight=p.weight,
                            stock=p.stock,
                            value_cents=to_cents(p.value),
                        )
                    )
    except IntegrityError as e:
        raise YunyingError("engage.tool_exists", tool=spec.id) from e
    return get_tool(url, spec.id)


def _load_tool(s: Session, tool_id: str) -> Tool:
    t = s.get(Tool, tool_id)
    if t is None:
        raise YunyingError("engage.unknown_tool", tool=tool_id)
    return t


# A tool's definition never changes after creation (only its shards, counters and codes
# do), so the hot redemption path keeps a per-process copy and skips one query.
_TOOL_CACHE: dict[tuple[str, str], Tool] = {}


def _tool_def(s: Session, tool_id: str) -> Tool:
    key = (str(s.get_bind().engine.url), tool_id)
    t = _TOOL_CACHE.get(key)
    if t is None:
        t = _load_tool(s, tool_id)
        s.expunge(t)
        if len(_TOOL_CACHE) > 10_000:
            _TOOL_CACHE.clear()
        _TOOL_CACHE[key] = t
    return t


def get_tool(url: str, tool_id: str) -> ToolOut:
    with session_scope(url) as s:
        return _tool_out(s, _load_tool(s, tool_id))


def list_tools(url: str, campaign_id: str | None = None) -> ToolList:
    with session_scope(url) as s:
        q = select(Tool).order_by(Tool.created_at, Tool.id)
        if campaign_id:
            q = q.where(Tool.campaign_id == campaign_id)
        return ToolList(tools=[_tool_out(s, t) for t in list(s.scalars(q))])


def generate_codes(url: str, tool_id: str, n: int, show: bool = False) -> CodesResult:
    """Create ``n`` unique one-time codes for a tool (bulk insert, collisions topped up)."""
    if n <= 0 or n > 10_000_000:
        raise YunyingError("engage.bad_count", n=n)
    created = 0
    shown: list[str] = []
    with session_scope(url) as s:
        _load_tool(s, tool_id)
        conn = s.connection()
        while created < n:
            batch = codes_mod.generate(min(n - created, 1_000_000))
            got = codes_mod.bulk_insert(conn, tool_id, batch)
            created += got
            if show:
                shown.extend(batch[:got] if got == len(batch) else [])
    if show and len(shown) < n:
        with session_scope(url) as s:
            shown = list(
                s.scalars(select(Code.code).where(Code.tool_id == tool_id, Code.user_id.is_(None)).limit(n))
            )
    return CodesResult(tool_id=tool_id, created=created, codes=shown)


def list_codes(url: str, tool_id: str, offset: int = 0, limit: int = 100, unused: bool = False) -> CodeList:
    """A page of a tool's codes, sorted, with the totals; ``unused`` keeps unclaimed ones."""
    with session_scope(url) as s:
        _load_tool(s, tool_id)
        total = s.scalar(select(func.count()).select_from(Code).where(Code.tool_id == tool_id)) or 0
        free = s.scalar(
            select(func.count()).select_from(Code).where(Code.tool_id == tool_id, Code.user_id.is_(None))
        ) or 0
        q = select(Code).where(Code.tool_id == tool_id)
        if unused:
            q = q.where(Code.user_id.is_(None))
        rows = [
            CodeRow(code=c.code, user_id=c.user_id, claimed_at=c.claimed_at)
            for c in s.scalars(q.order_by(Code.code).offset(offset).limit(limit))
        ]
    return CodeList(tool_id=tool_id, total=total, unused=free, offset=offset, codes=rows)


# -- idempotency --------------------------------------------------------------------------


def _stored(s: Session, key: str, kind: str) -> dict[str, Any] | None:
    row = s.execute(select(Op.kind, Op.result).where(Op.key == key)).first()
    if row is None:
        return None
    if row[0] != kind:
        raise YunyingError("engage.key_reused", ikey=key, kind=row[0])
    return dict(row[1])


def _claim(s: Session, key: str, kind: str, result: dict[str, Any], at: dt.datetime) -> None:
    s.execute(insert(Op).values(key=key, kind=kind, result=result, at=at))


RETRY_SQLSTATES = {"40P01", "40001"}  # deadlock detected, serialization failure


def _idempotent(
    url: str, key: str, kind: str, act: Callable[[Session], dict[str, Any]], conflict: str
) -> tuple[dict[str, Any], bool]:
    """Run ``act`` once per key; a replay (or a racing duplicate) gets the stored result.

    The stored result is looked up only when the act fails (a unique-key violation or a
    rule error), which keeps the common path to one transaction. A transaction the
    server aborted as a deadlock victim rolled back entirely and is simply run again.
    """
    for attempt in range(5):
        try:
            with session_scope(url) as s:
                return act(s), False
        except YunyingError:
            with session_scope(url) as s:
                done = _stored(s, key, kind)
            if done is not None:
                return done, True
            raise
        except IntegrityError as e:
            with session_scope(url) as s:
                done = _stored(s, key, kind)
            if done is not None:
                return done, True
            raise YunyingError(conflict, ikey=key) from e
        except DBAPIError as e:
            if getattr(e.orig, "sqlstate", None) not in RETRY_SQLSTATES:
                raise
            if attempt == 4:
                raise YunyingError("engage.busy", tool=kind) from e
    raise AssertionError("unreachable")


def _bump_user(s: Session, tool: Tool, user_id: str, q: int) -> None:
    """Per-user limit as one conditional upsert: ``taken + q <= limit`` or nothing."""
    limit = tool.per_user_limit
    if limit is None:
        return
    if q > limit:
        raise YunyingError("engage.user_limit", user=user_id, limit=limit)
    ins = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = (
        ins(UserCount)
        .values(tool_id=tool.id, user_id=user_id, taken=q)
        .on_conflict_do_update(
            index_elements=[UserCount.tool_id, UserCount.user_id],
            set_={"taken": UserCount.taken + q},
            where=UserCount.taken + q <= limit,
        )
        .returning(UserCount.taken)
    )
    if s.execute(stmt).first() is None:
        raise YunyingError("engage.user_limit", user=user_id, limit=limit)


# -- issue --------------------------------------------------------------------------------


def _check_open(tool: Tool, at: dt.datetime) -> None:
    if not in_window(tool.starts_at, tool.ends_at, at):
        raise YunyingError(
            "engage.outside_window", tool=tool.id, at=str(at), starts=str(tool.starts_at), ends=str(tool.ends_at)
        )


def issue(url: str, req: IssueRequest, elig: Eligibility | None = None) -> IssueResult:
    """Give a coupon-like tool to a user (optionally against a one-time or shared code)."""
    at = as_utc(req.at)

    def act(s: Session) -> dict[str, Any]:
        tool = _load_tool(s, req.tool_id)
        if tool.kind not in GRANT_KINDS:
            raise YunyingError("engage.not_issuable", tool=tool.id, kind=tool.kind)
        _check_open(tool, at)
        _check_eligible(tool.rules, req.user_id, at, elig)
        _check_not_holdout(url, s, tool, req.user_id)
        grant_id = str(uuid.uuid4())
        code = None
        if req.code is not None:
            if tool.shared_code is not None and req.code == tool.shared_code:
                code = req.code
            else:
                code = codes_mod.normalize(req.code)
                if not codes_mod.well_formed(code):
                    raise YunyingError("engage.code_invalid", code=req.code)
        elif tool.rules.get("requires_code"):
            raise YunyingError("engage.code_required", tool=tool.id)
        result = IssueResult(
            grant_id=grant_id, tool_id=tool.id, user_id=req.user_id, code=code, issued_at=at
        ).model_dump(mode="json")
        _claim(s, req.key, "issue", result, at)
        if code is not None and code != tool.shared_code:
            claimed = s.execute(
                update(Code)
                .where(Code.code == code, Code.tool_id == tool.id, Code.user_id.is_(None))
                .values(user_id=req.user_id, claimed_at=at)
            )
            if rc(claimed) != 1:
                raise YunyingError("engage.code_invalid", code=req.code)
        _bump_user(s, tool, req.user_id, 1)
        s.execute(
            insert(Grant).values(
                id=grant_id, tool_id=tool.id, user_id=req.user_id, code=code, status="issued", issued_at=at
            )
        )
        emit(s, "coupon_issued", req.user_id, at, tool_id=tool.id, campaign_id=tool.campaign_id,
             kind=tool.kind, grant_id=grant_id)
        took = s.execute(
            update(Tool)
            .where(Tool.id == tool.id)
            .where((Tool.total_limit.is_(None)) | (Tool.issued < Tool.total_limit))
            .values(issued=Tool.issued + 1)
        )
        if rc(took) != 1:
            raise YunyingError("engage.total_limit", tool=tool.id, limit=tool.total_limit)
        return result

    data, replayed = _idempotent(url, req.key, "issue", act, "engage.conflict")
    return IssueResult.model_validate({**data, "replayed": replayed})


# -- redeem -------------------------------------------------------------------------------


@dataclass
class _Plan:
    """What a redemption does, computed from the rules before anything is written."""

    amount_cents: int
    quantity: int
    detail: dict[str, Any]
    matures_at: dt.datetime | None = None


def _grant_for(s: Session, tool: Tool, req: RedeemRequest) -> Grant:
    if req.grant_id is None:
        raise YunyingError("engage.grant_required", tool=tool.id)
    g = s.get(Grant, req.grant_id)
    if g is None or g.tool_id != tool.id or g.user_id != req.user_id:
        raise YunyingError("engage.grant_unknown", grant=req.grant_id)
    if g.status != "issued":
        raise YunyingError("engage.grant_used", grant=req.grant_id, status=g.status)
    return g


def _plan(
    s: Session | None, tool: Tool, req: RedeemRequest, at: dt.datetime, elig: Eligibility | None
) -> _Plan:
    """Check the common and per-tool rules (read-only) and compute amount and quantity.

    ``s`` is needed only for the kinds redeemed against a grant (``GRANT_KINDS``)."""
    _check_open(tool, at)
    _check_eligible(tool.rules, req.user_id, at, elig)
    rules = parse_rules(tool.kind, tool.rules["rules"])
    if tool.kind in GRANT_KINDS:
        assert s is not None
        _grant_for(s, tool, req)
    q = 1
    if isinstance(rules, DiscountRules):
        if req.order is None:
            raise YunyingError("engage.order_required", tool=tool.id)
        return _Plan(to_cents(rules.value(req.order)), 1, {})
    if isinstance(rules, TrialCreditRules):
        return _Plan(
            to_cents(rules.payout()), 1, {"principal": str(rules.principal)}, at + dt.timedelta(days=rules.term_days)
        )
    if isinstance(rules, RateBoostRules):
        if req.principal is None:
            raise YunyingError("engage.principal_required", tool=tool.id)
        return _Plan(
            to_cents(rules.payout(req.principal)),
            1,
            {"principal": str(req.principal)},
            at + dt.timedelta(days=rules.days),
        )
    if isinstance(rules, TrialClassRules):
        return _Plan(to_cents(rules.session_cost), 1, {})
    if isinstance(rules, PriceRules):
        q = req.quantity
        return _Plan(to_cents(rules.subsidy(q)), q, {"price": str(rules.price)})
    return _Plan(0, 1, {})  # lottery: decided under the prize locks


def _check_capacity(s: Session, tool: Tool, plan: _Plan) -> None:
    """Read-only version of the final conditional update, for ``validate`` and error reasons."""
    tot = _totals(s, tool.id)
    if tot.left is not None and tot.left < plan.quantity:
        if tool.kind not in GRANT_KINDS and tool.total_limit is not None and tool.stock == tool.total_limit:
            raise YunyingError("engage.total_limit", tool=tool.id, limit=tool.total_limit)
        raise YunyingError("engage.sold_out", tool=tool.id)
    if tot.budget_left is not None and tot.budget_left < plan.amount_cents:
        raise YunyingError("engage.budget_exhausted", tool=tool.id)


class _Miss(Exception):
    """The chosen shard could not serve (internal to ``_take``)."""


def _take(s: Session, tool: Tool, q: int, cents: int) -> bool:
    """Take ``q`` units and ``cents`` of budget from one shard, by conditional ``UPDATE``.

    First a free shard (``SKIP LOCKED``), else a busy one that can serve (waiting); if no
    single shard can serve, lock all of the tool's shards in order and merge what is left
    into shard 0 before taking, so a request fails only when the totals are short.
    """
    cond = [ToolShard.tool_id == tool.id]
    if tool.stock is not None:
        cond.append(ToolShard.left >= q)
    if cents:
        cond.append(ToolShard.budget_left_cents.is_(None) | (ToolShard.budget_left_cents >= cents))
    vals = {
        "left": ToolShard.left - q,
        "budget_left_cents": ToolShard.budget_left_cents - cents,
        "used_cents": ToolShard.used_cents + cents,
        "sold": ToolShard.sold + q,
    }
    n = tool.shards
    if n == 1:
        return rc(s.execute(update(ToolShard).where(*cond, ToolShard.shard == 0).values(**vals))) == 1
    # Fast path: a random shard that can serve and that nobody holds (SKIP LOCKED never
    # waits, so it cannot join a deadlock); the chosen row is locked and current.
    pick = (
        select(ToolShard.shard)
        .where(*cond)
        .order_by(func.random())
        .limit(1)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    if rc(s.execute(update(ToolShard).where(ToolShard.tool_id == tool.id, ToolShard.shard == pick).values(**vals))):
        return True
    # Every serving shard is busy: wait for one of them (a deadlock this rarely causes
    # with the merge below is retried by ``_idempotent``).
    some = s.scalar(select(ToolShard.shard).where(*cond).order_by(func.random()).limit(1))
    if some is not None:
        # In a savepoint: a failed wait may leave the row locked; rolling back to the
        # savepoint drops that lock before the ordered merge below takes them all.
        try:
            with s.begin_nested():
                if not rc(s.execute(update(ToolShard).where(*cond, ToolShard.shard == some).values(**vals))):
                    raise _Miss
            return True
        except _Miss:
            pass
    if n == 1:
        return False
    rows = list(s.scalars(select(ToolShard).where(ToolShard.tool_id == tool.id).order_by(ToolShard.shard).with_for_update()))
    left = None if tool.stock is None else sum(int(r.left or 0) for r in rows)
    bleft = None if tool.budget_cents is None else sum(int(r.budget_left_cents or 0) for r in rows)
    if (left is not None and left < q) or (bleft is not None and bleft < cents):
        return False
    for r in rows:
        s.execute(
            update(ToolShard)
            .where(ToolShard.tool_id == tool.id, ToolShard.shard == r.shard)
            .values(left=left if r.shard == 0 else (None if left is None else 0),
                    budget_left_cents=bleft if r.shard == 0 else (None if bleft is None else 0))
        )
    return rc(s.execute(update(ToolShard).where(*cond, ToolShard.shard == 0).values(**vals))) == 1


def validate(url: str, req: RedeemRequest, elig: Eligibility | None = None) -> Quote:
    """Would this redemption succeed now, and for how much? Changes nothing."""
    at = as_utc(req.at)
    try:
        with session_scope(url) as s:
            tool = _load_tool(s, req.tool_id)
            plan = _plan(s, tool, req, at, elig)
            _check_capacity(s, tool, plan)
            if tool.per_user_limit is not None and tool.kind not in GRANT_KINDS:
                taken = s.scalar(
                    select(UserCount.taken).where(UserCount.tool_id == tool.id, UserCount.user_id == req.user_id)
                )
                if (taken or 0) + plan.quantity > tool.per_user_limit:
                    raise YunyingError("engage.user_limit", user=req.user_id, limit=tool.per_user_limit)
            amount = None if tool.kind == "lottery" else from_cents(plan.amount_cents)
            return Quote(ok=True, reason=None, amount=amount)
    except YunyingError as e:
        return Quote(ok=False, reason=e.message(), amount=None)


def _stack(s: Session, tool: Tool, order_id: str, redemption_id: str) -> None:
    """Stacking: one tool per stack group per order; an exclusive tool stands alone."""
    exclusive = bool(tool.rules.get("exclusive"))
    existing = list(s.execute(select(OrderTool.tool_id, OrderTool.exclusive).where(OrderTool.order_id == order_id)))
    if existing and (exclusive or any(x for _, x in existing)):
        raise YunyingError("engage.not_stackable", tool=tool.id, order=order_id, other=existing[0][0])
    group = tool.rules.get("stack_group") or f"tool:{tool.id}"
    s.execute(
        insert(OrderTool).values(
            order_id=order_id, group_key=group, tool_id=tool.id, redemption_id=redemption_id, exclusive=exclusive
        )
    )


def _draw_prize(s: Session, tool: Tool, rules: LotteryRules) -> tuple[int, list[tuple[str, int]], Prize | None]:
    """Lock the tool's prizes (PostgreSQL ``FOR UPDATE``), draw with a fresh recorded seed."""
    prizes = list(
        s.scalars(
            select(Prize).where(Prize.tool_id == tool.id).order_by(Prize.prize_id).with_for_update()
        )
    )
    left = _totals(s, tool.id).budget_left
    candidates = [(p.prize_id, p.weight) for p in prizes if p.stock > 0 and (left is None or p.value_cents <= left)]
    seed = secrets.randbits(63)
    won = draw(seed, candidates, rules.no_win_weight)
    prize = next((p for p in prizes if p.prize_id == won), None)
    if prize is not None:
        took = s.execute(
            update(Prize)
            .where(Prize.tool_id == tool.id, Prize.prize_id == prize.prize_id, Prize.stock > 0)
            .values(stock=Prize.stock - 1)
        )
        if rc(took) != 1:
            raise YunyingError("engage.busy", tool=tool.id)
    return seed, candidates, prize


# -- redeem: the one-statement PostgreSQL path ---------------------------------------------

# Off only to compare with the generic path (tests) or to rule it out when investigating.
FAST_PATH = True
_FAST_SQL = (
    "SELECT engage_redeem_fast(%s::text, %s::json, %s::timestamp, %s::text, %s::text, %s::bigint, %s::bigint,"
    " %s::bigint, %s::boolean, %s::integer, %s::text, %s::json, %s::timestamp, %s::text, %s::text[], %s::text[],"
    " %s::bigint[], %s::text, %s::json)"
)
_FAST_TOOLS: dict[tuple[str, str], Tool] = {}
_NO_FAST: set[str] = set()  # URLs whose database lacks the function (not migrated to engage_0002)


@cache
def _fast_engine(url: str) -> Engine:
    """An autocommit pool for the one-statement path, without a ping per checkout: a broken
    connection is invalidated and that redemption runs on the generic path. It keeps up to
    100 connections open: opening a PostgreSQL connection (a server process) per redemption
    costs more than the redemption itself, which is what a small pool under many clients does."""
    return create_engine(url, pool_size=100, max_overflow=150, isolation_level="AUTOCOMMIT")


def _fast_tool(url: str, tool_id: str) -> Tool | None:
    key = (url, tool_id)
    tool = _FAST_TOOLS.get(key)
    if tool is None:
        try:
            with session_scope(url) as s:
                tool = _tool_def(s, tool_id)
        except YunyingError:
            return None
        if len(_FAST_TOOLS) > 10_000:
            _FAST_TOOLS.clear()
        _FAST_TOOLS[key] = tool
    return tool


def _redeem_fast(url: str, req: RedeemRequest, at: dt.datetime, elig: Eligibility | None) -> RedeemResult | None:
    """The whole redemption of a directly taken tool (flash sale, privileged offer) as one
    call of the ``engage_redeem_fast`` function (one round trip, its own transaction).

    Returns ``None`` whenever the generic path must answer instead: another dialect, a kind
    with grants, orders or draws, a rule error, a key already used (replay), the per-user
    limit reached, no single shard able to serve, any database error. The function writes
    nothing in those cases (its statement aborts), so the generic path starts clean."""
    if not FAST_PATH or req.order is not None or not url.startswith("postgresql+psycopg:") or url in _NO_FAST:
        return None
    tool = _fast_tool(url, req.tool_id)
    if tool is None or tool.kind in GRANT_KINDS or tool.kind == "lottery":
        return None
    try:
        _check_not_holdout(url, None, tool, req.user_id)
        plan = _plan(None, tool, req, at, elig)
    except YunyingError:
        return None
    limit = tool.per_user_limit
    if limit is not None and plan.quantity > limit:
        return None
    rid = str(uuid.uuid4())
    result = RedeemResult(
        redemption_id=rid,
        tool_id=tool.id,
        kind=tool.kind,
        user_id=req.user_id,
        order_id=None,
        quantity=plan.quantity,
        amount=from_cents(plan.amount_cents),
        matures_at=plan.matures_at,
        at=at,
    )
    out = result.model_dump(mode="json")
    legs = []
    if tool.kind in ("flash_sale", "privileged"):
        legs += move(f"stock:{tool.id}", f"user:{req.user_id}", "unit", plan.quantity)
    if tool.kind not in DEFERRED_KINDS:
        legs += move(f"budget:{tool.id}", f"user:{req.user_id}", "money", plan.amount_cents)
    legs = balanced("redeem", legs)
    props = event_props(
        {
            "tool_id": tool.id,
            "campaign_id": tool.campaign_id,
            "kind": tool.kind,
            "redemption_id": rid,
            "order_id": None,
            "amount": result.amount,
            "quantity": plan.quantity,
            "prize_id": None,
            "seed": None,
        }
    )
    params = (
        req.key, json.dumps(out), at, tool.id, req.user_id, limit, plan.quantity, plan.amount_cents,
        tool.stock is not None, tool.shards, rid, json.dumps(plan.detail), plan.matures_at,
        str(uuid.uuid4()), [a for a, _, _ in legs], [a for _, a, _ in legs], [n for _, _, n in legs],
        REDEEM_EVENTS[tool.kind], json.dumps(props),
    )
    import psycopg  # PostgreSQL only: SQLite projects never load it

    try:
        raw = _fast_engine(url).raw_connection()
    except DBAPIError:
        return None
    try:
        conn = cast("psycopg.Connection[Any]", raw.driver_connection)
        try:
            row = conn.execute(_FAST_SQL, params, prepare=True).fetchone()
        except psycopg.Error as e:
            if e.sqlstate == "42883":  # undefined function: not migrated yet
                _NO_FAST.add(url)
            if conn.broken or conn.closed:
                raw.invalidate()
            return None
    finally:
        raw.close()
    if row is None or not row[0]:
        return None  # the key exists: the generic path answers the stored result
    return RedeemResult.model_validate({**out, "replayed": False})


def redeem(url: str, req: RedeemRequest, elig: Eligibility | None = None) -> RedeemResult:
    """Redeem (use a coupon, buy in a flash sale, draw…) exactly once per idempotency key.

    On PostgreSQL a directly taken tool is redeemed by one function call when it can be
    served at once (``_redeem_fast``); every other case, and every refusal, runs the
    generic transaction below, which has the last word."""
    at = as_utc(req.at)
    fast = _redeem_fast(url, req, at, elig)
    if fast is not None:
        return fast

    def act(s: Session) -> dict[str, Any]:
        tool = _tool_def(s, req.tool_id)
        _check_not_holdout(url, s, tool, req.user_id)
        plan = _plan(s, tool, req, at, elig)
        rid = str(uuid.uuid4())
        order_id = req.order.order_id if req.order is not None else None
        result = RedeemResult(
            redemption_id=rid,
            tool_id=tool.id,
            kind=tool.kind,
            user_id=req.user_id,
            order_id=order_id,
            quantity=plan.quantity,
            amount=from_cents(plan.amount_cents),
            matures_at=plan.matures_at,
            at=at,
        )
        lottery = tool.kind == "lottery"
        _claim(s, req.key, "redeem", {} if lottery else result.model_dump(mode="json"), at)
        if tool.kind in GRANT_KINDS:
            used = s.execute(
                update(Grant)
                .where(Grant.id == req.grant_id, Grant.status == "issued")
                .values(status="redeemed")
            )
            if rc(used) != 1:
                raise YunyingError("engage.grant_used", grant=req.grant_id, status="redeemed")
        else:
            _bump_user(s, tool, req.user_id, plan.quantity)
        if order_id is not None:
            _stack(s, tool, order_id, rid)
        legs = []
        if lottery:
            rules = parse_rules(tool.kind, tool.rules["rules"])
            assert isinstance(rules, LotteryRules)
            seed, candidates, prize = _draw_prize(s, tool, rules)
            result.seed = seed
            plan.detail = {"seed": seed, "candidates": candidates, "no_win_weight": rules.no_win_weight}
            if prize is not None:
                result.prize_id = prize.prize_id
                result.amount = from_cents(prize.value_cents)
                plan.amount_cents = prize.value_cents
                plan.detail["prize_id"] = prize.prize_id
                legs += move(f"stock:{tool.id}:{prize.prize_id}", f"user:{req.user_id}", "unit", 1)
        elif tool.kind in ("flash_sale", "privileged"):
            legs += move(f"stock:{tool.id}", f"user:{req.user_id}", "unit", plan.quantity)
        elif tool.kind == "trial_class" and tool.stock is not None:  # sessions from a stock
            legs += move(f"stock:{tool.id}", f"user:{req.user_id}", "unit", 1)
        if tool.kind not in DEFERRED_KINDS:
            legs += move(f"budget:{tool.id}", f"user:{req.user_id}", "money", plan.amount_cents)
        s.execute(
            insert(Redemption).values(
                id=rid,
                op_key=req.key,
                tool_id=tool.id,
                user_id=req.user_id,
                grant_id=req.grant_id if tool.kind in GRANT_KINDS else None,
                order_id=order_id,
                quantity=plan.quantity,
                amount_cents=plan.amount_cents,
                status="redeemed",
                detail=plan.detail,
                at=at,
                matures_at=plan.matures_at,
            )
        )
        transfer(s, req.key, "redeem", tool.id, legs, at)
        emit(
            s,
            REDEEM_EVENTS[tool.kind],
            req.user_id,
            at,
            tool_id=tool.id,
            campaign_id=tool.campaign_id,
            kind=tool.kind,
            redemption_id=rid,
            order_id=order_id,
            amount=result.amount,
            quantity=plan.quantity,
            prize_id=result.prize_id,
            seed=result.seed,
        )
        # Last: stock and budget by one conditional update of a shard (the hot rows).
        if not _take(s, tool, plan.quantity, plan.amount_cents):
            _check_capacity(s, tool, plan)
            raise YunyingError("engage.sold_out", tool=tool.id)
        out = result.model_dump(mode="json")
        if lottery:
            s.execute(update(Op).where(Op.key == req.key).values(result=out))
        return out

    data, replayed = _idempotent(url, req.key, "redeem", act, "engage.stack_conflict")
    return RedeemResult.model_validate({**data, "replayed": replayed})


# -- rollback, settle, convert ------------------------------------------------------------


def rollback(url: str, req: RollbackRequest) -> RollbackResult:
    """Undo a redemption (refund): reverse its ledger legs, give back stock, budget and coupon."""
    at = as_utc(req.at)

    def act(s: Session) -> dict[str, Any]:
        r = s.scalars(select(Redemption).where(Redemption.id == req.redemption_id).with_for_update()).first()
        if r is None:
            raise YunyingError("engage.unknown_redemption", redemption=req.redemption_id)
        if r.settled_at is not None:
            raise YunyingError("engage.already_settled", redemption=r.id)
        if r.status != "redeemed":
            raise YunyingError("engage.not_redeemed", redemption=r.id, status=r.status)
        tool = _load_tool(s, r.tool_id)
        result = RollbackResult(
            redemption_id=r.id,
            tool_id=r.tool_id,
            user_id=r.user_id,
            amount=from_cents(r.amount_cents),
            quantity=r.quantity,
            at=at,
        ).model_dump(mode="json")
        _claim(s, req.key, "rollback", result, at)
        done = s.execute(
            update(Redemption)
            .where(Redemption.id == r.id, Redemption.status == "redeemed", Redemption.settled_at.is_(None))
            .values(status="rolled_back")
        )
        if rc(done) != 1:
            raise YunyingError("engage.not_redeemed", redemption=r.id, status="rolled_back")
        legs = s.execute(
            select(LedgerEntry.account, LedgerEntry.asset, LedgerEntry.amount).where(
                LedgerEntry.op_key == r.op_key, LedgerEntry.kind == "redeem"
            )
        ).all()
        transfer(s, req.key, "rollback", tool.id, [(a, asset, -amt) for a, asset, amt in legs], at)
        # Stock and budget are fungible across shards: give them back to shard 0.
        s.execute(
            update(ToolShard)
            .where(ToolShard.tool_id == tool.id, ToolShard.shard == 0)
            .values(
                left=ToolShard.left + r.quantity,
                budget_left_cents=ToolShard.budget_left_cents + r.amount_cents,
                used_cents=ToolShard.used_cents - r.amount_cents,
                sold=ToolShard.sold - r.quantity,
            )
        )
        if r.grant_id is not None:
            s.execute(update(Grant).where(Grant.id == r.grant_id).values(status="issued"))
        elif tool.per_user_limit is not None:
            s.execute(
                update(UserCount)
                .where(UserCount.tool_id == tool.id, UserCount.user_id == r.user_id)
                .values(taken=UserCount.taken - r.quantity)
            )
        prize_id = r.detail.get("prize_id")
        if prize_id:
            s.execute(
                update(Prize).where(Prize.tool_id == tool.id, Prize.prize_id == prize_id).values(stock=Prize.stock + 1)
            )
        s.execute(delete(OrderTool).where(OrderTool.redemption_id == r.id))
        props = {"tool_id": tool.id, "campaign_id": tool.campaign_id, "kind": tool.kind, "redemption_id": r.id,
                 "order_id": r.order_id, "amount": from_cents(r.amount_cents), "quantity": r.quantity,
                 "reason": req.reason}
        emit(s, "coupon_rolled_back", r.user_id, at, **props)
        if tool.kind == "cashback":
            emit(s, "cashback_reversed", r.user_id, at, **props)
        return result

    data, replayed = _idempotent(url, req.key, "rollback", act, "engage.conflict")
    return RollbackResult.model_validate({**data, "replayed": replayed})


def settle(url: str, at: dt.datetime | None = None) -> SettleResult:
    """Pay the yields (体验金, 加息券) whose term has ended by ``at``; paying twice is impossible."""
    when = as_utc(at)
    n = 0
    paid = 0
    with session_scope(url) as s:
        due = s.execute(
            select(Redemption.id, Redemption.tool_id, Redemption.user_id, Redemption.amount_cents)
            .join(Tool, Tool.id == Redemption.tool_id)
            .where(
                Tool.kind.in_(sorted(DEFERRED_KINDS)),
                Redemption.status == "redeemed",
                Redemption.settled_at.is_(None),
                Redemption.matures_at <= when,
            )
            .order_by(Redemption.matures_at)
        ).all()
    for rid, tool_id, user_id, cents in due:
        with session_scope(url) as s:
            done = s.execute(
                update(Redemption)
                .where(Redemption.id == rid, Redemption.status == "redeemed", Redemption.settled_at.is_(None))
                .values(settled_at=when)
            )
            if rc(done) != 1:
                continue
            tool = _load_tool(s, tool_id)
            transfer(s, f"settle:{rid}", "settle", tool_id, move(f"budget:{tool_id}", f"user:{user_id}", "money", cents), when)
            emit(s, "yield_paid", user_id, when, tool_id=tool_id, campaign_id=tool.campaign_id, kind=tool.kind,
                 redemption_id=rid, amount=from_cents(cents))
            n += 1
            paid += cents
    return SettleResult(settled=n, paid=from_cents(paid))


def convert(url: str, req: ConvertRequest) -> ConvertResult:
    """体验课 conversion: the user bought the paid course within ``convert_days`` of the trial."""
    at = as_utc(req.at)

    def act(s: Session) -> dict[str, Any]:
        r = s.get(Redemption, req.redemption_id)
        if r is None:
            raise YunyingError("engage.unknown_redemption", redemption=req.redemption_id)
        tool = _load_tool(s, r.tool_id)
        rules = parse_rules(tool.kind, tool.rules["rules"])
        if not isinstance(rules, TrialClassRules):
            raise YunyingError("engage.not_trial_class", tool=tool.id)
        deadline = r.at + dt.timedelta(days=rules.convert_days)
        if not (r.at <= at < deadline):
            raise YunyingError("engage.convert_window", redemption=r.id, deadline=str(deadline))
        result = ConvertResult(redemption_id=r.id, order_id=req.order_id, at=at).model_dump(mode="json")
        _claim(s, req.key, "convert", result, at)
        done = s.execute(
            update(Redemption)
            .where(Redemption.id == r.id, Redemption.status == "redeemed", Redemption.converted_at.is_(None))
            .values(converted_at=at)
        )
        if rc(done) != 1:
            raise YunyingError("engage.already_converted", redemption=r.id)
        emit(s, "trial_converted", r.user_id, at, tool_id=tool.id, campaign_id=tool.campaign_id,
             kind=tool.kind, redemption_id=r.id, order_id=req.order_id)
        return result

    data, replayed = _idempotent(url, req.key, "convert", act, "engage.conflict")
    return ConvertResult.model_validate({**data, "replayed": replayed})


def redemption_count(url: str, tool_id: str) -> int:
    with session_scope(url) as s:
        return int(
            s.scalar(
                select(func.count()).select_from(Redemption).where(
                    Redemption.tool_id == tool_id, Redemption.status == "redeemed"
                )
            )
            or 0
        )


def replay_draw(detail: dict[str, Any]) -> str | None:
    """Re-run a recorded lottery draw from its seed and candidates (an auditor's check)."""
    cands = [(str(p), int(w)) for p, w in detail["candidates"]]
    return draw(int(detail["seed"]), cands, int(detail["no_win_weight"]))


def redemption_detail(url: str, redemption_id: str) -> dict[str, Any]:
    with session_scope(url) as s:
        r = s.get(Redemption, redemption_id)
        if r is None:
            raise YunyingError("engage.unknown_redemption", redemption=redemption_id)
        return dict(r.detail)


def check_ledger(url: str, prefix: str = "") -> LedgerCheck:
    """Every transaction must balance per asset; also returns account balances."""
    with session_scope(url) as s:
        n = int(s.scalar(select(func.count(func.distinct(LedgerEntry.tx_id)))) or 0)
        return LedgerCheck(transactions=n, unbalanced=unbalanced(s), balances=balances(s, prefix))
