"""Quarantine store: reconciliation per file, show, export → correct → re-import, clear."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from yunying.config import Settings
from yunying.errors import YunyingError
from yunying.warehouse.engine import Warehouse
from yunying.warehouse.importer import ImportRequest, run_import
from yunying.warehouse.quarantine import (
    clear_import,
    count_quarantined,
    export_import,
    list_imports,
    show_import,
)
from yunying.warehouse.status import warehouse_status

ORDERS = (
    "order_id,user_id,ts,amount,currency,status,channel\n"
    "o1,u1,2024-01-01T00:00:00Z,10.00,CNY,paid,app\n"
    "o2,u2,2024-01-01T00:00:00Z,ten,CNY,paid,web\n"
    "o3,u3,someday,3.00,CNY,paid,\n"
    "o1,u1,2024-01-01T00:00:00Z,10.00,CNY,paid,app\n"
    "o4,u4,2024-01-02T00:00:00Z,4.00,CNY,paid\n"
)


def test_counts_reconcile_per_file_and_show_explains(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    a = tmp_path / "a.csv"
    a.write_text(ORDERS, encoding="utf-8")
    b = tmp_path / "b.csv"
    b.write_text("order_id,user_id,ts,amount,currency,status\no9,u9,1704103200,1,CNY,paid\n", encoding="utf-8")
    r = run_import(wh, ImportRequest(table="orders", paths=[a, b]))
    fa, fb = r.files
    assert (fa.rows_read, fa.loaded, fa.duplicate, fa.quarantined) == (5, 1, 1, 3)
    assert (fb.rows_read, fb.loaded, fb.duplicate, fb.quarantined) == (1, 1, 0, 0)
    assert count_quarantined(settings) == 3
    log = list_imports(settings)
    assert {(e.file, e.rows_read, e.loaded, e.duplicate, e.quarantined, e.status) for e in log.imports} == {
        (str(a), 5, 1, 1, 3, "done"),
        (str(b), 1, 1, 0, 0, "done"),
    }
    detail = show_import(settings, fa.import_id)
    assert detail.total == 3
    assert [(x.line, x.field, x.reason, x.value) for x in detail.rows] == [
        (3, "amount", "not_decimal", "ten"),
        (4, "ts", "bad_timestamp", "someday"),
        (6, "channel", "csv_missing_columns", "o4,u4,2024-01-02T00:00:00Z,4.00,CNY,paid"),
    ]
    assert detail.rows[0].message == "'amount' is not a decimal number"
    assert "to_rows" in dir(detail) and detail.to_rows()[1][0][0] == 3
    # status (another area's code) reads the count through count_quarantined.
    assert warehouse_status(wh).quarantined == 3


def test_export_correct_and_reimport_loads_the_fixed_rows(
    wh: Warehouse, settings: Settings, tmp_path: Path
) -> None:
    a = tmp_path / "a.csv"
    a.write_text(ORDERS, encoding="utf-8")
    r = run_import(wh, ImportRequest(table="orders", paths=[a]))
    out = tmp_path / "fix" / "bad.csv"
    assert export_import(settings, r.files[0].import_id, out) == 3
    text = out.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0] == "order_id,user_id,ts,amount,currency,status,channel"
    assert lines[1:] == [
        "o2,u2,2024-01-01T00:00:00Z,ten,CNY,paid,web",
        "o3,u3,someday,3.00,CNY,paid,",
        "o4,u4,2024-01-02T00:00:00Z,4.00,CNY,paid",
    ]
    # The person corrects the file...
    fixed = text.replace(",ten,", ",10.50,").replace("someday", "2024-01-03").replace(
        "4.00,CNY,paid\n", "4.00,CNY,paid,\n"
    )
    out.write_text(fixed, encoding="utf-8")
    r2 = run_import(wh, ImportRequest(table="orders", paths=[out]))
    assert (r2.loaded, r2.quarantined) == (3, 0)
    got = wh.duck.execute("SELECT order_id, amount, properties FROM orders ORDER BY 1").fetchall()
    assert [g[0] for g in got] == ["o1", "o2", "o3", "o4"]
    assert json.loads(got[1][2]) == {"channel": "web"}
    # ...and clears what is fixed.
    assert clear_import(settings, r.files[0].import_id) == 3
    assert count_quarantined(settings) == 0


def test_export_of_jsonl_writes_lines_back(wh: Warehouse, settings: Settings, tmp_path: Path) -> None:
    f = tmp_path / "e.jsonl"
    line = '{"event_id": "e1", "event": "v", "user_id": "u", "ts": "later"}'
    f.write_text(line + "\n{oops\n", encoding="utf-8")
    r = run_import(wh, ImportRequest(table="events", paths=[f]))
    out = tmp_path / "bad.jsonl"
    assert export_import(settings, r.files[0].import_id, out) == 2
    assert out.read_text(encoding="utf-8").splitlines() == [line, "{oops"]


def test_export_of_parquet_rows_is_csv(wh: Warehouse, settings: Settings, tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    f = tmp_path / "e.parquet"
    pq.write_table(pa.table({"event_id": ["e1"], "event": ["v"], "user_id": ["u"], "ts": ["x"]}), f)
    r = run_import(wh, ImportRequest(table="events", paths=[f]))
    with pytest.raises(YunyingError) as e:
        export_import(settings, r.files[0].import_id, tmp_path / "bad.jsonl")
    assert e.value.key == "importing.export_format"
    out = tmp_path / "bad.csv"
    export_import(settings, r.files[0].import_id, out)
    with out.open(encoding="utf-8") as fh:
        assert list(csv.reader(fh)) == [["event_id", "event", "user_id", "ts"], ["e1", "v", "u", "x"]]


def test_unknown_import_and_empty_store(settings: Settings) -> None:
    assert count_quarantined(settings) == 0
    assert list_imports(settings).imports == []
    with pytest.raises(YunyingError) as e:
        show_import(settings, "nope")
    assert e.value.key == "importing.unknown_import"
