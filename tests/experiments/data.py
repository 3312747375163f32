"""Synthetic experiment data with a planted effect, written through the real warehouse."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from decimal import Decimal

import numpy as np
import pyarrow as pa

from yunying.experiments.assignment import assign, exposure_table
from yunying.experiments.spec import ExperimentSpec
from yunying.warehouse.engine import Warehouse

T0 = datetime(2026, 3, 2, 8, 0, 0)


def spec_dict(**over: object) -> dict[str, object]:
    d: dict[str, object] = {
        "id": "checkout_cta",
        "name": "Checkout button",
        "variants": [{"key": "control", "weight": 50}, {"key": "b", "weight": 50}],
        "metrics": [
            {"id": "paid", "name": "Paying conversion", "kind": "proportion",
             "measure": {"source": "orders", "agg": "any"}},
            {"id": "revenue", "kind": "mean", "measure": {"source": "orders", "agg": "sum"},
             "winsorize": 0.99},
            {"id": "aov", "kind": "ratio", "numerator": {"source": "orders", "agg": "sum"},
             "denominator": {"source": "orders", "agg": "count"}},
            {"id": "clicks", "kind": "mean", "measure": {"event": "click", "agg": "count"}},
        ],
        "cuped_days": 14,
    }
    d.update(over)
    return d


def build(
    wh: Warehouse,
    spec: ExperimentSpec,
    n_users: int = 4000,
    lift: float = 0.3,
    seed: int = 5,
    rate: float = 0.15,
) -> dict[str, str | None]:
    """Users, exposures, pre- and post-period orders and clicks; variant b converts better."""
    rng = np.random.default_rng(seed)
    rate_base = rate
    uids = [f"u{i:06d}" for i in range(n_users)]
    wh.append_arrow(
        "users",
        pa.table({
            "user_id": uids,
            "first_seen": pa.array([T0 - timedelta(days=60)] * n_users, type=pa.timestamp("us")),
            "channel": ["organic"] * n_users,
            "properties": [None] * n_users,
        }),
    )
    variants = assign(spec, uids)
    pairs = [(u, v) for u, v in zip(uids, variants, strict=True) if v is not None]
    wh.append_arrow("events", exposure_table(spec, pairs, T0))
    propensity = rng.gamma(2.0, 0.5, n_users)  # a user's habit: drives pre and post
    o_ids, o_users, o_ts, o_amt = [], [], [], []
    e_ids, e_users, e_ts = [], [], []
    for i, (u, v) in enumerate(zip(uids, variants, strict=True)):
        if v is None:
            continue
        boost = 1 + lift if v == "b" else 1.0
        for period, sign in (("pre", -1), ("post", 1)):
            rate = rate_base * propensity[i] * (boost if period == "post" else 1.0)
            k = rng.poisson(rate)
            for j in range(k):
                o_ids.append(f"o-{u}-{period}-{j}")
                o_users.append(u)
                o_ts.append(T0 + sign * timedelta(days=float(rng.uniform(0.01, 13.0))))
                o_amt.append(Decimal(f"{rng.gamma(2.0, 40.0):.2f}"))
        for j in range(rng.poisson(1.0 * propensity[i] * (1.1 if v == "b" else 1.0))):
            e_ids.append(f"c-{u}-{j}")
            e_users.append(u)
            e_ts.append(T0 + timedelta(days=float(rng.uniform(0.01, 13.0))))
    wh.append_arrow(
        "orders",
        pa.table({
            "order_id": o_ids, "user_id": o_users,
            "ts": pa.array(o_ts, type=pa.timestamp("us")),
            "amount": pa.array(o_amt, type=pa.decimal128(18, 2)),
            "currency": ["CNY"] * len(o_ids), "status": ["paid"] * len(o_ids),
            "properties": [None] * len(o_ids),
        }),
    )
    wh.append_arrow(
        "events",
        pa.table({
            "event_id": e_ids, "event": ["click"] * len(e_ids), "user_id": e_users,
            "ts": pa.array(e_ts, type=pa.timestamp("us")),
            "account_id": [None] * len(e_ids), "session_id": [None] * len(e_ids),
            "properties": [json.dumps({"page": "checkout"})] * len(e_ids),
        }),
    )
    return dict(zip(uids, variants, strict=True))
