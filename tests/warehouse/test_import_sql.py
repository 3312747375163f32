"""The import's fast SQL shortcuts give exactly what the plain expressions give."""

from __future__ import annotations

import json
from pathlib import Path

import duckdb
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tests.support.fuzz import examples
from yunying.warehouse.contracts import contract
from yunying.warehouse.importer import _properties_sql, _Source, _trimmed, _typed_sql

# Unicode space separators (trimmed by DuckDB) and other blanks (kept) at the edges.
EDGE = [" ", "\u00a0", "\u1680", "\u2003", "\u202f", "\u3000", "\t", "\n", "\u200b", "\ufeff"]


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("SET TimeZone = 'UTC'")
    return c


@given(
    core=st.text(max_size=12),
    left=st.lists(st.sampled_from(EDGE), max_size=2),
    right=st.lists(st.sampled_from(EDGE), max_size=2),
)
@settings(max_examples=examples(300), deadline=None)
def test_guarded_trim_equals_trim(core: str, left: list[str], right: list[str]) -> None:
    v = "".join(left) + core.replace("\x00", "") + "".join(right)
    c = duckdb.connect()
    got = c.execute(f"SELECT {_trimmed('x')}, trim(x) FROM (SELECT ?::VARCHAR AS x)", [v]).fetchall()
    assert got[0][0] == got[0][1]


VALUES = [
    "2024-01-01 10:00:00", "2024-01-01T10:00:00", "2024-1-5 3:04:05", "2024-01-01",
    "2024-01-01 10:00", "2024-01-01 10:00:00.5", "2024-01-01 24:00:00", "2024-02-30 10:00:00",
    "2024-01-01 10:00:00Z", "2024-01-01T10:00:00z", "2024-01-01 10:00:00+08",
    "2024-01-01 10:00:00+0800", "2024-01-01 10:00:00-05:00", "2024-01-01 10:00:00 UTC",
    "2024-01-01 10:00:00 Asia/Tokyo", "2024-01-01 10:00:00 Etc/GMT-8", "1704103200",
    "1704103200123", "-86400", "20240101", "12024-01-01 10:00:00", "0024-01-01 10:00:00",
    "not a time", "",
]


@pytest.mark.parametrize("tz", ["UTC", "Asia/Shanghai", "America/New_York"])
def test_timestamp_fast_path_equals_the_general_parse(con: duckdb.DuckDBPyConnection, tz: str) -> None:
    col = next(c for c in contract("events").columns if c.name == "ts")
    fast, _ = _typed_sql(col, "v", None, tz)
    assert fast.startswith("coalesce(")
    # The general parse alone is the second argument of the coalesce.
    general = fast[fast.index(", CASE WHEN regexp_full_match") + 2 : -1]
    params: dict[str, str] = {"tz": tz} if "$tz" in fast else {}
    for v in VALUES:
        sql = f"SELECT ({fast})::VARCHAR, ({general})::VARCHAR FROM (SELECT {_lit(v)} AS v)"
        a, b = con.execute(sql, params).fetchall()[0]
        assert a == b, (v, tz, a, b)


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@given(
    keys=st.lists(st.text(min_size=1, max_size=6).filter(lambda k: "\x00" not in k), min_size=1,
                  max_size=3, unique=True),
    vals=st.lists(st.text(min_size=1, max_size=8).filter(lambda v: "\x00" not in v), min_size=3,
                  max_size=3),
)
@settings(max_examples=examples(150), deadline=None)
# Names the generated SQL uses itself (a lambda variable, helper columns, aliases): found
# by hypothesis (keys=['E'] shadowed the lambda's `e`), pinned here.
@example(keys=["E"], vals=["a", "b", "c"])
@example(keys=["e", "E", "v"], vals=["a", "b", "c"])
@example(keys=["k", "x", "_yy_e"], vals=["a", "b", "c"])
@example(keys=["_yy_c0", "_yy_c1", "_yy_bad"], vals=["a", "b", "c"])
def test_properties_by_concatenation_equal_json_object(keys: list[str], vals: list[str]) -> None:
    # The base rows name columns positionally; the file's names are only literals.
    src = _Source(Path("x.csv"), "csv", "", keys, {}, keys)
    expr = _properties_sql(src, "NULL")
    cols = ", ".join(
        f"{_lit(v)}::VARCHAR AS {_q(i)}" for i, v in zip(src.internal, vals, strict=False)
    )
    c = duckdb.connect()
    got = c.execute(f"SELECT {expr} FROM (SELECT {cols})").fetchall()[0][0]
    want = c.execute(
        "SELECT json_object(" + ", ".join(
            f"{_lit(k)}, {_lit(v)}" for k, v in zip(keys, vals, strict=False)
        ) + ")::VARCHAR"
    ).fetchall()[0][0]
    assert got == want
    assert json.loads(got) == dict(zip(keys, vals, strict=False))


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def test_chunks_are_whole_row_groups_once_they_span_one() -> None:
    from yunying.warehouse.importer import _aligned_chunk

    assert [_aligned_chunk(n) for n in (0, 3, 122_879)] == [1, 3, 122_879]
    assert _aligned_chunk(122_880) == 122_880
    assert _aligned_chunk(1_000_000) == 9 * 122_880
