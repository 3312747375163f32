"""The sorted-key paths on DuckDB (``_funnel_sorted``, ``_retention_sorted``) give the same
answers as the generic Ibis paths (the ones Spark runs): by hand, on generated data with
ties, repeated and filtered steps, events on the window bound, sub-second times, empty
data; bucket collisions are resolved and a failed exactness check falls back."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import date, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.analytics._data import load
from tests.support.fuzz import examples
from yunying.analytics import funnels, retention, sortkeys
from yunying.analytics.common import Breakdown, DateRange, PropertyFilter
from yunying.analytics.funnels import FunnelQuery, FunnelStep, run_funnel
from yunying.analytics.retention import RetentionQuery, run_retention
from yunying.analytics.sortkeys import U64, group_starts, resolve_buckets, short_ids
from yunying.config import load_settings
from yunying.warehouse.engine import Warehouse

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import analytics_bench as bench  # noqa: E402

T0 = datetime(2024, 1, 1)
WEEK = DateRange(**{"from": "2024-03-04", "to": "2024-03-10"})


@pytest.fixture(scope="module")
def utc_wh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    w = Warehouse(load_settings(tmp_path_factory.mktemp("sorted"), timezone="UTC"), "duckdb")
    yield w
    w.close()


def generic_funnel(wh: Warehouse, q: FunnelQuery) -> tuple[list[int], list[float]]:
    """Users per step and sorted times to convert from the generic per-user levels."""
    lv = funnels._exclude(wh, q, funnels._base(wh, q), funnels._levels_ordered(wh, q, funnels._base(wh, q)))
    df = wh.execute(lv)
    n = len(q.steps)
    users = [int((df["level"] >= k).sum()) for k in range(1, n + 1)]
    secs = sorted(float(x) for x in df.loc[df["level"] == n, "ttc_seconds"].dropna())
    return users, secs


def summary(got: Any) -> tuple[list[int], list[float]]:
    """Users per step and sorted times to convert from ``_funnel_sorted``'s per-user arrays."""
    n = int(got.level.max()) if got.level.size else 0
    n = max(n, 1)
    lvl, secs = got.level, got.secs
    users = [int((lvl >= k).sum()) for k in range(1, n + 1)]
    return users, sorted(float(x) for x in secs[~np.isnan(secs)])


def sorted_funnel(wh: Warehouse, q: FunnelQuery) -> tuple[list[int], list[float]]:
    got = funnels._funnel_sorted(wh, q)
    assert got is not None, "the sorted path should apply here"
    users, secs = summary(got)
    n = len(q.steps)
    return (users + [0] * n)[:n], secs


# ---------------------------------------------------------------------------------------
# funnel
# ---------------------------------------------------------------------------------------


def test_funnel_by_hand(wh: Warehouse) -> None:
    """The hand-made events (Asia/Shanghai): u3 converts from a 2nd view with the pay
    exactly on the 14-day bound, u6's cart ties its view, u2's pay is too late."""
    load(wh)
    q = FunnelQuery(
        steps=[FunnelStep(event="view"), FunnelStep(event="cart"), FunnelStep(event="pay")],
        dates=WEEK,
    )
    assert funnels._sorted_applies(wh, q)
    users, secs = sorted_funnel(wh, q)
    assert users == [6, 5, 2]
    assert secs == [86400.0, 14 * 86400.0]
    r = run_funnel(wh, q)
    assert [s.users for s in r.steps] == [6, 5, 2]
    assert r.time_to_convert is not None and r.time_to_convert.median_seconds == pytest.approx(7.5 * 86400)
    # one second less of window loses u3
    assert sorted_funnel(wh, q.model_copy(update={"window_seconds": 14 * 86400 - 1}))[0] == [6, 5, 1]


def test_funnel_empty(utc_wh: Warehouse) -> None:
    utc_wh.truncate("events")
    q = FunnelQuery(steps=[FunnelStep(event="a"), FunnelStep(event="b")], dates=WEEK)
    assert sorted_funnel(utc_wh, q) == ([0, 0], [])
    r = run_funnel(utc_wh, q)
    assert [s.users for s in r.steps] == [0, 0]
    assert r.time_to_convert is not None and r.time_to_convert.users == 0


event_st = st.tuples(
    st.integers(0, 6),
    st.sampled_from(["a", "b", "c", "x"]),
    st.integers(0, 24 * 10),
    st.integers(0, 59),  # seconds: whole-hour ties are common, sub-hour times too
    st.sampled_from(["ads", "organic"]),
    st.sampled_from([0, 0, 0, 250_000, 1]),  # sub-second parts: ms and µs times
)


@settings(max_examples=examples(50), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rows=st.lists(event_st, min_size=0, max_size=80),
    steps=st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=5),
    window_h=st.sampled_from([0, 1, 6, 24, 72]),
    step_filter=st.booleans(),
    global_filter=st.booleans(),
)
def test_funnel_equals_generic(
    utc_wh: Warehouse,
    pass_kind: str,
    rows: list[tuple[int, str, int, int, str, int]],
    steps: list[str],
    window_h: int,
    step_filter: bool,
    global_filter: bool,
) -> None:
    wh = utc_wh
    wh.truncate("events")
    if rows:
        load(
            wh,
            [
                (f"u{u}", e, T0 + timedelta(hours=h, seconds=s, microseconds=us), {"channel": ch})
                for u, e, h, s, ch, us in rows
            ],
        )
    fs = [FunnelStep(event=e) for e in steps]
    if step_filter:
        fs[1] = FunnelStep(event=steps[1], filters=[PropertyFilter(property="channel", value="ads")])
    q = FunnelQuery(
        steps=fs,
        dates=DateRange(**{"from": "2024-01-01", "to": "2024-01-07"}),
        window_seconds=window_h * 3600,
        filters=[PropertyFilter(property="channel", operator="ne", value="x")] if global_filter else [],
    )
    want_users, want_secs = generic_funnel(wh, q)
    got = funnels._funnel_sorted(wh, q)
    # µs times over a week need more bits than the key has: the list path answers then
    assert got is not None or any(us % 1000 for *_, us in rows)
    if got is not None:
        users, secs = sorted_funnel(wh, q)
        assert users == want_users
        assert secs == pytest.approx(want_secs, abs=1e-6)
    assert [s.users for s in run_funnel(wh, q).steps] == want_users


def generic_result(wh: Warehouse, q: FunnelQuery) -> Any:
    """``run_funnel`` on the list path (what the sorted path must equal)."""
    with pytest.MonkeyPatch.context() as m:
        m.setattr(funnels, "_sorted_applies", lambda *_: False)
        return run_funnel(wh, q)


@settings(max_examples=examples(40), deadline=None, suppress_health_check=list(HealthCheck))
@given(
    rows=st.lists(event_st, min_size=0, max_size=80),
    steps=st.lists(st.sampled_from(["a", "b", "c"]), min_size=2, max_size=4),
    window_h=st.sampled_from([0, 6, 72]),
    limit=st.sampled_from([1, 5]),
    interval=st.sampled_from([None, "hour", "day", "week", "month"]),
    by_breakdown=st.booleans(),
    exclude=st.sampled_from([None, None, "x", "c"]),
)
def test_funnel_breakdown_and_periods_equal_generic(
    utc_wh: Warehouse,
    pass_kind: str,
    rows: list[tuple[int, str, int, int, str, int]],
    steps: list[str],
    window_h: int,
    limit: int,
    interval: str | None,
    by_breakdown: bool,
    exclude: str | None,
) -> None:
    """Breakdowns (the value on each user's first step-1 event; top N + other), conversion
    over time and exclusions (also of a step's event) from the sorted path equal the list
    path's, time to convert too."""
    wh = utc_wh
    wh.truncate("events")
    if rows:
        load(wh, [
            (f"u{u}", e, T0 + timedelta(hours=h, seconds=s, microseconds=us // 1000 * 1000),
             {"channel": ch} if u % 3 else None)  # some users have no value: "(none)"
            for u, e, h, s, ch, us in rows
        ])
    q = FunnelQuery(
        steps=[FunnelStep(event=e) for e in steps],
        dates=DateRange(**{"from": "2024-01-01", "to": "2024-01-07"}),
        window_seconds=window_h * 3600,
        breakdown=Breakdown(property="channel", limit=limit) if by_breakdown else None,
        interval=interval,  # type: ignore[arg-type]
        exclusions=[FunnelStep(event=exclude)] if exclude else [],
    )
    assert funnels._sorted_applies(wh, q) and funnels._funnel_sorted(wh, q) is not None
    assert run_funnel(wh, q) == generic_result(wh, q)


@pytest.mark.parametrize("tz", ["America/New_York", "Asia/Shanghai"])
@pytest.mark.parametrize("interval", ["hour", "day", "week"])
def test_funnel_periods_across_a_dst_change(
    tmp_path: Path, tz: str, interval: str, pass_kind: str
) -> None:
    """First steps every 20 minutes across New York's spring-forward night: local hours,
    days and weeks as the list path (DuckDB's time zones) buckets them."""
    w = Warehouse(load_settings(tmp_path, timezone=tz), "duckdb")
    try:
        base = datetime(2024, 3, 9, 20)  # UTC; 2024-03-10 07:00 UTC is 03:00 EDT
        rows: list[tuple[str, str, datetime, dict[str, Any] | None]] = []
        for i in range(40):
            ts = base + timedelta(minutes=20 * i)
            rows.append((f"u{i}", "a", ts, {"channel": "ads" if i % 2 else "organic"}))
            if i % 3 == 0:
                rows.append((f"u{i}", "b", ts + timedelta(minutes=5), None))
        load(w, rows)
        q = FunnelQuery(
            steps=[FunnelStep(event="a"), FunnelStep(event="b")],
            dates=DateRange(**{"from": "2024-03-08", "to": "2024-03-12"}),
            interval=interval,  # type: ignore[arg-type]
            breakdown=Breakdown(property="channel"),
        )
        got = run_funnel(w, q)
        assert sum(p.entered for p in got.over_time) == 40
        assert len(got.over_time) > 1 or interval != "hour"
        assert got == generic_result(w, q)
    finally:
        w.close()


@pytest.mark.parametrize("split", [False, True])
def test_breakdown_follows_users_moved_to_fresh_buckets(
    utc_wh: Warehouse, monkeypatch: pytest.MonkeyPatch, split: bool
) -> None:
    """With no mixing, ids of at most 4 bytes all share bucket 0: every user is moved to a
    fresh bucket (before the sort, or beside it when ``split``), and the breakdown still
    finds each user's level."""
    from yunying.analytics import kernels

    wh = utc_wh
    wh.truncate("events")
    wh.append_arrow("events", bench.generate(3_000, seed=8))
    monkeypatch.setattr(kernels, "compiled", None)  # the compiled packing mixes inline
    monkeypatch.setattr(sortkeys, "_MIX", U64(1))
    if split:
        monkeypatch.setattr(sortkeys, "_SPLIT_ROWS", 100)
    q = bench.funnel_query().model_copy(update={"breakdown": Breakdown(property="channel")})
    got = funnels._funnel_sorted(wh, q)
    assert got is not None and got.bucket.size > 100
    assert run_funnel(wh, q) == generic_result(wh, q)


def test_funnel_breakdown_by_user_property_on_benchmark_data(utc_wh: Warehouse) -> None:
    """``user.`` breakdowns (the users table) and 20k-row data on both paths."""
    wh = utc_wh
    wh.truncate("events")
    wh.append_arrow("events", bench.generate(30_000, seed=4))
    q = bench.funnel_query().model_copy(
        update={"breakdown": Breakdown(property="channel", limit=3), "interval": "week"}
    )
    got = run_funnel(wh, q)
    assert len(got.groups) == 4 and got.groups[-1].value == "(other)"
    assert got == generic_result(wh, q)


def test_funnel_on_benchmark_data(utc_wh: Warehouse, pass_kind: str) -> None:
    wh = utc_wh
    wh.truncate("events")
    wh.append_arrow("events", bench.generate(30_000, seed=5))
    q = bench.funnel_query()
    users, secs = sorted_funnel(wh, q)
    want_users, want_secs = generic_funnel(wh, q)
    assert users == want_users and users[-1] > 0
    assert secs == pytest.approx(want_secs)


def test_funnel_other_paths_unchanged(utc_wh: Warehouse) -> None:
    """Exclusions and breakdowns take the sorted path; same answers as the list path."""
    wh = utc_wh
    wh.truncate("events")
    wh.append_arrow("events", bench.generate(20_000, seed=9))
    q = bench.funnel_query().model_copy(update={"exclusions": [FunnelStep(event="share")]})
    assert funnels._sorted_applies(wh, q)
    got = run_funnel(wh, q)
    assert [s.users for s in got.steps] == generic_funnel(wh, q)[0]
    assert got == generic_result(wh, q)
    assert got.steps[0].users < run_funnel(wh, bench.funnel_query()).steps[0].users
    qb = bench.funnel_query().model_copy(update={"breakdown": Breakdown(property="channel")})
    assert funnels._sorted_applies(wh, qb)
    r = run_funnel(wh, qb)
    assert [s.users for s in r.steps] == generic_funnel(wh, bench.funnel_query())[0]
    assert sum(g.steps[0].users for g in r.groups) == r.steps[0].users
    assert r == generic_result(wh, qb)


def _long_ids(n: int, seed: int) -> pa.Table:
    """Benchmark events whose user ids are longer than 7 bytes (the hash path)."""
    data = bench.generate(n, seed=seed)
    i = data.schema.get_field_index("user_id")
    return data.set_column(
        i, "user_id", pc.binary_join_element_wise("customer-", data.column("user_id"), "")
    )


def test_long_ids_take_the_checked_hash_path(
    utc_wh: Warehouse, monkeypatch: pytest.MonkeyPatch
) -> None:
    wh = utc_wh
    wh.truncate("events")
    wh.append_arrow("events", _long_ids(20_000, seed=4))
    calls: list[int] = []
    real = sortkeys.hashes_and_check

    def spy(w: Any, tab: Any) -> Any:
        calls.append(tab.num_rows)
        return real(w, tab)

    monkeypatch.setattr(sortkeys, "hashes_and_check", spy)
    monkeypatch.setattr(sortkeys, "_LONG_IDS", {})
    fq, rq = bench.funnel_query(), bench.retention_query()
    want_users, want_secs = generic_funnel(wh, fq)
    want_r = _generic_retention(wh, rq, monkeypatch)
    qb = fq.model_copy(update={"breakdown": Breakdown(property="channel"), "interval": "week"})
    want_b = generic_result(wh, qb)
    # the first query fetches the ids, finds them long and hashes them; the next ones
    # fetch DuckDB's hash instead of the ids, checked by a distinct count beside the fetch
    for first in (True, False):
        users, secs = sorted_funnel(wh, fq)
        assert users == want_users and secs == pytest.approx(want_secs)
        assert len(calls) == 1 and sortkeys.long_ids(wh)
        assert run_retention(wh, rq) == want_r
        # a breakdown maps the long ids' values to their hashed buckets
        assert run_funnel(wh, qb) == want_b
        assert len(calls) == 1, first


def test_failed_check_falls_back(utc_wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the distinct id count disagrees with the distinct hashes (two ids sharing a
    hash), the runners use their exact string-keyed paths and still answer right."""
    wh = utc_wh
    wh.truncate("events")
    wh.append_arrow("events", _long_ids(20_000, seed=4))
    fq, rq = bench.funnel_query(), bench.retention_query()
    want_f = [s.users for s in run_funnel(wh, fq).steps]
    want_r = run_retention(wh, rq)
    real = sortkeys.hashes_and_check

    def wrong(w: Any, tab: Any) -> tuple[np.ndarray, Future[int]]:
        h, fut = real(w, tab)
        fut.result()
        bad: Future[int] = Future()
        bad.set_result(-1)
        return h, bad

    monkeypatch.setattr(sortkeys, "hashes_and_check", wrong)
    monkeypatch.setattr(sortkeys, "_LONG_IDS", {})
    assert funnels._funnel_sorted(wh, fq) is None  # ids fetched, found long, hashed here
    monkeypatch.setattr(sortkeys, "_LONG_IDS", {})
    assert retention._retention_sorted(wh, rq, None) is None
    assert sortkeys.long_ids(wh)  # from now on the query hashes: make its count disagree

    def wrong_count(w: Any, sql: str) -> Any:
        tab, fut = real_fetch(w, sql)
        assert fut is not None
        fut.result()
        bad: Future[int] = Future()
        bad.set_result(-1)
        return tab, bad

    real_fetch = sortkeys.fetch_rows
    monkeypatch.setattr(funnels, "fetch_rows", wrong_count)
    monkeypatch.setattr(retention, "fetch_rows", wrong_count)
    assert funnels._funnel_sorted(wh, fq) is None
    assert retention._retention_sorted(wh, rq, None) is None
    assert [s.users for s in run_funnel(wh, fq).steps] == want_f
    assert run_retention(wh, rq) == want_r


def test_short_ids_are_exact() -> None:
    """Ids of up to 8 bytes map to distinct keys: by their bytes alone when no id holds a
    NUL byte, else (up to 7 bytes) with their length; longer or null ids are refused."""
    plain = ["", "a", "ab", "ba", "u0012345", "u123456", "用户1", "12345678", "1234567"]
    keys = short_ids(pa.chunked_array([plain[:4], plain[4:]]))
    assert keys is not None and len(set(keys.tolist())) == len(plain)
    with_nul = ["", "a", "a\x00", "\x00a", "ab", "u123456", "1234567"]
    keys = short_ids(pa.chunked_array([with_nul]))
    assert keys is not None and len(set(keys.tolist())) == len(with_nul)
    assert short_ids(pa.chunked_array([["123456789"]])) is None
    assert short_ids(pa.chunked_array([["1234567\x00", "a"]])) is None
    assert short_ids(pa.chunked_array([["a", None]])) is None


def test_eight_byte_ids_need_no_check(
    utc_wh: Warehouse, monkeypatch: pytest.MonkeyPatch, pass_kind: str
) -> None:
    """The demo's ids (``u`` and 7 digits) take the exact short-id path: no hash check."""
    wh = utc_wh
    wh.truncate("events")
    data = bench.generate(20_000, seed=6)
    i = data.schema.get_field_index("user_id")
    data = data.set_column(i, "user_id", pc.utf8_replace_slice(data.column("user_id"), 0, 1, "u0"))
    wh.append_arrow("events", data)

    def no_check(*_: Any) -> Any:
        raise AssertionError("short ids need no hash check")

    monkeypatch.setattr(sortkeys, "hashes_and_check", no_check)
    users, secs = sorted_funnel(wh, bench.funnel_query())
    want_users, want_secs = generic_funnel(wh, bench.funnel_query())
    assert users == want_users and secs == pytest.approx(want_secs)
    rq = bench.retention_query()
    assert run_retention(wh, rq) == _generic_retention(wh, rq, monkeypatch)


def test_resolve_buckets_separates_clashing_hashes() -> None:
    """Hashes sharing their top bits are moved to free buckets: after the sort every
    bucket holds exactly one hash's rows, in time order."""
    rng = np.random.default_rng(1)
    bits, shift = 10, 54  # tiny buckets: about 20 pairs of the 200 hashes clash
    hashes = rng.integers(0, 2**63, 200, dtype=np.int64).astype(U64) * U64(2)
    h = np.repeat(hashes, 5)
    t = rng.integers(0, 2**40, h.size).astype(U64)
    key = ((h >> U64(64 - bits)) << U64(shift)) | t
    n = resolve_buckets(key, h, bits, shift)
    assert n == len(set(hashes.tolist()))
    assert len(set((hashes >> U64(64 - bits)).tolist())) < n  # clashes were there
    order = np.argsort(key, kind="stable")
    key_s, h_s = key[order], h[order]
    starts = group_starts(key_s, shift)
    assert starts.size == n
    for a, b in zip(starts, [*starts[1:], key_s.size], strict=True):
        assert len(set(h_s[a:b].tolist())) == 1
        assert (np.diff(key_s[a:b] & U64(2**shift - 1)).astype(np.int64) >= 0).all()


# ---------------------------------------------------------------------------------------
# retention
# ---------------------------------------------------------------------------------------


def _generic_retention(wh: Warehouse, q: RetentionQuery, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(retention, "_sorted_applies", lambda *_: False)
        return run_retention(wh, q)


@pytest.fixture(scope="module", params=["UTC", "Asia/Shanghai"])
def gen_wh(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Warehouse]:
    w = Warehouse(load_settings(tmp_path_factory.mktemp("ret"), timezone=request.param), "duckdb")
    w.append_arrow("events", bench.generate(30_000, seed=11))
    yield w
    w.close()


@pytest.fixture(params=["numpy", "compiled"])
def pass_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the sorted paths with the NumPy passes, then with the compiled ones."""
    from yunying.analytics import kernels

    if request.param == "numpy":
        monkeypatch.setattr(kernels, "compiled", None)
    else:
        kernels.warm()
        if kernels.compiled is None:
            pytest.skip("Numba is not installed")
    return str(request.param)


@pytest.mark.parametrize("cohort", ["first_in_range", "first_ever"])
@pytest.mark.parametrize(("period", "periods"), [("week", 12), ("day", 40), ("month", 2), ("day", 3)])
@pytest.mark.parametrize("method", ["classic", "rolling"])
@pytest.mark.parametrize(("start", "ret"), [("search", "add_to_cart"), ("view", "view"), ("pay", None)])
def test_retention_equals_generic(
    gen_wh: Warehouse,
    pass_kind: str,
    monkeypatch: pytest.MonkeyPatch,
    cohort: str,
    period: str,
    periods: int,
    method: str,
    start: str,
    ret: str | None,
) -> None:
    q = RetentionQuery(
        start_event=start,
        return_event=ret,
        cohort=cohort,  # type: ignore[arg-type]
        period=period,  # type: ignore[arg-type]
        periods=periods,
        method=method,  # type: ignore[arg-type]
        dates=DateRange(**{"from": date(2024, 1, 3), "to": date(2024, 1, 3) + timedelta(days=50)}),
    )
    assert retention._retention_sorted(gen_wh, q, 20_000) is not None
    got = run_retention(gen_wh, q)
    assert got == _generic_retention(gen_wh, q, monkeypatch)
    assert got.cohorts and any(any(c.retained[1:]) for c in got.cohorts)


def test_retention_by_hand(wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """Hand-made events (Asia/Shanghai), daily cohorts of the first view, return = pay:
    u1 (local 03-04) pays on local day 1; u5's view is local 03-07 00:30, pay the same day."""
    load(wh)
    q = RetentionQuery(
        start_event="view", return_event="pay", period="day", periods=3,
        dates=DateRange(**{"from": "2024-03-04", "to": "2024-03-10"}),
    )
    r = run_retention(wh, q)
    by = {c.cohort: (c.size, c.retained) for c in r.cohorts}
    assert by["2024-03-04"] == (4, [0, 1, 0, 0])  # u1, u2, u6, u7; u1 pays next day
    assert by["2024-03-07"] == (1, [1, 0, 0, 0])  # u5
    assert r == _generic_retention(wh, q, monkeypatch)


def test_retention_empty(utc_wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    utc_wh.truncate("events")
    q = RetentionQuery(start_event="a", dates=WEEK, period="week", periods=2)
    r = run_retention(utc_wh, q)
    assert r.cohorts == [] and r.total.size == 0
    assert r == _generic_retention(utc_wh, q, monkeypatch)


def test_resolve_buckets_reports_too_few_buckets() -> None:
    h = np.arange(1, 40, dtype=U64) << U64(58)  # 39 hashes, 16 buckets of 4 bits
    key = (h >> U64(60)) << U64(54)
    assert resolve_buckets(key, h, 4, 54) == -1


def test_two_halves_equal_one(utc_wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """Big inputs are split by the key's top bit and scanned on two threads: same answer."""
    wh = utc_wh
    wh.truncate("events")
    wh.append_arrow("events", bench.generate(30_000, seed=8))
    fq, rq = bench.funnel_query(), bench.retention_query()
    want_f, want_r = sorted_funnel(wh, fq), run_retention(wh, rq)
    monkeypatch.setattr(sortkeys, "_SPLIT_ROWS", 0)
    assert [p.tolist() for p in sortkeys.halves(np.array([1, 2**20, 2**63], dtype=U64), 8)] == [[1], [2**20, 2**63]]
    assert sorted_funnel(wh, fq) == want_f
    assert run_retention(wh, rq) == want_r
    assert want_r == _generic_retention(wh, rq, monkeypatch)


@pytest.mark.parametrize("clash", [False, True])
def test_sort_keys_checks_identities_beside_the_sort(
    monkeypatch: pytest.MonkeyPatch, clash: bool, pass_kind: str
) -> None:
    """The two-thread branch: sorted keys, one identity per bucket — also when two
    identities share the bucket bits (their rows move to fresh buckets at the end)."""
    monkeypatch.setattr(sortkeys, "_SPLIT_ROWS", 0)
    rng = np.random.default_rng(3)
    bits, shift = 40, 24
    hashes = rng.integers(0, 2**62, 50, dtype=np.int64).astype(U64) * U64(2)
    if clash:
        hashes[1] = (hashes[0] & ~U64(2**24 - 1)) | U64(12345)  # same top 40 bits
    h = np.repeat(hashes, 3)
    low = rng.integers(0, 2**24, h.size).astype(U64)
    key = ((h >> U64(shift)) << U64(shift)) | low
    got, n = sortkeys.sort_keys(key.copy(), h, bits, shift)
    assert n == 50
    assert (np.diff(got.astype(np.float64)) >= 0).all() and got.size == h.size
    want = sorted(sorted(low[h == x].tolist()) for x in hashes)
    starts = [*group_starts(got, shift).tolist(), got.size]
    groups = [sorted((got[a:b] & U64(2**shift - 1)).tolist()) for a, b in pairwise(starts)]
    assert sorted(groups) == want


def test_funnel_without_numba_gives_the_same(utc_wh: Warehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    """The NumPy level pass (used when Numba is not installed) answers the same."""
    from yunying.analytics import kernels

    wh = utc_wh
    wh.truncate("events")
    wh.append_arrow("events", bench.generate(30_000, seed=9))
    q = bench.funnel_query()
    kernels.warm()
    assert kernels.ready() == (kernels.compiled is not None)
    with_numba = sorted_funnel(wh, q)
    monkeypatch.setattr(kernels, "compiled", None)
    without = sorted_funnel(wh, q)
    assert with_numba[0] == without[0] and with_numba[0][-1] > 0
    assert with_numba[1] == pytest.approx(without[1])
