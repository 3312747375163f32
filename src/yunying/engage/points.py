"""Points (积分) and membership tiers (会员等级).

Points arrive in lots with an expiry; spending takes the lot that expires first (FIFO by
expiry, then by age) under row locks; ``expire`` zeroes lots whose expiry has passed
(``expires_at <= at``: a lot expiring at 10:00:00 is no longer spendable at 10:00:00).
Every movement is a ledger transaction in the ``points`` asset and an outbox event.
Tiers are evaluated on a schedule (``evaluate_tiers``): the qualifying points are those
earned in the trailing ``window_days``; upgrades apply at once, downgrades only after the
current tier has been held ``hold_days``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.orm import Session

from yunying.appdb import session_scope
from yunying.engage.ledger import emit, move, rc, transfer
from yunying.engage.models import LedgerEntry, Op, PointsLot, PointsRule, TierLevel, UserTier
from yunying.engage.rules import whole_units
from yunying.engage.service import _claim, _idempotent, as_utc
from yunying.errors import YunyingError

DEFAULT_EXPIRY_DAYS = 365


class RuleSpec(BaseModel):
    """Points for an event: ``points`` each time, or per whole currency unit when ``per_amount``."""

    event: str = Field(min_length=1, max_length=64)
    points: int = Field(gt=0)
    per_amount: bool = False
    expiry_days: int = Field(default=DEFAULT_EXPIRY_DAYS, gt=0)


class EarnRequest(BaseModel):
    key: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)
    event: str = Field(default="manual", min_length=1, max_length=64)
    amount: Decimal | None = Field(default=None, ge=0, description="Order amount for per-amount rules.")
    points: int | None = Field(default=None, gt=0, description="Explicit points (no rule needed).")
    at: dt.datetime | None = None


class EarnResult(BaseModel):
    user_id: str
    points: int
    lot_id: int
    expires_at: dt.datetime
    at: dt.datetime
    replayed: bool = False


class SpendRequest(BaseModel):
    key: str = Field(min_length=1, max_length=128)
    user_id: str = Field(min_length=1, max_length=128)
    points: int = Field(gt=0)
    reason: str = "redeem"
    at: dt.datetime | None = None


class SpendResult(BaseModel):
    user_id: str
    points: int
    lots: list[int]
    at: dt.datetime
    replayed: bool = False


class ExpireResult(BaseModel):
    lots: int
    points: int


class LotOut(BaseModel):
    lot_id: int
    points: int
    remaining: int
    source: str
    earned_at: dt.datetime
    expires_at: dt.datetime


class StatementLine(BaseModel):
    at: dt.datetime
    kind: str
    points: int
    balance: int


class Statement(BaseModel):
    """A user's points: every movement with the running balance, and the live lots."""

    user_id: str
    balance: int
    available: int
    tier: str | None
    lines: list[StatementLine]
    lots: list[LotOut]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return ["at", "kind", "points", "balance"], [[x.at, x.kind, x.points, x.balance] for x in self.lines]


class TierSpec(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    min_points: int = Field(ge=0)


class TierLadder(BaseModel):
    tiers: list[TierSpec]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return ["name", "min_points"], [[t.name, t.min_points] for t in self.tiers]


class TierChange(BaseModel):
    user_id: str
    old: str | None
    new: str
    qualifying_points: int


class TierEvaluation(BaseModel):
    evaluated: int
    changes: list[TierChange]

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return ["user_id", "old", "new", "qualifying_points"], [
            [c.user_id, c.old, c.new, c.qualifying_points] for c in self.changes
        ]


def set_rule(url: str, rule: RuleSpec) -> RuleSpec:
    with session_scope(url) as s:
        s.merge(PointsRule(event=rule.event, points=rule.points, per_amount=rule.per_amount, expiry_days=rule.expiry_days))
    return rule


def _points_for(s: Session, req: EarnRequest) -> tuple[int, int]:
    if req.points is not None:
        return req.points, DEFAULT_EXPIRY_DAYS
    rule = s.get(PointsRule, req.event)
    if rule is None:
        raise YunyingError("engage.points_no_rule", event=req.event)
    if rule.per_amount:
        if req.amount is None:
            raise YunyingError("engage.points_amount_required", event=req.event)
        return rule.points * whole_units(req.amount), rule.expiry_days
    return rule.points, rule.expiry_days


def earn(url: str, req: EarnRequest) -> EarnResult:
    """Credit points as a new lot (idempotent by key)."""
    at = as_utc(req.at)

    def act(s: Session) -> dict[str, Any]:
        pts, days = _points_for(s, req)
        if pts <= 0:
            raise YunyingError("engage.points_zero", event=req.event)
        expires = at + dt.timedelta(days=days)
        _claim(s, req.key, "earn", {}, at)
        lot = s.execute(
            insert(PointsLot)
            .values(user_id=req.user_id, points=pts, remaining=pts, source=req.event, earned_at=at, expires_at=expires)
            .returning(PointsLot.id)
        ).scalar_one()
        transfer(s, req.key, "points_earned", None, move("points:issued", f"user:{req.user_id}", "points", pts), at)
        emit(s, "points_earned", req.user_id, at, points=pts, source=req.event, lot_id=int(lot))
        out = EarnResult(user_id=req.user_id, points=pts, lot_id=int(lot), expires_at=expires, at=at)
        data = out.model_dump(mode="json")
        s.execute(update_op(req.key, data))
        return data

    data, replayed = _idempotent(url, req.key, "earn", act, "engage.conflict")
    return EarnResult.model_validate({**data, "replayed": replayed})


def update_op(key: str, data: dict[str, Any]) -> Any:
    """The statement storing an act's result under its idempotency key."""
    return update(Op).where(Op.key == key).values(result=data)


def spend(url: str, req: SpendRequest) -> SpendResult:
    """Spend points from the lots expiring first; the lots are locked (``FOR UPDATE``)."""
    at = as_utc(req.at)

    def act(s: Session) -> dict[str, Any]:
        _claim(s, req.key, "spend", {}, at)
        lots = list(
            s.scalars(
                select(PointsLot)
                .where(PointsLot.user_id == req.user_id, PointsLot.remaining > 0, PointsLot.expires_at > at)
                .order_by(PointsLot.expires_at, PointsLot.id)
                .with_for_update()
            )
        )
        have = sum(lt.remaining for lt in lots)
        if have < req.points:
            raise YunyingError("engage.points_insufficient", user=req.user_id, have=have, want=req.points)
        need = req.points
        used: list[int] = []
        for lt in lots:
            if need == 0:
                break
            take = min(need, lt.remaining)
            done = s.execute(
                update(PointsLot)
                .where(PointsLot.id == lt.id, PointsLot.remaining >= take)
                .values(remaining=PointsLot.remaining - take)
            )
            if rc(done) != 1:
                raise YunyingError("engage.busy", tool="points")
            need -= take
            used.append(lt.id)
        transfer(s, req.key, "points_spent", None, move(f"user:{req.user_id}", "points:spent", "points", req.points), at)
        emit(s, "points_spent", req.user_id, at, points=req.points, reason=req.reason)
        data = SpendResult(user_id=req.user_id, points=req.points, lots=used, at=at).model_dump(mode="json")
        s.execute(update_op(req.key, data))
        return data

    data, replayed = _idempotent(url, req.key, "spend", act, "engage.conflict")
    return SpendResult.model_validate({**data, "replayed": replayed})


def expire(url: str, at: dt.datetime | None = None) -> ExpireResult:
    """Zero every lot with ``expires_at <= at``; running it again finds nothing more."""
    when = as_utc(at)
    n = total = 0
    with session_scope(url) as s:
        due = s.execute(
            select(PointsLot.id, PointsLot.user_id, PointsLot.remaining).where(
                PointsLot.remaining > 0, PointsLot.expires_at <= when
            )
        ).all()
        for lot_id, user_id, remaining in due:
            done = s.execute(
                update(PointsLot).where(PointsLot.id == lot_id, PointsLot.remaining == remaining).values(remaining=0)
            )
            if rc(done) != 1:
                continue
            transfer(s, f"expire:{lot_id}", "points_expired", None,
                     move(f"user:{user_id}", "points:expired", "points", remaining), when)
            emit(s, "points_expired", user_id, when, points=remaining, lot_id=lot_id)
            n += 1
            total += remaining
    return ExpireResult(lots=n, points=total)


def statement(url: str, user_id: str, at: dt.datetime | None = None) -> Statement:
    when = as_utc(at)
    with session_scope(url) as s:
        entries = s.execute(
            select(LedgerEntry.at, LedgerEntry.kind, LedgerEntry.amount)
            .where(LedgerEntry.account == f"user:{user_id}", LedgerEntry.asset == "points")
            .order_by(LedgerEntry.id)
        ).all()
        lines: list[StatementLine] = []
        bal = 0
        for when_, kind, amount in entries:
            bal += int(amount)
            lines.append(StatementLine(at=when_, kind=kind, points=int(amount), balance=bal))
        lots = [
            LotOut(lot_id=x.id, points=x.points, remaining=x.remaining, source=x.source,
                   earned_at=x.earned_at, expires_at=x.expires_at)
            for x in s.scalars(
                select(PointsLot).where(PointsLot.user_id == user_id, PointsLot.remaining > 0).order_by(
                    PointsLot.expires_at, PointsLot.id
                )
            )
        ]
        available = sum(x.remaining for x in lots if x.expires_at > when)
        tier = s.scalar(select(UserTier.tier).where(UserTier.user_id == user_id))
    return Statement(user_id=user_id, balance=bal, available=available, tier=tier, lines=lines, lots=lots)


def set_tiers(url: str, tiers: list[TierSpec]) -> list[TierSpec]:
    """Replace the tier ladder; the lowest tier must start at 0 points."""
    if not tiers or min(t.min_points for t in tiers) != 0:
        raise YunyingError("engage.tiers_need_zero")
    if len({t.min_points for t in tiers}) != len(tiers) or len({t.name for t in tiers}) != len(tiers):
        raise YunyingError("engage.tiers_duplicate")
    with session_scope(url) as s:
        s.execute(delete(TierLevel))
        for t in tiers:
            s.add(TierLevel(name=t.name, min_points=t.min_points))
    return sorted(tiers, key=lambda t: t.min_points)


def evaluate_tiers(
    url: str, at: dt.datetime | None = None, window_days: int = 365, hold_days: int = 30
) -> TierEvaluation:
    """The scheduled tier run: upgrade now, downgrade once the tier was held ``hold_days``."""
    when = as_utc(at)
    since = when - dt.timedelta(days=window_days)
    changes: list[TierChange] = []
    with session_scope(url) as s:
        ladder = list(s.execute(select(TierLevel.name, TierLevel.min_points).order_by(TierLevel.min_points)))
        if not ladder:
            raise YunyingError("engage.tiers_missing")
        rank = {name: i for i, (name, _) in enumerate(ladder)}
        qual = dict(
            s.execute(
                select(PointsLot.user_id, func.sum(PointsLot.points))
                .where(PointsLot.earned_at > since, PointsLot.earned_at <= when)
                .group_by(PointsLot.user_id)
            ).all()
        )
        current = {u.user_id: u for u in s.scalars(select(UserTier))}
        users = sorted(set(qual) | set(current))
        for uid in users:
            q = int(qual.get(uid, 0) or 0)
            target = [name for name, mp in ladder if mp <= q][-1]
            cur = current.get(uid)
            if cur is None:
                s.add(UserTier(user_id=uid, tier=target, since=when, evaluated_at=when))
                changes.append(TierChange(user_id=uid, old=None, new=target, qualifying_points=q))
                continue
            cur.evaluated_at = when
            old_rank = rank.get(cur.tier, -1)
            up = rank[target] > old_rank
            down = rank[target] < old_rank and when - cur.since >= dt.timedelta(days=hold_days)
            if up or down:
                changes.append(TierChange(user_id=uid, old=cur.tier, new=target, qualifying_points=q))
                cur.tier, cur.since = target, when
        for c in changes:
            emit(s, "tier_changed", c.user_id, when, old=c.old, new=c.new, points=c.qualifying_points)
    return TierEvaluation(evaluated=len(users), changes=changes)
