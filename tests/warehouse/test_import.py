"""Validated import: good and bad files, types, time zones, dedupe, reconciliation."""

from __future__ import annotations

import json
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.warehouse.contracts import CONTRACTS
from yunying.warehouse.engine import Warehouse
from yunying.warehouse.importer import ImportRequest, ImportResult, run_import
from yunying.warehouse.quarantine import quarantine_path


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, str):
        text = text.encode("utf-8")
    path.write_bytes(text)
    return path


def imp(wh: Warehouse, table: str, *paths: Path, **kw: Any) -> ImportResult:
    r = run_import(wh, ImportRequest(table=table, paths=list(paths), **kw))
    for f in r.files:
        assert f.reconciled, f
    return r


def rows(wh: Warehouse, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
    return list(wh.duck.execute(sql, params or []).fetchall())


def quarantined(settings: Settings, sha: str | None = None) -> list[tuple[Any, ...]]:
    con = duckdb.connect(str(quarantine_path(settings)), read_only=True)
    try:
        sql = "SELECT line, field, reason FROM rows"
        if sha:
            sql += f" WHERE sha256 = '{sha}'"
        return list(con.execute(sql + " ORDER BY line").fetchall())
    finally:
        con.close()


GOOD = {
    "events": (
        "event_id,event,user_id,ts,account_id,session_id\n"
        "e1,view,u1,2024-01-02T03:04:05Z,a1,s1\n",
        ("e1", "view", "u1", datetime(2024, 1, 2, 3, 4, 5), "a1", "s1", None),
    ),
    "users": (
        "user_id,first_seen,channel\nu1,2024-01-02 08:00:00,seo\n",
        ("u1", datetime(2024, 1, 2, 0, 0), "seo", None),
    ),
    "orders": (
        "order_id,user_id,ts,amount,currency,status\no1,u1,1704164645,1234567890123456.78,cny,PAID\n",
        ("o1", "u1", datetime(2024, 1, 2, 3, 4, 5), Decimal("1234567890123456.78"), "CNY", "paid",
         None),
    ),
    "accounts": (
        "account_id,name,industry,tier,owner,created_at\na1,Acme,retail,KA,li,1704164645000\n",
        ("a1", "Acme", "retail", "KA", "li", datetime(2024, 1, 2, 3, 4, 5), None),
    ),
    "subscriptions": (
        "subscription_id,account_id,plan,mrr,start_date,end_date\nsub1,a1,pro,99.5,2024-01-01,\n",
        ("sub1", "a1", "pro", Decimal("99.50"), date(2024, 1, 1), None, None),
    ),
}


@pytest.mark.parametrize("table", list(CONTRACTS))
def test_every_contract_loads_a_valid_row_typed(wh: Warehouse, tmp_path: Path, table: str) -> None:
    text, expected = GOOD[table]
    r = imp(wh, table, write(tmp_path / f"{table}.csv", text))
    assert (r.loaded, r.duplicate, r.quarantined) == (1, 0, 0)
    assert rows(wh, f'SELECT * FROM "{table}"') == [expected]


def test_bad_values_are_quarantined_with_line_field_and_reason(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    f = write(
        tmp_path / "orders.csv",
        "order_id,user_id,ts,amount,currency,status\n"
        "o1,u1,2024-01-01 10:00:00,10.00,CNY,paid\n"  # line 2: good
        "o2,u1,2024-01-01 10:00:00,abc,CNY,paid\n"  # 3: wrong type
        "o3,u1,2024-13-45 10:00:00,1,CNY,paid\n"  # 4: bad date
        "o4,,2024-01-01,1,CNY,paid\n"  # 5: missing value
        "o5,u1,2024-01-01,12345678901234567,CNY,paid\n"  # 6: beyond DECIMAL(18,2)
        "o6,u1,2024-01-01,1.005,CNY,paid\n"  # 7: more than 2 decimals
        f"o7,{'x' * 300},2024-01-01,1,CNY,paid\n"  # 8: over-long string
        "o8,u1,2024-01-01,1,CNY,shipped\n"  # 9: not an allowed status
        "o9,u1,2024-01-01,1,RMB1,paid\n"  # 10: bad currency
        "o10,u1,yesterday,1,CNY,paid\n"  # 11: not a time
        "o11,u1,2024-01-01,-5.10,usd,Refunded\n"  # 12: negative (a refund is a status)
        "o12,u1,2024-01-01,5.10,usd,Refunded\n",  # 13: good
    )
    r = imp(wh, "orders", f)
    assert (r.rows_read, r.loaded, r.duplicate, r.quarantined) == (12, 2, 0, 10)
    assert quarantined(settings) == [
        (3, "amount", "not_decimal"),
        (4, "ts", "bad_timestamp"),
        (5, "user_id", "missing"),
        (6, "amount", "decimal_range"),
        (7, "amount", "decimal_scale"),
        (8, "user_id", "too_long"),
        (9, "status", "bad_value"),
        (10, "currency", "bad_currency"),
        (11, "ts", "bad_timestamp"),
        (12, "amount", "negative_amount"),
    ]
    assert rows(wh, "SELECT order_id, amount, currency, status FROM orders ORDER BY 1") == [
        ("o1", Decimal("10.00"), "CNY", "paid"),
        ("o12", Decimal("5.10"), "USD", "refunded"),
    ]


def test_structural_errors_and_non_utf8_keep_true_line_numbers(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    f = write(
        tmp_path / "events.csv",
        b"event_id,event,user_id,ts\n"
        b"e1,view,u1,2024-01-01T00:00:00Z\n"  # 2 good
        b"e2,view\n"  # 3 too few columns
        b"e3,view,u\xff3,2024-01-01T00:00:00Z\n"  # 4 not UTF-8
        b"e4,view,u4,2024-01-01T00:00:00Z,extra,more\n"  # 5 too many columns
        b"e5,view,u5,bad-time\n"  # 6 bad value after the broken lines
        b"e6,view,u6,2024-01-01T00:00:00Z\n",  # 7 good
    )
    r = imp(wh, "events", f)
    assert (r.rows_read, r.loaded, r.quarantined) == (6, 2, 4)
    got = quarantined(settings)
    assert [(g[0], g[2]) for g in got] == [
        (3, "csv_missing_columns"),
        (4, "invalid_encoding"),
        (5, "csv_too_many_columns"),
        (6, "bad_timestamp"),
    ]


def test_missing_required_column_fails_at_once_and_loads_nothing(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    good = write(tmp_path / "good.csv", GOOD["events"][0])
    bad = write(tmp_path / "bad.csv", "event_id,event,ts\ne9,view,2024-01-01\n")
    with pytest.raises(YunyingError) as e:
        run_import(wh, ImportRequest(table="events", paths=[good, bad]))
    assert e.value.key == "importing.missing_columns"
    assert "user_id" in e.value.message()
    assert rows(wh, "SELECT count(*) FROM events") == [(0,)]


@pytest.mark.parametrize(
    ("content", "fmt", "key"),
    [
        (b"", None, "importing.empty_file"),
        (b"PAR1\x00\x00\x01binary junk", "csv", "importing.not_text"),
        (b"event_id,event\n1,2\n", "parquet", "importing.unreadable"),
        (b"not json at all\n", "jsonl", "importing.not_jsonl"),
    ],
)
def test_unreadable_files_fail_with_a_clear_message(
    wh: Warehouse, tmp_path: Path, content: bytes, fmt: str | None, key: str
) -> None:
    f = write(tmp_path / "input.csv", content)
    with pytest.raises(YunyingError) as e:
        run_import(wh, ImportRequest(table="events", paths=[f], format=fmt))  # type: ignore[arg-type]
    assert e.value.key == key
    assert e.value.message() != key  # translated, not the bare key


def test_header_only_file_reads_zero_rows(wh: Warehouse, tmp_path: Path) -> None:
    r = imp(wh, "events", write(tmp_path / "h.csv", "event_id,event,user_id,ts\n"))
    assert (r.rows_read, r.loaded, r.duplicate, r.quarantined) == (0, 0, 0, 0)


def test_ten_thousand_column_junk_is_refused_quickly(wh: Warehouse, tmp_path: Path) -> None:
    header = ",".join(f"c{i}" for i in range(10_000))
    body = ",".join("x" for _ in range(10_000))
    f = write(tmp_path / "junk.csv", header + "\n" + body + "\n")
    with pytest.raises(YunyingError) as e:
        run_import(wh, ImportRequest(table="events", paths=[f]))
    assert e.value.key == "importing.too_many_columns"


def test_duplicates_within_a_file_and_across_chunks_and_reimports(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    settings.imports.chunk_rows = 3
    lines = ["event_id,event,user_id,ts"]
    for i in range(10):
        lines.append(f"e{i % 6},ev{i},u{i},2024-01-01T00:00:0{i}Z")  # e0..e3 twice
    lines.append("e1,dup-but-bad,u1,never")  # an invalid duplicate is quarantined, not counted
    f = write(tmp_path / "events.csv", "\n".join(lines) + "\n")
    r1 = imp(wh, "events", f)
    assert (r1.rows_read, r1.loaded, r1.duplicate, r1.quarantined) == (11, 6, 4, 1)
    # The first occurrence wins, even when the repeat is in a later chunk.
    assert rows(wh, "SELECT event FROM events WHERE event_id = 'e1'") == [("ev1",)]
    r2 = imp(wh, "events", f)
    assert (r2.loaded, r2.duplicate, r2.quarantined) == (0, 10, 1)
    assert rows(wh, "SELECT count(*), count(DISTINCT event_id) FROM events") == [(6, 6)]
    # Quarantine is not duplicated by the re-import.
    assert len(quarantined(settings)) == 1
    # Another file overlapping the first: only the new key loads.
    g = write(tmp_path / "more.csv", "event_id,event,user_id,ts\ne5,x,u,1704103200\ne6,y,u,1704103201\n")
    r3 = imp(wh, "events", g)
    assert (r3.loaded, r3.duplicate) == (1, 1)


@pytest.mark.parametrize(
    ("value", "tz", "expected"),
    [
        ("2024-01-01T10:00:00Z", "Asia/Shanghai", "2024-01-01 10:00:00"),
        ("2024-01-01T10:00:00+08:00", "UTC", "2024-01-01 02:00:00"),
        ("2024-01-01 10:00:00+0800", "UTC", "2024-01-01 02:00:00"),
        ("2024-01-01 10:00:00-05", "UTC", "2024-01-01 15:00:00"),
        ("2024-01-01 10:00:00.250+01:00", "UTC", "2024-01-01 09:00:00.25"),
        ("2024-01-01 10:00:00 Asia/Tokyo", "UTC", "2024-01-01 01:00:00"),
        ("2024-01-01 10:00:00", "Asia/Shanghai", "2024-01-01 02:00:00"),
        ("2024-01-01", "Asia/Shanghai", "2023-12-31 16:00:00"),
        ("2024-07-01 10:00:00", "America/New_York", "2024-07-01 14:00:00"),  # EDT
        ("2024-01-01 10:00:00", "America/New_York", "2024-01-01 15:00:00"),  # EST
        ("1704103200", "Asia/Shanghai", "2024-01-01 10:00:00"),  # epoch seconds
        ("1704103200123", "Asia/Shanghai", "2024-01-01 10:00:00.123"),  # epoch ms
    ],
)
def test_timestamps_are_stored_as_naive_utc(
    wh: Warehouse, tmp_path: Path, value: str, tz: str, expected: str
) -> None:
    f = write(tmp_path / "e.csv", f"event_id,event,user_id,ts\ne1,v,u1,{value}\n")
    r = imp(wh, "events", f, timezone=tz)
    assert r.loaded == 1
    assert rows(wh, "SELECT CAST(ts AS VARCHAR) FROM events") == [(expected,)]


def test_unknown_timezone_is_refused(wh: Warehouse, tmp_path: Path) -> None:
    f = write(tmp_path / "e.csv", GOOD["events"][0])
    with pytest.raises(YunyingError) as e:
        run_import(wh, ImportRequest(table="events", paths=[f], timezone="Mars/Olympus"))
    assert e.value.key == "importing.bad_timezone"


def test_unknown_columns_go_into_properties_merged_with_existing(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    f = write(
        tmp_path / "e.csv",
        'event_id,event,user_id,ts,page,properties,ref\n'
        'e1,view,u1,1704103200,/home,"{""plan"": ""pro""}",ads\n'
        "e2,view,u2,1704103200,/cart,,\n"
        'e3,view,u3,1704103200,,"{""a"": 1}",\n'
        "e4,view,u4,1704103200,,,\n"
        'e5,view,u5,1704103200,/x,"[1, 2]",\n',  # properties must be an object
    )
    r = imp(wh, "events", f)
    assert (r.loaded, r.quarantined) == (4, 1)
    got = {k: (json.loads(v) if v else None) for k, v in rows(wh, "SELECT event_id, properties FROM events")}
    assert got == {
        "e1": {"plan": "pro", "page": "/home", "ref": "ads"},
        "e2": {"page": "/cart"},
        "e3": {"a": 1},
        "e4": None,
    }
    assert quarantined(settings) == [(6, "properties", "not_json_object")]


def test_map_renames_source_columns(wh: Warehouse, tmp_path: Path) -> None:
    f = write(tmp_path / "e.csv", "id,name,uid,time\ne1,view,u1,1704103200\n")
    r = imp(wh, "events", f, mapping={"id": "event_id", "name": "event", "uid": "user_id", "time": "ts"})
    assert r.loaded == 1
    with pytest.raises(YunyingError) as e:
        run_import(wh, ImportRequest(table="events", paths=[f], mapping={"id": "nope"}))
    assert e.value.key == "importing.map_unknown_field"
    with pytest.raises(YunyingError) as e:
        run_import(wh, ImportRequest(table="events", paths=[f], mapping={"missing": "event_id"}))
    assert e.value.key == "importing.map_unknown_source"


def test_parquet_import_with_typed_columns(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    t = pa.table(
        {
            "order_id": ["o1", "o2", "o1", "o3"],
            "user_id": ["u1", "u2", "u1", None],
            "ts": pa.array(
                [datetime(2024, 1, 1, 10), datetime(2024, 1, 2), datetime(2024, 1, 1), datetime(2024, 1, 3)],
                pa.timestamp("us", tz="UTC"),
            ),
            "amount": pa.array([Decimal("1.50"), Decimal("2"), Decimal("3"), Decimal("4")], pa.decimal128(10, 2)),
            "currency": ["CNY"] * 4,
            "status": ["paid"] * 4,
            "coupon": ["c1", None, None, None],
        }
    )
    f = tmp_path / "orders.parquet"
    pq.write_table(t, f)
    r = imp(wh, "orders", f)
    assert (r.rows_read, r.loaded, r.duplicate, r.quarantined) == (4, 2, 1, 1)
    assert rows(wh, "SELECT order_id, CAST(ts AS VARCHAR), amount, properties FROM orders ORDER BY 1") == [
        ("o1", "2024-01-01 10:00:00", Decimal("1.50"), '{"coupon":"c1"}'),
        ("o2", "2024-01-02 00:00:00", Decimal("2.00"), None),
    ]
    assert quarantined(settings) == [(4, "user_id", "missing")]


def test_jsonl_import_keeps_json_types_in_properties(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    f = write(
        tmp_path / "e.jsonl",
        '{"event_id": "e1", "event": "view", "user_id": "u1", "ts": 1704103200, "n": 3, "tags": ["a"]}\n'
        "{broken\n"
        '[1, 2]\n'
        '{"event_id": "e2", "event": "view", "user_id": "u2", "ts": "2024-01-01T00:00:00Z"}\n'
        '{"event_id": "e3", "event": "view", "ts": "2024-01-01T00:00:00Z"}\n',
    )
    r = imp(wh, "events", f)
    assert (r.rows_read, r.loaded, r.quarantined) == (5, 2, 3)
    props = rows(wh, "SELECT properties FROM events WHERE event_id = 'e1'")[0][0]
    assert json.loads(props) == {"n": 3, "tags": ["a"]}
    assert quarantined(settings) == [
        (2, "", "bad_json_line"),
        (3, "", "bad_json_line"),
        (5, "user_id", "missing"),
    ]


def test_same_import_on_every_engine(any_wh: Warehouse, settings: Settings, tmp_path: Path) -> None:
    """DuckDB loads into its file; Spark's sink is the Parquet lake it reads."""
    settings.imports.chunk_rows = 2
    f = write(
        tmp_path / "orders.csv",
        "order_id,user_id,ts,amount,currency,status,note\n"
        "o1,u1,2024-01-01 08:00:00,10.10,CNY,paid,hi\n"
        "o2,u2,2024-01-01T00:00:00Z,20.20,CNY,paid,\n"
        "o1,u1,2024-01-01 08:00:00,10.10,CNY,paid,hi\n"
        "o3,u3,2024-01-01,oops,CNY,paid,\n"
        "o4,u4,1704067200,0.01,CNY,refunded,\n",
    )
    r = imp(any_wh, "orders", f, timezone="Asia/Shanghai")
    assert (r.rows_read, r.loaded, r.duplicate, r.quarantined) == (5, 3, 1, 1)
    r2 = imp(any_wh, "orders", f)
    assert (r2.loaded, r2.duplicate, r2.quarantined) == (0, 4, 1)
    any_wh.refresh()
    t = any_wh.table("orders")
    df = any_wh.execute(t.order_by("order_id"))
    assert list(df["order_id"]) == ["o1", "o2", "o4"]
    assert [str(x) for x in df["amount"]] == ["10.10", "20.20", "0.01"]
    assert [str(x) for x in df["ts"]] == ["2024-01-01 00:00:00"] * 3
    assert json.loads(df["properties"][0]) == {"note": "hi"}


def test_benchmark_runs_on_a_tiny_size(tmp_path: Path) -> None:
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "benchmarks" / "import_bench.py"
    spec = importlib.util.spec_from_file_location("import_bench", path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    results = mod.bench(2_000, tmp_path)
    assert [r["format"] for r in results] == ["csv", "parquet"]
    for r in results:
        assert r["rows"] == 2_000 and float(r["ratio"]) > 0 and float(r["yunying_peak_mib"]) > 10
