"""Funnels: hand-computed fixture, modes, exclusions, breakdown, and ClickHouse parity."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.analytics._data import load
from yunying.analytics.common import DateRange, PropertyFilter
from yunying.analytics.funnels import (
    FunnelQuery,
    FunnelStep,
    export_funnel_users,
    run_funnel,
)
from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse

WEEK = DateRange(**{"from": "2024-03-04", "to": "2024-03-10"})


def q(**kw: object) -> FunnelQuery:
    base: dict[str, object] = {
        "steps": [FunnelStep(event="view"), FunnelStep(event="cart"), FunnelStep(event="pay")],
        "dates": WEEK,
    }
    base.update(kw)
    return FunnelQuery(**base)  # type: ignore[arg-type]


def users(r: object) -> list[int]:
    return [s.users for s in r.steps]  # type: ignore[attr-defined]


def test_ordered_by_hand(wh: Warehouse) -> None:
    load(wh)
    r = run_funnel(wh, q(interval="day"))
    # u1,u2,u3,u5,u6,u7 viewed; u4 only carted; u2's pay is 16 days late; u3 converts from
    # the 2nd view with the pay exactly on the 14-day bound; u6's cart ties its view.
    assert users(r) == [6, 5, 2]
    assert [s.drop_off for s in r.steps] == [1, 3, 0]
    assert r.steps[2].conversion == pytest.approx(2 / 6)
    ttc = r.time_to_convert
    assert ttc is not None and ttc.users == 2
    assert ttc.median_seconds == pytest.approx((86400 + 14 * 86400) / 2)
    # conversion over time, by the local day of the first view (u5: local 2024-03-07)
    over = {p.period[:10]: (p.entered, p.converted) for p in r.over_time}
    assert over == {"2024-03-04": (4, 1), "2024-03-05": (1, 1), "2024-03-07": (1, 0)}


def test_modes_and_exclusions(wh: Warehouse) -> None:
    load(wh)
    assert users(run_funnel(wh, q(mode="strict"))) == [6, 4, 2]  # u7 searched in between
    # unordered: any step may start; u4's cart counts, u5 did view+pay, u2 cart+pay in 14 d
    assert users(run_funnel(wh, q(mode="unordered"))) == [7, 6, 2]
    assert users(run_funnel(wh, q(exclusions=[FunnelStep(event="search")]))) == [5, 4, 2]
    # a shorter window: u3's 2nd attempt needs 14 days
    assert users(run_funnel(wh, q(window_days=13))) == [6, 5, 1]


def test_step_filters_and_breakdown(wh: Warehouse) -> None:
    load(wh)
    steps = [
        FunnelStep(event="view", filters=[PropertyFilter(property="channel", value="ads")]),
        FunnelStep(event="cart"),
        FunnelStep(event="pay", filters=[PropertyFilter(property="revenue", operator="gt", value=50)]),
    ]
    assert users(run_funnel(wh, q(steps=steps))) == [3, 3, 1]
    r = run_funnel(wh, q(breakdown={"property": "channel"}))
    groups = {g.value: [s.users for s in g.steps] for g in r.groups}
    assert groups == {"ads": [2, 2, 1], "organic": [1, 1, 1], "(none)": [3, 2, 0]}


def test_export_dropoffs(wh: Warehouse, tmp_path: Path) -> None:
    load(wh)
    out = tmp_path / "drop.csv"
    n = export_funnel_users(wh, q(), 2, str(out))
    assert n == 3
    assert out.read_text().splitlines() == ["user_id", "u2", "u6", "u7"]
    with pytest.raises(YunyingError):
        export_funnel_users(wh, q(), 4, str(out))


def test_query_validation() -> None:
    with pytest.raises(ValueError):
        q(steps=[FunnelStep(event="view")])
    with pytest.raises(ValueError):
        q(steps=[FunnelStep(event=f"e{i}") for i in range(21)])
    with pytest.raises(ValueError):
        PropertyFilter(property="a; drop table", value=1)


def test_breakdown_by_user_property(wh: Warehouse, tmp_path: Path) -> None:
    """``user.channel`` splits by the users table; each group equals that group alone."""
    import datetime as dt
    import json

    import pyarrow as pa

    from tests.analytics._data import ROWS
    from yunying.config import load_settings

    load(wh)
    people = {"u1": ("sem", "上海"), "u2": ("sem", "北京"), "u3": ("organic", "上海")}
    wh.append_arrow(
        "users",
        pa.table(
            {
                "user_id": list(people),
                "first_seen": [dt.datetime(2024, 3, 1)] * 3,
                "channel": [c for c, _ in people.values()],
                "properties": [json.dumps({"city": city}) for _, city in people.values()],
            }
        ),
    )
    by_channel = run_funnel(wh, q(breakdown={"property": "user.channel"}))
    got = {g.value: [s.users for s in g.steps] for g in by_channel.groups}
    by_city = run_funnel(wh, q(breakdown={"property": "user.city"}))
    got_city = {g.value: [s.users for s in g.steps] for g in by_city.groups}

    def alone(ids: set[str]) -> list[int]:
        other = Warehouse(load_settings(tmp_path / "-".join(sorted(ids))), "duckdb")
        load(other, [r for r in ROWS if r[0] in ids])
        try:
            return users(run_funnel(other, q()))
        finally:
            other.close()

    assert got["sem"] == alone({"u1", "u2"})
    assert got["organic"] == alone({"u3"})
    assert got["(none)"] == alone({"u4", "u5", "u6", "u7"})
    assert got_city["上海"] == alone({"u1", "u3"})
    with pytest.raises(ValueError):
        FunnelQuery(steps=[FunnelStep(event="a"), FunnelStep(event="b")], breakdown={"property": "user.a b"})
