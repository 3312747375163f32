"""Double-entry ledger and the event outbox, both written inside the caller's transaction.

Accounts are strings: ``budget:<tool>``, ``user:<id>``, ``stock:<tool>``,
``stock:<tool>:<prize>``, ``points:issued``, ``points:spent``, ``points:expired``.
Assets: ``money`` (cents), ``unit`` (stock units), ``points``. Every transaction's legs
sum to zero per asset, so the whole ledger always sums to zero per asset.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy import CursorResult, Result, func, insert, select
from sqlalchemy.orm import Session

from yunying.engage.models import LedgerEntry, Outbox

Leg = tuple[str, str, int]  # (account, asset, amount)


def transfer(
    s: Session,
    op_key: str,
    kind: str,
    tool_id: str | None,
    legs: Sequence[Leg],
    at: dt.datetime,
) -> str | None:
    """Write one balanced transaction; zero legs are dropped. Returns the transaction id."""
    legs = balanced(kind, legs)
    if not legs:
        return None
    tx = str(uuid.uuid4())
    s.execute(
        insert(LedgerEntry),
        [
            {
                "tx_id": tx,
                "op_key": op_key,
                "kind": kind,
                "tool_id": tool_id,
                "account": account,
                "asset": asset,
                "amount": amount,
                "at": at,
            }
            for account, asset, amount in legs
        ],
    )
    return tx


def balanced(kind: str, legs: Sequence[Leg]) -> list[Leg]:
    """The non-zero legs of a transaction; raises ``ValueError`` unless they sum to zero per asset."""
    kept = [leg for leg in legs if leg[2] != 0]
    sums: dict[str, int] = {}
    for _, asset, amount in kept:
        sums[asset] = sums.get(asset, 0) + amount
    if any(sums.values()):
        raise ValueError(f"unbalanced ledger transaction {kind}: {sums}")
    return kept


def rc(result: Result[Any]) -> int:
    """Rows changed by an ``UPDATE``/``INSERT`` (the outcome of a conditional update)."""
    return int(cast("CursorResult[Any]", result).rowcount)


def move(src: str, dst: str, asset: str, amount: int) -> list[Leg]:
    """The two legs of moving ``amount`` of ``asset`` from ``src`` to ``dst``."""
    return [(src, asset, -amount), (dst, asset, amount)]


def emit(s: Session, event: str, user_id: str, ts: dt.datetime, **props: Any) -> None:
    """Queue a warehouse event in the same transaction as the act it describes."""
    s.execute(
        insert(Outbox).values(
            event=event,
            user_id=user_id,
            ts=ts,
            properties=event_props(props),
            sent_at=None,
        )
    )


def event_props(props: dict[str, Any]) -> dict[str, Any]:
    """An event's properties as stored: ``None``, ints and bools as they are, the rest as strings."""
    return {k: (str(v) if v is not None and not isinstance(v, (int, bool)) else v) for k, v in props.items()}


def unbalanced(s: Session) -> list[str]:
    """Transaction ids whose legs do not sum to zero for some asset (should be none)."""
    q = (
        select(LedgerEntry.tx_id)
        .group_by(LedgerEntry.tx_id, LedgerEntry.asset)
        .having(func.sum(LedgerEntry.amount) != 0)
    )
    return sorted({r[0] for r in s.execute(q)})


def balances(s: Session, prefix: str = "") -> dict[str, int]:
    """Balance of every account (``account|asset``), optionally those starting with ``prefix``."""
    q = select(LedgerEntry.account, LedgerEntry.asset, func.sum(LedgerEntry.amount)).group_by(
        LedgerEntry.account, LedgerEntry.asset
    )
    if prefix:
        q = q.where(LedgerEntry.account.startswith(prefix))
    return {f"{a}|{asset}": int(v) for a, asset, v in s.execute(q)}
