"""Stored extremes never break the data pages; an admin deletes rows over HTTP, audited."""

from __future__ import annotations

from datetime import datetime

import duckdb
from fastapi.testclient import TestClient

from yunying import clock
from yunying.config import Settings


def _insert_extremes(settings: Settings) -> None:
    con = duckdb.connect(str(settings.warehouse_path))
    try:
        con.execute(
            "INSERT INTO events VALUES "
            "('x0', 'view', 'u9', TIMESTAMP '0001-01-01 00:00:00' - INTERVAL 8 HOUR, NULL, NULL, NULL), "
            "('x9', 'view', 'u9', TIMESTAMP '9999-12-31 23:00:00', NULL, NULL, NULL)"
        )
    finally:
        con.close()


def test_status_overview_and_data_page_answer_then_an_admin_deletes(
    project: Settings, clients: dict[str, TestClient]
) -> None:
    _insert_extremes(project)
    admin, viewer = clients["admin"], clients["viewer"]
    with clock.frozen(datetime(2026, 3, 10)):
        r = admin.get("/api/v1/data/status")
        assert r.status_code == 200, r.text
        events = next(t for t in r.json()["warehouse"]["tables"] if t["table"] == "events")
        assert events["first"] is None and events["outside_window"] == 2
        r = admin.get("/api/v1/overview")
        assert r.status_code == 200, r.text
        assert r.json()["headline"]["as_of"] == "2026-03-05"  # the seed's last day
        assert admin.get("/data").status_code == 200
        assert admin.get("/").status_code == 200
        body = {"table": "events", "outside_window": True}
        assert viewer.post("/api/v1/data/delete", json=body).status_code == 403
        assert clients["operator"].post("/api/v1/data/delete", json=body).status_code == 403
        r = admin.post("/api/v1/data/delete", json={**body, "dry_run": True})
        assert r.status_code == 200 and (r.json()["matched"], r.json()["deleted"]) == (2, 0)
        r = admin.post("/api/v1/data/delete", json={**body, "where": "nope=1"})
        assert r.status_code == 400 or r.status_code == 422, r.text
        r = admin.post("/api/v1/data/delete", json=body)
        assert r.status_code == 200 and r.json()["deleted"] == 2, r.text
        r = admin.get("/api/v1/data/status")
        events = next(t for t in r.json()["warehouse"]["tables"] if t["table"] == "events")
        assert events["outside_window"] == 0 and events["first"] is not None
    log = admin.get("/api/v1/audit").json()
    assert log[0]["action"] == "data.delete" and "deleted=2" in log[0]["detail"]
