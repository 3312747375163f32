"""RFM on a tiny order set whose every number is worked out by hand in the comments."""

from __future__ import annotations

import csv
import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from yunying.analytics.rfm import CLASSES, SEGMENTS, RfmQuery, export_rfm_users, run_rfm
from yunying.cli import app
from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse

AS_OF = date(2024, 3, 31)


def orders_table(rows: list[tuple[str, str, datetime, str, str]]) -> pa.Table:
    """(order_id, user_id, ts UTC, amount, status) -> an ``orders`` Arrow table."""
    return pa.table(
        {
            "order_id": [r[0] for r in rows],
            "user_id": [r[1] for r in rows],
            "ts": pa.array([r[2] for r in rows], pa.timestamp("us")),
            "amount": pa.array([Decimal(r[3]) for r in rows], pa.decimal128(18, 2)),
            "currency": ["CNY"] * len(rows),
            "status": [r[4] for r in rows],
            "properties": pa.array([None] * len(rows), pa.string()),
        }
    )


def noon(y: int, m: int, d: int) -> datetime:
    """04:00 UTC is noon in Asia/Shanghai, the project zone: the local day is unambiguous."""
    return datetime(y, m, d, 4)


# As of 2024-03-31, look-back 365 days (window 2023-04-02 .. 2024-03-31, Shanghai time):
#   u1: 03-30 100, 03-25 200, 03-01 300        R=1   F=3 M=600
#   u2: 03-20 50 (+ a refunded order)           R=11  F=1 M=50
#   u3: 01-01 500, 01-31 500                    R=60  F=2 M=1000
#   u4: 2023-06-01 20                           R=304 F=1 M=20
#   u5: 03-31 10 and 15 (same day)              R=0   F=2 M=25
#   u6: only 2023-01-01, outside the window; u1's order at 03-31 17:00 UTC is 04-01 local.
# Means: R = 376/5 = 75.2, F = 9/5 = 1.8, M = 1695/5 = 339.
ROWS = [
    ("o1", "u1", noon(2024, 3, 30), "100.00", "paid"),
    ("o2", "u1", noon(2024, 3, 25), "200.00", "paid"),
    ("o3", "u1", noon(2024, 3, 1), "300.00", "paid"),
    ("o4", "u1", datetime(2024, 3, 31, 17), "999.00", "paid"),
    ("o5", "u2", noon(2024, 3, 20), "50.00", "paid"),
    ("o6", "u2", noon(2024, 3, 21), "70.00", "refunded"),
    ("o7", "u3", noon(2024, 1, 1), "500.00", "paid"),
    ("o8", "u3", noon(2024, 1, 31), "500.00", "paid"),
    ("o9", "u4", noon(2023, 6, 1), "20.00", "paid"),
    ("o10", "u5", datetime(2024, 3, 30, 17), "10.00", "paid"),  # 03-31 01:00 local
    ("o11", "u5", noon(2024, 3, 31), "15.00", "paid"),
    ("o12", "u6", noon(2023, 1, 1), "80.00", "paid"),
]


def load(wh: Warehouse) -> None:
    wh.append_arrow("orders", orders_table(ROWS))
    wh.refresh()


def by_key(groups: list) -> dict[str, tuple[int, float]]:  # type: ignore[type-arg]
    return {g.key: (g.users, g.revenue) for g in groups}


def test_rfm_by_hand_on_every_engine(any_wh: Warehouse) -> None:
    load(any_wh)
    res = run_rfm(any_wh, RfmQuery(as_of=AS_OF))
    assert res.users == 5 and res.revenue == pytest.approx(1695.0)
    assert res.window_start == date(2023, 4, 2)  # 2024 is a leap year
    th = res.thresholds
    assert (th.recency_days, th.frequency, th.monetary) == pytest.approx((75.2, 1.8, 339.0))
    classes = by_key(res.classes)
    # u1 HHH, u3 HHH -> important value; u5 HHL; u2 HLL; u4 LLL.
    assert classes["important_value"] == (2, pytest.approx(1600.0))
    assert classes["general_value"] == (1, pytest.approx(25.0))
    assert classes["general_development"] == (1, pytest.approx(50.0))
    assert classes["general_winback"] == (1, pytest.approx(20.0))
    assert sum(n for n, _ in classes.values()) == 5
    iv = next(g for g in res.classes if g.key == "important_value")
    assert iv.share == pytest.approx(0.4)
    assert iv.revenue_share == pytest.approx(1600 / 1695)
    assert iv.avg_spend == pytest.approx(800.0)
    assert iv.name_zh == "重要价值客户"
    # Scores (1 + floor(5 * rank / n), ties share the lowest rank):
    #   R: u4 1, u3 2, u2 3, u1 4, u5 5; F: u2,u4 1, u3,u5 3, u1 5.
    # Segments (R, F): u1 (4,5) loyal, u2 (3,1) about to sleep, u3 (2,3) at risk,
    #   u4 (1,1) lost, u5 (5,3) potential loyalist.
    segs = {k: n for k, (n, _) in by_key(res.segments).items() if n}
    assert segs == {
        "loyal": 1,
        "about_to_sleep": 1,
        "at_risk": 1,
        "lost": 1,
        "potential_loyalist": 1,
    }
    assert [g.key for g in res.classes] == [c[0] for c in CLASSES]
    assert [g.key for g in res.segments] == [s[0] for s in SEGMENTS]
    json.loads(res.model_dump_json())


def test_median_and_custom_thresholds(wh: Warehouse) -> None:
    load(wh)
    # Medians: R 11, F 2, M 50 (strict comparisons, so u2's R=11 is low).
    res = run_rfm(wh, RfmQuery(as_of=AS_OF, threshold="median"))
    assert (res.thresholds.recency_days, res.thresholds.frequency, res.thresholds.monetary) == (
        11.0,
        2.0,
        50.0,
    )
    c = {k: n for k, (n, _) in by_key(res.classes).items() if n}
    assert c == {
        "important_value": 1,  # u1
        "important_winback": 1,  # u3: R 60, F 2 (not > 2), M 1000
        "general_development": 1,  # u5: R 0, F 2, M 25
        "general_winback": 2,  # u2, u4
    }
    q = RfmQuery(
        as_of=AS_OF,
        threshold="custom",
        recency_threshold=30,
        frequency_threshold=1,
        monetary_threshold=100,
    )
    c = {k: n for k, (n, _) in by_key(run_rfm(wh, q).classes).items() if n}
    # u1 HHH, u2 HLL, u3 LHH, u4 LLL, u5 HHL
    assert c == {
        "important_value": 1,
        "general_development": 1,
        "important_retention": 1,
        "general_winback": 1,
        "general_value": 1,
    }


def test_default_as_of_and_short_window(wh: Warehouse) -> None:
    load(wh)
    # Latest paid order is o4, 2024-04-01 local; a 2-day window keeps u1 (o4) and u5.
    res = run_rfm(wh, RfmQuery(lookback_days=2))
    assert res.as_of == date(2024, 4, 1)
    assert res.users == 2 and res.revenue == pytest.approx(999 + 25)


def test_export_users_with_class(wh: Warehouse, tmp_path: Path) -> None:
    load(wh)
    out = tmp_path / "iv.csv"
    n = export_rfm_users(wh, RfmQuery(as_of=AS_OF), out, "重要价值客户")
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert n == 2 and [r["user_id"] for r in rows] == ["u1", "u3"]
    assert rows[0]["monetary"] == "600.00" and rows[0]["rfm_class"] == "important_value"
    assert rows[1]["recency_days"] == "60" and rows[1]["segment"] == "at_risk"
    n = export_rfm_users(wh, RfmQuery(as_of=AS_OF), out, "Lost")
    assert n == 1
    n = export_rfm_users(wh, RfmQuery(as_of=AS_OF), out)
    assert n == 5


def test_bad_input_is_a_clear_error(wh: Warehouse, tmp_path: Path) -> None:
    with pytest.raises(YunyingError) as e:
        run_rfm(wh, RfmQuery())
    assert "no paid orders" in e.value.message("en")
    load(wh)
    with pytest.raises(YunyingError) as e:
        run_rfm(wh, RfmQuery(as_of=date(2020, 1, 1), lookback_days=30))
    assert e.value.key == "rfm.no_orders_window"
    with pytest.raises(YunyingError) as e:
        export_rfm_users(wh, RfmQuery(as_of=AS_OF), tmp_path / "x.csv", "vip")
    assert "important_value" in e.value.message("en")
    with pytest.raises(ValidationError):
        RfmQuery(threshold="custom", recency_threshold=3)


def test_cli_rfm(settings: Settings, tmp_path: Path) -> None:
    with Warehouse(settings, "duckdb") as wh:
        load(wh)
    runner = CliRunner()
    out = tmp_path / "targets.csv"
    r = runner.invoke(
        app,
        ["rfm", "--project", str(settings.project_dir), "--as-of", "2024-03-31", "--format", "json",
         "--export-users", str(out), "--class", "important_value"],
    )
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["users"] == 5 and doc["classes"][0]["users"] == 2
    assert out.read_text(encoding="utf-8").splitlines()[1].startswith("u1,")
    r = runner.invoke(
        app, ["rfm", "--project", str(settings.project_dir), "--as-of", "2024-03-31", "--format", "csv"]
    )
    assert r.exit_code == 0 and "重要价值客户,2,40.0%,1600.00,94.4%,800.00" in r.stdout  # project language
    r = runner.invoke(app, ["rfm", "--project", str(settings.project_dir), "--threshold", "custom"])
    assert isinstance(r.exception, YunyingError) and r.exception.key == "value.bad_query"


def random_orders(n_users: int, seed: int) -> pa.Table:
    """Orders with many ties: few prices, whole-day clusters, times near local midnight."""
    rng = np.random.default_rng(seed)
    per_user = rng.geometric(0.45, n_users)
    user = np.repeat(np.arange(n_users), per_user)
    m = len(user)
    day = rng.integers(0, 400, m)  # some before the window
    minute = rng.choice([0, 30, 15 * 60 + 59, 16 * 60, 23 * 60 + 59], m)  # UTC; +8 h local
    ts = np.datetime64("2023-03-01T00:00", "m") + day * 1440 + minute
    cents = rng.choice([100, 250, 999, 1000, 5001, 12345], m) * rng.integers(1, 4, m)
    status = np.where(rng.random(m) < 0.9, "paid", "refunded")
    return pa.table(
        {
            "order_id": [f"o{i}" for i in range(m)],
            "user_id": [f"u{u:05d}" for u in user],
            "ts": pa.array(ts.astype("datetime64[us]"), pa.timestamp("us")),
            "amount": pa.array([Decimal(int(c)) / 100 for c in cents], pa.decimal128(18, 2)),
            "currency": ["CNY"] * m,
            "status": status.tolist(),
            "properties": pa.nulls(m, pa.string()),
        }
    )


@pytest.mark.parametrize("seed", [1, 2])
def test_duckdb_fast_path_equals_generic_path(wh: Warehouse, seed: int) -> None:
    """The DuckDB path (one aggregate + NumPy) gives the generic Ibis path's answer."""
    wh.append_arrow("orders", random_orders(1501 + seed, seed))  # odd and even user counts
    queries = [
        RfmQuery(as_of=date(2024, 3, 31), lookback_days=365),
        RfmQuery(as_of=date(2024, 3, 31), lookback_days=90, threshold="median"),
        RfmQuery(lookback_days=200, threshold="median"),
        RfmQuery(
            as_of=date(2024, 2, 29), threshold="custom", recency_threshold=30,
            frequency_threshold=2, monetary_threshold=20.0,
        ),
    ]
    for q in queries:
        fast, generic = run_rfm(wh, q), run_rfm(wh, q, fast=False)
        assert fast.users > 100 and 0 < fast.classes[0].users < fast.users
        # Equal to the last bit: counts, cents, thresholds, shares.
        assert fast == generic


def test_generic_path_by_hand(wh: Warehouse) -> None:
    """The generic path (Spark's, and what exports build on) on the hand-made orders."""
    load(wh)
    res = run_rfm(wh, RfmQuery(as_of=AS_OF), fast=False)
    assert by_key(res.classes)["important_value"] == (2, pytest.approx(1600.0))
    assert (res.thresholds.recency_days, res.thresholds.frequency) == pytest.approx((75.2, 1.8))
    segs = {k: n for k, (n, _) in by_key(res.segments).items() if n}
    assert segs == {"loyal": 1, "about_to_sleep": 1, "at_risk": 1, "lost": 1, "potential_loyalist": 1}


@pytest.mark.parametrize("fast", [True, False])
def test_mean_threshold_is_exact_in_cents(wh: Warehouse, fast: bool) -> None:
    """A spend equal to the mean is not above it, though a float mean rounds below it."""
    # 0.11, 0.20 and 0.29: the mean is 0.20 exactly, only 0.29 is above it. In doubles
    # the mean comes out as 0.19999999999999998, which would count 0.20 as above too.
    rows = [
        (f"o{i}", f"u{i}", noon(2024, 3, 30), amount, "paid")
        for i, amount in enumerate(["0.11", "0.20", "0.29"])
    ]
    wh.append_arrow("orders", orders_table(rows))
    res = run_rfm(wh, RfmQuery(as_of=AS_OF), fast=fast)
    assert res.thresholds.monetary == 0.2
    high_m = sum(g.users for g in res.classes if g.key.startswith("important"))
    assert high_m == 1


def test_every_engine_agrees_with_the_duckdb_fast_path(any_wh: Warehouse, tmp_path: Path) -> None:
    """Spark (generic path) and DuckDB (fast path) give the same result on the same orders."""
    from yunying.config import load_settings

    data = random_orders(400, 5)
    any_wh.append_arrow("orders", data)
    any_wh.refresh()
    with Warehouse(load_settings(tmp_path / "ref"), "duckdb") as ref:
        ref.append_arrow("orders", data)
        for q in (
            RfmQuery(as_of=date(2024, 3, 31)),
            RfmQuery(as_of=date(2024, 3, 31), lookback_days=120, threshold="median"),
        ):
            assert run_rfm(any_wh, q) == run_rfm(ref, q)


def test_scores_and_medians_by_counting_match_sorting() -> None:
    """The counting helpers of the DuckDB path, on small and on sparse (sorted) values."""
    from yunying.analytics.rfm import _distinct, _median_pair, _median_pair_of, _scores

    rng = np.random.default_rng(7)
    for v in (rng.integers(0, 30, 1001), rng.integers(0, 10**9, 1000) // 1000 * 1000):
        n = len(v)
        values, counts, index = _distinct(v)
        assert np.array_equal(values[index], v) and counts.sum() == n
        sv = np.sort(v)
        for desc in (False, True):
            # 0-based rank, ties share the lowest: elements strictly better placed
            rank = n - np.searchsorted(sv, v, side="right") if desc else np.searchsorted(sv, v)
            assert np.array_equal(_scores(counts, n, desc)[index], 1 + rank * 5 // n)
        want = (int(sv[(n - 1) // 2]), int(sv[n // 2]))
        assert _median_pair(values, counts) == want == _median_pair_of(v)
