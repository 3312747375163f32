"""Deterministic assignment: the same user always gets the same variant, on every engine.

bucket(salt, user) = first 52 bits of sha256("salt:user") / 2⁵² ∈ [0, 1). 52 bits fit a
double exactly, so the Python path and the Ibis expression (DuckDB ``sha256``, Spark
``sha2``) compare identical numbers against identical thresholds. Three independent
hashes decide: the layer slice (mutual exclusion), inclusion (coverage, then holdout)
and the variant (by weight).
"""

from __future__ import annotations

import csv
import hashlib
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pyarrow as pa
from pydantic import BaseModel

from yunying import clock
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.experiments.spec import EXPOSURE_EVENT, HOLDOUT, ExperimentSpec
from yunying.i18n import t
from yunying.warehouse.engine import Warehouse

BITS = 52
SCALE = float(2**BITS)


def bucket(salt: str, user_id: str) -> float:
    """Position of a user in [0, 1) for one salt."""
    h = hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()
    return int(h[: BITS // 4], 16) / SCALE


def buckets(salt: str, user_ids: Sequence[str]) -> np.ndarray:
    """:func:`bucket` for many users: hash in a loop, the arithmetic vectorised."""
    prefix = f"{salt}:".encode()
    sha = hashlib.sha256
    head = b"".join([sha(prefix + u.encode()).digest()[:8] for u in user_ids])
    top = np.frombuffer(head, dtype=">u8") >> np.uint64(64 - BITS)
    return top.astype(np.float64) / SCALE


@ibis.udf.scalar.builtin(name="conv")
def _spark_conv(digits: str, from_base: int, to_base: int) -> str:  # type: ignore[empty-body]
    """Spark: change the base of a number written as text."""


def hex_expr(salt: str, user_id: ir.StringValue) -> ir.StringValue:
    """sha256("salt:user") as lowercase hex, on the engine (DuckDB sha256, Spark sha2)."""
    return (ibis.literal(f"{salt}:") + user_id).hexdigest("sha256")  # type: ignore[no-any-return]


def hex_to_bucket(engine: str, h: ir.StringValue) -> ir.FloatingValue:
    """First 13 hex digits (52 bits) / 2⁵², with each engine's own hex parser."""
    head = h.substr(0, BITS // 4)
    if engine == "spark":
        n = _spark_conv(head, 16, 10).cast("int64")
    else:
        # DuckDB reads '0x…' text as a hexadecimal integer.
        n = (ibis.literal("0x") + head).cast("int64")
    return n.cast("float64") / SCALE  # type: ignore[no-any-return]


def bucket_expr(engine: str, salt: str, user_id: ir.StringValue) -> ir.FloatingValue:
    """The same bucket as :func:`bucket`, as an Ibis expression."""
    return hex_to_bucket(engine, hex_expr(salt, user_id))


def _salts(spec: ExperimentSpec) -> tuple[str, str, str]:
    return f"layer:{spec.layer}", f"{spec.hash_salt}:include", spec.hash_salt


def thresholds(spec: ExperimentSpec) -> list[float]:
    total = sum(v.weight for v in spec.variants)
    cum = np.cumsum([v.weight / total for v in spec.variants]).tolist()
    cum[-1] = 1.0
    return [float(c) for c in cum]


def assign(spec: ExperimentSpec, user_ids: Sequence[str]) -> list[str | None]:
    """Variant key, ``holdout``, or None (outside the layer slice or coverage) per user."""
    n = len(user_ids)
    keep = np.ones(n, dtype=bool)
    layer_salt, inc_salt, var_salt = _salts(spec)
    if spec.layer:
        lb = buckets(layer_salt, user_ids)
        keep &= (lb >= spec.layer_range[0]) & (lb < spec.layer_range[1])
    inc = buckets(inc_salt, user_ids)
    keep &= inc < spec.coverage
    hold = keep & (inc < spec.coverage * spec.holdout)
    vb = buckets(var_salt, user_ids)
    idx = np.searchsorted(np.asarray(thresholds(spec)), vb, side="right")
    keys = [v.key for v in spec.variants]
    out: list[str | None] = []
    for i in range(n):
        if not keep[i]:
            out.append(None)
        elif hold[i]:
            out.append(HOLDOUT)
        else:
            out.append(keys[int(idx[i])])
    return out


def assign_expr(engine: str, spec: ExperimentSpec, users: ir.Table) -> ir.Table:
    """``users`` (with ``user_id``) plus column ``variant``; the engine does the hashing."""
    layer_salt, inc_salt, var_salt = _salts(spec)
    t = users.mutate(
        _inc=bucket_expr(engine, inc_salt, users.user_id),
        _vb=bucket_expr(engine, var_salt, users.user_id),
    )
    keep = t._inc < spec.coverage
    if spec.layer:
        t = t.mutate(_lb=bucket_expr(engine, layer_salt, t.user_id))
        keep = keep & (t._lb >= spec.layer_range[0]) & (t._lb < spec.layer_range[1])
    branches = [(t._inc < spec.coverage * spec.holdout, ibis.literal(HOLDOUT))]
    for v, c in zip(spec.variants[:-1], thresholds(spec)[:-1], strict=True):
        branches.append((t._vb < c, ibis.literal(v.key)))
    variant = ibis.cases(*branches, else_=ibis.literal(spec.variants[-1].key))
    t = t.mutate(variant=ibis.ifelse(keep, variant, ibis.null("string")))
    return t.drop(*[c for c in ("_inc", "_vb", "_lb") if c in t.columns])


# -- who may enter -----------------------------------------------------------------------
def read_user_file(path: Path) -> list[str]:
    """A CSV with a ``user_id`` column (as ``export_users`` writes) or one id per line."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            rows = list(csv.reader(fh))
    except OSError as e:
        raise YunyingError("experiments.users_file", path=str(path), reason=str(e)) from e
    if not rows:
        return []
    col = 0
    if "user_id" in rows[0]:
        col = rows[0].index("user_id")
        rows = rows[1:]
    return [r[col].strip() for r in rows if len(r) > col and r[col].strip()]


def eligible_users(settings: Settings, wh: Warehouse, spec: ExperimentSpec) -> list[str]:
    """Targeted users, or everyone in ``users`` when the experiment has no targeting."""
    tg = spec.targeting
    if tg is None or (tg.segment is None and tg.users is None and tg.users_file is None):
        df = wh.execute(wh.table("users").select("user_id").distinct())
        return sorted(str(u) for u in df["user_id"].dropna().tolist())
    sets: list[set[str]] = []
    if tg.users is not None:
        sets.append(set(tg.users))
    if tg.users_file is not None:
        sets.append(set(read_user_file(settings.resolve(tg.users_file))))
    if tg.segment is not None:
        try:
            from yunying.segments.service import members
        except ImportError as e:  # the segments package is a colleague's and may be absent
            raise YunyingError("experiments.segments_missing", segment=tg.segment) from e
        sets.append(set(members(settings, tg.segment)))
    out = sets[0]
    for s in sets[1:]:
        out &= s
    return sorted(out)


@dataclass(frozen=True)
class AssignResult:
    eligible: int
    assigned: int
    already: int
    written: int
    counts: dict[str, int]


def exposure_table(
    spec: ExperimentSpec, pairs: Iterable[tuple[str, str]], at: datetime
) -> pa.Table:
    """``$exposure`` events with properties {experiment, variant}; ids are deterministic."""
    import json

    uids, variants = [], []
    for u, v in pairs:
        uids.append(u)
        variants.append(v)
    ns = uuid.uuid5(uuid.NAMESPACE_URL, f"yunying:experiment:{spec.id}")
    return pa.table(
        {
            "event_id": [str(uuid.uuid5(ns, u)) for u in uids],
            "event": [EXPOSURE_EVENT] * len(uids),
            "user_id": uids,
            "ts": pa.array([at] * len(uids), type=pa.timestamp("us")),
            "account_id": pa.nulls(len(uids), type=pa.string()),
            "session_id": pa.nulls(len(uids), type=pa.string()),
            "properties": [
                json.dumps({"experiment": spec.id, "variant": v}, ensure_ascii=False)
                for v in variants
            ],
        }
    )


def already_exposed(wh: Warehouse, spec: ExperimentSpec) -> set[str]:
    from yunying.experiments.analysis import exposures

    df = wh.execute(exposures(wh, spec).select("user_id"))
    return set(df["user_id"].tolist())


class AssignSummary(BaseModel):
    """What an assignment run did (the JSON of ``yunying experiment assign`` and the API)."""

    experiment: str
    eligible: int
    assigned: int
    already_exposed: int
    written: int
    counts: dict[str, int]

    @classmethod
    def of(cls, spec: ExperimentSpec, r: AssignResult) -> AssignSummary:
        return cls(experiment=spec.id, eligible=r.eligible, assigned=r.assigned,
                   already_exposed=r.already, written=r.written, counts=r.counts)

    def to_rows(self) -> tuple[list[str], list[list[Any]]]:
        return (
            [t("experiments.col.variant"), t("experiments.col.users")],
            [[k, v] for k, v in self.counts.items()],
        )


def assign_and_log(
    settings: Settings,
    wh: Warehouse,
    spec: ExperimentSpec,
    user_ids: Sequence[str] | None = None,
    at: datetime | None = None,
) -> AssignResult:
    """Assign eligible users and write an exposure for each one not yet exposed."""
    users = list(user_ids) if user_ids is not None else eligible_users(settings, wh, spec)
    when = at or clock.now()
    variants = assign(spec, users)
    done = already_exposed(wh, spec)
    pairs = [(u, v) for u, v in zip(users, variants, strict=True) if v is not None]
    new = [(u, v) for u, v in pairs if u not in done]
    counts: dict[str, int] = {}
    for _, v in pairs:
        counts[v] = counts.get(v, 0) + 1
    written = wh.append_arrow("events", exposure_table(spec, new, when)) if new else 0
    return AssignResult(len(users), len(pairs), len(pairs) - len(new), written, counts)
