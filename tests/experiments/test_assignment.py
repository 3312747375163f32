"""Assignment: deterministic, balanced over 1M users, identical in Python, DuckDB and Spark."""

from __future__ import annotations

import hashlib
from collections import Counter
from datetime import datetime
from pathlib import Path

import ibis
import pyarrow as pa
import pytest
from scipy import stats

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.experiments.assignment import (
    assign,
    assign_and_log,
    assign_expr,
    bucket,
    buckets,
    eligible_users,
)
from yunying.experiments.spec import ExperimentSpec, load_all, save
from yunying.warehouse.engine import Warehouse


def make(**over: object) -> ExperimentSpec:
    d: dict[str, object] = {
        "id": "exp1",
        "variants": [{"key": "a", "weight": 1}, {"key": "b", "weight": 1}, {"key": "c", "weight": 2}],
        "metrics": [{"id": "paid", "measure": {"source": "orders"}}],
    }
    d.update(over)
    return ExperimentSpec.model_validate(d)


def test_bucket_is_first_52_bits_of_sha256() -> None:
    h = hashlib.sha256(b"exp1:user-42").digest()
    assert bucket("exp1", "user-42") == (int.from_bytes(h[:8], "big") >> 12) / 2**52
    assert buckets("exp1", ["user-42", "x"]).tolist() == [bucket("exp1", "user-42"), bucket("exp1", "x")]


def test_balanced_and_stable_over_a_million_users() -> None:
    spec = make()
    users = [f"u{i}" for i in range(1_000_000)]
    first = assign(spec, users)
    counts = Counter(first)
    observed = [counts["a"], counts["b"], counts["c"]]
    assert sum(observed) == 1_000_000
    # Within chance of the 1:1:2 weights (a real SRM test would fire below 0.001).
    assert stats.chisquare(observed, [250_000, 250_000, 500_000]).pvalue > 0.001
    assert all(abs(o / e - 1) < 0.01 for o, e in zip(observed, [250_000, 250_000, 500_000], strict=True))
    # Identical on a second run (and in another process: the hash has no state).
    again = assign(spec, users[:200_000])
    assert again == first[:200_000]
    # A different salt reshuffles users independently of the first experiment.
    other = assign(make(id="exp2"), users[:100_000])
    joint = Counter(zip(first[:100_000], other, strict=True))
    assert stats.chi2_contingency(
        [[joint[(x, y)] for y in "abc"] for x in "abc"]
    ).pvalue > 0.001


def test_duckdb_expression_matches_python(wh: Warehouse) -> None:
    spec = make(holdout=0.1, coverage=0.9, layer="checkout", layer_range=(0.2, 0.7))
    users = [f"u{i}" for i in range(200_000)]
    py = assign(spec, users)
    t = ibis.memtable(pa.table({"user_id": users}))
    tbl = wh.con.to_pyarrow(assign_expr("duckdb", spec, t))
    got = dict(zip(tbl["user_id"].to_pylist(), tbl["variant"].to_pylist(), strict=True))
    assert [got[u] for u in users] == py
    share = Counter(py)
    # Inside the layer slice (half the layer) and the 90% coverage; 10% of them held out.
    assert share[None] == pytest.approx(200_000 * (1 - 0.5 * 0.9), rel=0.01)
    assert share["holdout"] == pytest.approx(200_000 * 0.5 * 0.9 * 0.1, rel=0.03)


def test_engines_agree(any_wh: Warehouse) -> None:
    spec = make(holdout=0.05)
    users = [f"user-{i}" for i in range(3000)]
    any_wh.append_arrow(
        "users",
        pa.table({
            "user_id": users,
            "first_seen": pa.array([datetime(2026, 1, 1)] * len(users), type=pa.timestamp("us")),
            "channel": [None] * len(users), "properties": [None] * len(users),
        }),
    )
    any_wh.refresh()
    tbl = any_wh.to_pyarrow(assign_expr(any_wh.engine, spec, any_wh.table("users")))
    got = dict(zip(tbl["user_id"].to_pylist(), tbl["variant"].to_pylist(), strict=True))
    assert [got[u] for u in users] == assign(spec, users)


def test_layers_are_mutually_exclusive(settings: Settings) -> None:
    a = make(id="left", layer="home", layer_range=(0.0, 0.5))
    b = make(id="right", layer="home", layer_range=(0.5, 1.0))
    save(settings, a)
    save(settings, b)
    users = [f"u{i}" for i in range(20_000)]
    in_a = {u for u, v in zip(users, assign(a, users), strict=True) if v}
    in_b = {u for u, v in zip(users, assign(b, users), strict=True) if v}
    assert not in_a & in_b
    assert len(in_a) + len(in_b) == 20_000
    with pytest.raises(YunyingError) as e:
        save(settings, make(id="middle", layer="home", layer_range=(0.4, 0.6)))
    assert "overlap" in e.value.message("en")
    assert [s.id for s in load_all(settings)] == ["left", "right"]


def test_targeting_and_exposure_log(settings: Settings, wh: Warehouse, tmp_path: Path) -> None:
    f = tmp_path / "vip.csv"
    f.write_text("user_id\nu1\nu2\nu3\nu4\n", encoding="utf-8")
    spec = make(targeting={"users_file": str(f), "users": ["u2", "u3", "u4", "u9"]})
    assert eligible_users(settings, wh, spec) == ["u2", "u3", "u4"]
    r = assign_and_log(settings, wh, spec)
    assert (r.eligible, r.assigned, r.written) == (3, 3, 3)
    again = assign_and_log(settings, wh, spec)
    assert (again.already, again.written) == (3, 0)
    df = wh.execute(wh.table("events"))
    assert set(df["event"]) == {"$exposure"} and len(df) == 3
    assert all('"experiment": "exp1"' in p for p in df["properties"])
