"""Retention and stickiness broken down by a property, on events worked out by hand.

The project zone is Asia/Shanghai; every event is at 02:00-05:00 UTC, the same local date.

Retention (start ``signup``, return ``open``, days 2024-03-04..06, 3 periods):

    user  signups (local date, os)             opens
    a1    03-04 ios                            03-05, 03-07, 03-20
    a2    03-04 ios                            03-06, 03-11 (day 7)
    a3    03-04 android                        03-05
    a4    03-05 android, 03-06 ios             03-06
    a5    03-05 (no os)                        -
    a6    03-01 web (before the range), 03-05 ios   03-06
    a7    03-06 web                            03-06 (same day), 03-08

Stickiness (event ``use``, the week of Monday 03-04; 03-11.. is a partial week):

    b1 ios on 03-04, 03-05, 03-06          b2 android on 03-04, 03-05
    b3 ios on 03-04, android on 03-05, 03-06 (split: 1 ios day, 2 android days)
    b4 no os on 03-07                      b5 web on 03-08
    b6 mac on 03-11 (outside any whole week: must not take a top-N slot)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from tests.analytics._data import load
from tests.conftest import make_project
from yunying.analytics.common import OTHER, Breakdown, DateRange
from yunying.analytics.retention import RetentionQuery, RetentionResult, run_retention
from yunying.analytics.stickiness import StickinessQuery, run_stickiness
from yunying.cli import app
from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse

Row = tuple[str, str, datetime, dict[str, Any] | None]


def at(day: int, hour: int = 2, month: int = 3) -> datetime:
    return datetime(2024, month, day, hour)


ROWS: list[Row] = [
    ("a1", "signup", at(4), {"os": "ios"}),
    ("a1", "open", at(5), None),
    ("a1", "open", at(7), None),
    ("a1", "open", at(20), None),
    ("a2", "signup", at(4), {"os": "ios"}),
    ("a2", "open", at(6), None),
    ("a2", "open", at(11), None),
    ("a3", "signup", at(4), {"os": "android"}),
    ("a3", "open", at(5), None),
    ("a4", "signup", at(5), {"os": "android"}),
    ("a4", "signup", at(6), {"os": "ios"}),
    ("a4", "open", at(6, 3), None),
    ("a5", "signup", at(5), {"plan": "free"}),
    ("a6", "signup", at(1), {"os": "web"}),
    ("a6", "signup", at(5), {"os": "ios"}),
    ("a6", "open", at(6), None),
    ("a7", "signup", at(6), {"os": "web"}),
    ("a7", "open", at(6, 5), None),
    ("a7", "open", at(8), None),
    ("b1", "use", at(4), {"os": "ios"}),
    ("b1", "use", at(5), {"os": "ios"}),
    ("b1", "use", at(6), {"os": "ios"}),
    ("b2", "use", at(4), {"os": "android"}),
    ("b2", "use", at(5), {"os": "android"}),
    ("b3", "use", at(4), {"os": "ios"}),
    ("b3", "use", at(5), {"os": "android"}),
    ("b3", "use", at(6), {"os": "android"}),
    ("b4", "use", at(7), None),
    ("b5", "use", at(8), {"os": "web"}),
    ("b6", "use", at(11), {"os": "mac"}),
]


def dr(a: str, b: str) -> DateRange:
    return DateRange.model_validate({"from": a, "to": b})


def ret_q(**kw: Any) -> RetentionQuery:
    base: dict[str, Any] = {
        "start_event": "signup", "return_event": "open", "periods": 3,
        "dates": dr("2024-03-04", "2024-03-06"), "breakdown": Breakdown(property="os"),
    }
    return RetentionQuery(**{**base, **kw})


def stick_q(**kw: Any) -> StickinessQuery:
    base: dict[str, Any] = {
        "event": "use", "dates": dr("2024-03-04", "2024-03-12"), "breakdown": Breakdown(property="os")
    }
    return StickinessQuery(**{**base, **kw})


def cohorts(r: Any) -> list[tuple[str, int, list[int]]]:
    return [(c.cohort, c.size, c.retained) for c in r.cohorts]


def by_value(r: RetentionResult) -> dict[str, list[tuple[str, int, list[int]]]]:
    return {b.value: cohorts(b) for b in r.breakdowns}


def assert_values_add_up(r: RetentionResult) -> None:
    """Each cohort membership has one value: sizes, cells, totals and D1/D7/D30 add up."""
    per_label: dict[str, tuple[int, list[int]]] = {}
    for b in r.breakdowns:
        for c in b.cohorts:
            size, ret = per_label.get(c.cohort, (0, [0] * len(c.retained)))
            per_label[c.cohort] = (size + c.size, [x + y for x, y in zip(ret, c.retained, strict=True)])
    assert per_label == {c.cohort: (c.size, c.retained) for c in r.cohorts}
    assert sum(b.total.size for b in r.breakdowns) == r.total.size
    assert [sum(x) for x in zip(*(b.total.retained for b in r.breakdowns), strict=True)] == r.total.retained
    for i, s in enumerate(r.summary):
        assert sum(b.summary[i].users for b in r.breakdowns) == s.users
        assert sum(b.summary[i].retained for b in r.breakdowns) == s.retained


@pytest.fixture
def data(wh: Warehouse) -> Warehouse:
    return load(wh, ROWS)


# ---------------------------------------------------------------------------------------
# retention
# ---------------------------------------------------------------------------------------


def test_retention_first_ever_by_hand(data: Warehouse) -> None:
    r = run_retention(data, ret_q())
    assert cohorts(r) == [
        ("2024-03-04", 3, [0, 2, 1, 1]), ("2024-03-05", 2, [0, 1, 0, 0]), ("2024-03-06", 1, [1, 0, 1, 0])
    ]
    # android and ios have 2 cohort users each (ties by name), then (none) and web with 1;
    # a6's first signup ever (web, 03-01) is before the range: a6 is in no cohort
    assert by_value(r) == {
        "android": [("2024-03-04", 1, [0, 1, 0, 0]), ("2024-03-05", 1, [0, 1, 0, 0])],
        "ios": [("2024-03-04", 2, [0, 1, 1, 1])],
        "(none)": [("2024-03-05", 1, [0, 0, 0, 0])],
        "web": [("2024-03-06", 1, [1, 0, 1, 0])],
    }
    assert [b.value for b in r.breakdowns] == ["android", "ios", "(none)", "web"]
    sm = {b.value: [(s.day, s.users, s.retained) for s in b.summary] for b in r.breakdowns}
    assert sm["android"] == [(1, 2, 2), (7, 2, 0), (30, 0, 0)]
    assert sm["ios"] == [(1, 2, 1), (7, 2, 1), (30, 0, 0)]  # a1 on day 1, a2 on day 7
    ios = r.breakdowns[1]
    assert ios.total.rates == [0.0, 0.5, 0.5, 0.5]
    assert_values_add_up(r)


def test_retention_all_users_unchanged_by_a_breakdown(data: Warehouse) -> None:
    """The all-users fields with a breakdown are those of the same query without one
    (which may take the sorted path), for every cohort kind and method."""
    for cohort in ("first_ever", "first_in_range", "recurring"):
        for method in ("classic", "rolling"):
            with_bd = run_retention(data, ret_q(cohort=cohort, method=method))
            plain = run_retention(data, ret_q(cohort=cohort, method=method, breakdown=None))
            assert plain.breakdowns == []
            assert with_bd.model_copy(update={"breakdowns": []}) == plain, (cohort, method)
            assert_values_add_up(with_bd)
    # classic beyond 62 periods takes the generic cells and hits queries on DuckDB too
    long = run_retention(data, ret_q(periods=70))
    assert long.model_copy(update={"breakdowns": []}) == run_retention(data, ret_q(periods=70, breakdown=None))
    assert [b.total.retained[:4] for b in long.breakdowns] == [[0, 2, 0, 0], [0, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 0]]
    assert [s.retained for s in long.breakdowns[1].summary] == [1, 1, 0]


def test_retention_first_in_range_and_recurring(data: Warehouse) -> None:
    r = run_retention(data, ret_q(cohort="first_in_range"))
    # a6 joins on 03-05 with that signup's os (ios); a4 keeps its first in-range signup (android)
    assert by_value(r)["ios"] == [("2024-03-04", 2, [0, 1, 1, 1]), ("2024-03-05", 1, [0, 1, 0, 0])]
    assert by_value(r)["android"] == [("2024-03-04", 1, [0, 1, 0, 0]), ("2024-03-05", 1, [0, 1, 0, 0])]
    assert [b.value for b in r.breakdowns] == ["ios", "android", "(none)", "web"]
    rec = run_retention(data, ret_q(cohort="recurring"))
    # each period's first signup counts: a4 is android on 03-05 and ios on 03-06
    assert by_value(rec) == {
        "ios": [("2024-03-04", 2, [0, 1, 1, 1]), ("2024-03-05", 1, [0, 1, 0, 0]), ("2024-03-06", 1, [1, 0, 0, 0])],
        "android": [("2024-03-04", 1, [0, 1, 0, 0]), ("2024-03-05", 1, [0, 1, 0, 0])],
        "(none)": [("2024-03-05", 1, [0, 0, 0, 0])],
        "web": [("2024-03-06", 1, [1, 0, 1, 0])],
    }
    assert cohorts(rec) == [
        ("2024-03-04", 3, [0, 2, 1, 1]), ("2024-03-05", 3, [0, 2, 0, 0]), ("2024-03-06", 2, [2, 0, 1, 0])
    ]
    rolling = run_retention(data, ret_q(method="rolling"))
    # a1 returns up to day 16, a2 up to day 7: both count in every period
    assert by_value(rolling)["ios"] == [("2024-03-04", 2, [2, 2, 2, 2])]
    assert by_value(rolling)["android"] == [("2024-03-04", 1, [1, 1, 0, 0]), ("2024-03-05", 1, [1, 1, 0, 0])]


def test_retention_top_n_and_other(data: Warehouse) -> None:
    r = run_retention(data, ret_q(breakdown=Breakdown(property="os", limit=2)))
    assert [b.value for b in r.breakdowns] == ["android", "ios", OTHER]
    other = r.breakdowns[2]
    assert cohorts(other) == [("2024-03-05", 1, [0, 0, 0, 0]), ("2024-03-06", 1, [1, 0, 1, 0])]
    assert (other.total.size, other.total.retained) == (2, [1, 0, 1, 0])
    assert_values_add_up(r)
    # a limit that keeps every value: no (other) group
    r = run_retention(data, ret_q(breakdown=Breakdown(property="os", limit=4)))
    assert [b.value for b in r.breakdowns] == ["android", "ios", "(none)", "web"]


def test_retention_by_user_property(data: Warehouse) -> None:
    users = pa.table({
        "user_id": ["a1", "a2", "a3", "a4", "a5", "a6"],
        "first_seen": pa.array([at(1)] * 6, pa.timestamp("us")),
        "channel": ["ads", "seo", "ads", "seo", "ads", "ads"],
        "properties": pa.array([None] * 6, pa.string()),
    })
    data.append_arrow("users", users)
    data.refresh()
    r = run_retention(data, ret_q(breakdown=Breakdown(property="user.channel")))
    assert by_value(r) == {
        "ads": [("2024-03-04", 2, [0, 2, 0, 1]), ("2024-03-05", 1, [0, 0, 0, 0])],
        "seo": [("2024-03-04", 1, [0, 0, 1, 0]), ("2024-03-05", 1, [0, 1, 0, 0])],
        "(none)": [("2024-03-06", 1, [1, 0, 1, 0])],  # a7 has no users row
    }
    assert_values_add_up(r)


def test_retention_ties_go_to_the_lower_event_id(wh: Warehouse) -> None:
    same = at(4)
    load(wh, [("t1", "signup", same, {"os": "android"}), ("t1", "signup", same, {"os": "ios"})])
    r = run_retention(wh, ret_q(return_event=None))
    assert [(b.value, b.total.size) for b in r.breakdowns] == [("android", 1)]


def test_retention_rows_and_json(data: Warehouse) -> None:
    r = run_retention(data, ret_q(breakdown=Breakdown(property="os", limit=1)))
    headers, rows = r.to_rows()
    assert headers[:3] == ["Group", "Cohort", "Users"]
    assert [row[:3] for row in rows] == [
        ["all users", "2024-03-04", 3], ["all users", "2024-03-05", 2], ["all users", "2024-03-06", 1],
        ["all users", "all cohorts", 6],
        ["android", "2024-03-04", 1], ["android", "2024-03-05", 1], ["android", "all cohorts", 2],
        [OTHER, "2024-03-04", 2], [OTHER, "2024-03-05", 1], [OTHER, "2024-03-06", 1],
        [OTHER, "all cohorts", 4],
    ]
    plain_headers, plain_rows = run_retention(data, ret_q(breakdown=None)).to_rows()
    assert plain_headers == headers[1:] and plain_rows == [row[1:] for row in rows[:4]]
    doc = json.loads(r.model_dump_json())
    assert RetentionResult.model_validate(doc) == r
    assert doc["breakdowns"][0]["value"] == "android"


# ---------------------------------------------------------------------------------------
# stickiness
# ---------------------------------------------------------------------------------------


def test_stickiness_by_hand(data: Warehouse) -> None:
    r = run_stickiness(data, stick_q())
    # all users: b1 3 days, b2 2, b3 3, b4 1, b5 1 (b6's week is not whole)
    assert r.distribution == [2, 1, 2, 0, 0, 0, 0]
    got = {b.value: b.distribution[:3] for b in r.breakdowns}
    # b3 counts under both values: 1 ios day and 2 android days
    assert got == {"android": [0, 2, 0], "ios": [1, 0, 1], "(none)": [1, 0, 0], "web": [1, 0, 0]}
    assert [b.value for b in r.breakdowns] == ["android", "ios", "(none)", "web"]  # no mac
    ios = r.breakdowns[1]
    assert ios.share[:3] == [0.5, 0.0, 0.5] and ios.average_days == 2.0
    assert [(p.period, p.users[:3]) for p in ios.periods] == [("2024-03-04", [1, 0, 1])]
    # a split user makes the values add up to more than all users
    assert sum(sum(b.distribution) for b in r.breakdowns) == sum(r.distribution) + 1


def test_stickiness_other_and_unsplit_sum(data: Warehouse) -> None:
    r = run_stickiness(data, stick_q(breakdown=Breakdown(property="os", limit=2)))
    assert [(b.value, b.distribution[:3]) for b in r.breakdowns] == [
        ("android", [0, 2, 0]), ("ios", [1, 0, 1]), (OTHER, [2, 0, 0])
    ]
    # without the split user b3 every user has one value: the values add up to all users
    r = run_stickiness(data, stick_q(filters=[{"property": "user_id", "operator": "ne", "value": "b3"}]))
    total = [sum(x) for x in zip(*(b.distribution for b in r.breakdowns), strict=True)]
    assert total == r.distribution == [2, 1, 1, 0, 0, 0, 0]
    plain = run_stickiness(data, stick_q(breakdown=None))
    assert plain.breakdowns == [] and plain.to_rows()[0] == ["Active days", "Users", "Share"]
    assert run_stickiness(data, stick_q()).model_copy(update={"breakdowns": []}) == plain
    headers, rows = run_stickiness(data, stick_q(breakdown=Breakdown(property="os", limit=1))).to_rows()
    assert headers == ["Group", "Active days", "Users", "Share"]
    assert rows[0] == ["all users", 1, 2, "40.0%"] and rows[7] == ["android", 1, 0, "0.0%"]
    assert [row[0] for row in rows] == ["all users"] * 7 + ["android"] * 7 + [OTHER] * 7


# ---------------------------------------------------------------------------------------
# bad input, both engines, the CLI
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("prop", ["os.name", "user.", "", "a b", "$.os", "user.x.y"])
def test_bad_property_path_is_refused(prop: str) -> None:
    with pytest.raises(ValidationError, match="invalid property name"):
        ret_q(breakdown={"property": prop})
    with pytest.raises(ValidationError, match="invalid property name"):
        stick_q(breakdown={"property": prop})


def test_breakdowns_on_every_engine(any_wh: Warehouse) -> None:
    """DuckDB and Spark give the same hand-computed breakdowns (one small data set)."""
    wh = load(any_wh, ROWS)
    r = run_retention(wh, ret_q(breakdown=Breakdown(property="os", limit=2)))
    assert cohorts(r) == [
        ("2024-03-04", 3, [0, 2, 1, 1]), ("2024-03-05", 2, [0, 1, 0, 0]), ("2024-03-06", 1, [1, 0, 1, 0])
    ]
    assert [(s.users, s.retained) for s in r.summary] == [(6, 3), (6, 1), (0, 0)]
    assert [(b.value, cohorts(b)) for b in r.breakdowns] == [
        ("android", [("2024-03-04", 1, [0, 1, 0, 0]), ("2024-03-05", 1, [0, 1, 0, 0])]),
        ("ios", [("2024-03-04", 2, [0, 1, 1, 1])]),
        (OTHER, [("2024-03-05", 1, [0, 0, 0, 0]), ("2024-03-06", 1, [1, 0, 1, 0])]),
    ]
    assert [(s.users, s.retained) for s in r.breakdowns[1].summary] == [(2, 1), (2, 1), (0, 0)]
    rec = run_retention(wh, ret_q(cohort="recurring"))
    assert [(b.value, b.total.size) for b in rec.breakdowns] == [
        ("ios", 4), ("android", 2), ("(none)", 1), ("web", 1)
    ]
    st = run_stickiness(wh, stick_q())
    assert [(b.value, b.distribution[:3]) for b in st.breakdowns] == [
        ("android", [0, 2, 0]), ("ios", [1, 0, 1]), ("(none)", [1, 0, 0]), ("web", [1, 0, 0])
    ]


runner = CliRunner()


@pytest.fixture
def project(tmp_path: Path) -> Path:
    w = Warehouse(make_project(tmp_path), "duckdb")
    load(w, ROWS)
    w.close()
    return tmp_path


def cli(*args: str) -> str:
    r = runner.invoke(app, list(args), env={"YUNYING_LANGUAGE": "en"})
    assert r.exit_code == 0, r.output
    return r.stdout


def test_cli_retention_and_stickiness_breakdowns(project: Path) -> None:
    p = ["-p", str(project)]
    ret = ["retention", "--start", "signup", "--return", "open", "--periods", "3",
           "--from", "2024-03-04", "--to", "2024-03-06", *p]
    doc = json.loads(cli(*ret, "--by", "os", "--limit", "2", "-f", "json"))
    assert [b["value"] for b in doc["breakdowns"]] == ["android", "ios", OTHER]
    assert doc["breakdowns"][1]["cohorts"][0]["retained"] == [0, 1, 1, 1]
    assert doc["cohorts"][0]["retained"] == [0, 2, 1, 1]
    csv_lines = cli(*ret, "--by", "os", "--limit", "1", "-f", "csv").splitlines()
    assert csv_lines[0].startswith("Group,Cohort,Users,Day 0")
    assert csv_lines[5] == "android,2024-03-04,1,0.0%,100.0%,0.0%,0.0%"
    table = cli(*ret, "--by", "os")
    assert "ios: D7 retention: 50.0% (1 of 2)" in table and "D1 retention: 50.0% (3 of 6)" in table
    st = ["stickiness", "--event", "use", "--from", "2024-03-04", "--to", "2024-03-10", *p]
    doc = json.loads(cli(*st, "--by", "os", "-f", "json"))
    assert doc["breakdowns"][0]["distribution"][:3] == [0, 2, 0]
    out = cli(*st, "--by", "os", "--limit", "1", "-f", "csv").splitlines()
    assert out[0] == "Group,Active days,Users,Share" and out[8] == "android,1,0,0.0%"
    assert "android: 2.00 active days on average" in cli(*st, "--by", "os")
    assert "breakdowns" in cli(*st, "-f", "json")  # empty list without --by


def test_cli_bad_breakdown_is_a_clear_message(project: Path) -> None:
    env = {**os.environ, "YUNYING_LANGUAGE": "en"}
    r = subprocess.run(
        [sys.executable, "-c", "from yunying.cli import main; main()", "retention", "--start", "signup",
         "--by", "os.name", "-p", str(project)],
        capture_output=True, text=True, env=env, check=False,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "Invalid query: breakdown: invalid property name 'os.name'" in r.stderr

    def refused(*args: str) -> YunyingError:
        res = runner.invoke(app, [*args, "-p", str(project)])
        assert isinstance(res.exception, YunyingError), res.output
        return res.exception

    e = refused("stickiness", "--by", "a b")
    assert e.key == "analytics.invalid_query" and e.params["field"] == "breakdown"
    e = refused("retention", "--start", "signup", "--by", "os", "--limit", "0")
    assert e.params["field"] == "breakdown.limit"
    e = refused("retention", "--start", "signup", "--by", "os", "--export-users", str(project / "x.csv"))
    assert e.key == "retention.export_breakdown" and "without --by" in e.message("en")
    assert not (project / "x.csv").exists()
