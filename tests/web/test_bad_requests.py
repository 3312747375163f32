"""Bad requests get a 4xx with a message, never a 500 (issue 13, items 7 and 10)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient

from tests.web.server import free_port
from yunying.config import Settings
from yunying.web.accounts import create_api_key
from yunying.web.app import create_app

D = {"from": "2026-03-01", "to": "2026-03-05"}
BIG = 2**64


@pytest.fixture(scope="module")
def api(app: FastAPI, project: Settings) -> Iterator[TestClient]:
    key = create_api_key(project.appdb_url, "bad-requests", "full")[1]
    with TestClient(app, headers={"Authorization": f"Bearer {key}", "accept-language": "en"},
                    raise_server_exceptions=False) as c:
        yield c


def _refused(r: httpx.Response, status: int, *words: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["error"] and body["message"]
    for w in words:
        assert w in body["message"], body


@pytest.mark.parametrize("kind,body", [
    ("trends", {"dates": D, "bogus": 1}),
    ("funnel", {"steps": [{"event": "view"}, {"event": "pay"}], "dates": D, "windw_days": 3}),
    ("retention", {"start_event": "view", "dates": D, "period": "day", "extra": None}),
    ("lifecycle", {"dates": D, "granularity": "day"}),
    ("stickiness", {"dates": D, "x": 1}),
    ("rfm", {"lookback": 30}),
    ("clv", {"horizon_weeks": 3}),
    ("trends", {"dates": {**D, "until": "2026-03-09"}}),
    ("trends", {"dates": D, "breakdown": {"property": "src", "top": 3}}),
])
def test_an_unknown_field_is_refused_with_422_naming_it(api: TestClient, kind: str, body: dict[str, Any]) -> None:
    r = api.post(f"/api/v1/analytics/{kind}", json=body)
    _refused(r, 422, "Unknown field")


def test_a_saved_insight_keeps_working_and_its_body_has_no_unknown_fields(api: TestClient) -> None:
    """Insights store the model's own dump, so forbidding unknown fields breaks none."""
    q = {"steps": [{"event": "view"}, {"event": "pay"}], "dates": D}
    r = api.post("/api/v1/insights", json={"name": "f", "kind": "funnel", "query": q})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    assert api.get(f"/api/v1/insights/{iid}/result").status_code == 200
    bad = api.post("/api/v1/insights", json={"name": "g", "kind": "funnel", "query": {**q, "bogus": 1}})
    assert bad.status_code == 400 and "bogus" in bad.json()["message"]


@pytest.mark.parametrize("kind,body,words", [
    ("funnel", {"steps": [{"event": "view"}, {"event": "pay"}], "dates": D, "window_seconds": 10**18}, ["window_seconds"]),
    ("funnel", {"steps": [{"event": "view"}, {"event": "pay"}], "dates": D, "window_seconds": BIG}, ["window_seconds"]),
    ("trends", {"measure": "sum", "property": "a'b", "dates": D}, ["invalid property name"]),
    ("trends", {"measure": "sum", "property": 'x"]', "dates": D}, ["invalid property name"]),
    ("trends", {"measure": "sum", "property": "ok\n", "dates": D}, ["invalid property name"]),
    ("rfm", {"as_of": "0001-01-01"}, ["as_of", "1970-01-01"]),
    ("rfm", {"as_of": "9999-12-31"}, ["as_of", "2199-12-31"]),
    ("clv", {"calibration_end": "9999-12-31"}, ["calibration_end"]),
    ("trends", {"dates": {"from": "9999-12-01", "to": "9999-12-31"}}, ["dates.from"]),
    ("trends", {"dates": {"from": "0001-01-01", "to": "0001-01-05"}}, ["dates.from"]),
    ("funnel", {"steps": [{"event": "view"}, {"event": "pay"}], "dates": {"from": "0001-01-01", "to": "0001-01-02"}}, ["dates"]),
    ("retention", {"start_event": "view", "dates": {"from": "9999-01-01", "to": "9999-01-02"}}, ["dates"]),
    ("lifecycle", {"dates": {"from": "0001-01-01", "to": "0001-01-30"}}, ["dates"]),
    ("stickiness", {"dates": {"from": "9999-01-01", "to": "9999-01-30"}}, ["dates"]),
    ("trends", {"dates": D, "filters": [{"property": "x", "operator": "gt", "value": "__INF__"}]}, []),
    ("rfm", {"threshold": "custom", "recency_threshold": "__NAN__", "frequency_threshold": 1, "monetary_threshold": 1}, []),
])
def test_extreme_values_are_refused_not_crashed(api: TestClient, kind: str, body: dict[str, Any], words: list[str]) -> None:
    raw = json.dumps(body).replace('"__INF__"', "1e400").replace('"__NAN__"', "NaN")
    r = api.post(f"/api/v1/analytics/{kind}", content=raw, headers={"content-type": "application/json"})
    _refused(r, 422, *words)


@pytest.mark.parametrize("method,path,body", [
    ("get", f"/api/v1/insights/{BIG}", None),
    ("get", f"/api/v1/insights/{BIG}/result", None),
    ("patch", f"/api/v1/insights/{BIG}", {"name": "x"}),
    ("delete", f"/api/v1/insights/{BIG}", None),
    ("post", f"/api/v1/insights/{BIG}/share", None),
    ("get", f"/api/v1/dashboards/{BIG}", None),
    ("patch", f"/api/v1/users/{BIG}", {"role": "viewer"}),
    ("delete", f"/api/v1/apikeys/{BIG}", None),
    ("post", "/api/v1/dashboards", {"name": "d", "insight_ids": [BIG]}),
])
def test_ids_beyond_64_bits_are_refused(api: TestClient, method: str, path: str, body: dict[str, Any] | None) -> None:
    r = api.request(method.upper(), path, json=body)
    _refused(r, 422)


def test_ids_just_inside_64_bits_are_not_found(api: TestClient) -> None:
    big = 2**63 - 1
    _refused(api.get(f"/api/v1/insights/{big}"), 404)
    _refused(api.patch(f"/api/v1/users/{big}", json={"role": "viewer"}), 404)
    _refused(api.delete(f"/api/v1/apikeys/{big}"), 404)


def test_an_unknown_language_is_a_400_with_a_message(clients: dict[str, TestClient]) -> None:
    r = clients["anon"].get("/lang/fr", follow_redirects=False)
    assert r.status_code == 400, r.text
    assert "fr" in r.text and "zh_CN" in r.text


def test_a_bug_answers_a_clean_500_and_keeps_the_connection(project: Settings) -> None:
    """A real uvicorn server: after a 500 the same keep-alive connection still answers."""
    app = create_app(project, flush_interval=None)

    def boom() -> None:
        raise RuntimeError("a bug")

    app.add_api_route("/api/v1/_test_boom", boom, methods=["GET"])
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        connections: list[Any] = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", event_hooks={
            "request": [lambda req: connections.append(req.extensions)]
        }) as c:
            r = c.get("/api/v1/_test_boom")
            assert r.status_code == 500
            assert r.json() == {"error": "web.internal", "message": r.json()["message"]}
            assert "Traceback" not in r.text and "a bug" not in r.text
            assert r.headers.get("connection", "").lower() != "close"
            pool = c._transport._pool  # type: ignore[attr-defined]
            assert len(pool.connections) == 1
            first = pool.connections[0]
            assert c.get("/healthz").status_code == 200
            assert pool.connections == [first]  # the same connection answered
    finally:
        server.should_exit = True
        thread.join(30)
