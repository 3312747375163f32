"""Pages and API answers on a small project: content, language, time zone, saved insights."""

from __future__ import annotations

import json
import re

from fastapi.testclient import TestClient

FUNNEL = {"steps": [{"event": "view"}, {"event": "add_to_cart"}, {"event": "pay"}],
          "dates": {"from": "2026-03-01", "to": "2026-03-05"}}


def test_funnel_api_returns_the_cli_document(clients: dict[str, TestClient]) -> None:
    from yunying.analytics.funnels import FunnelQuery, run_funnel
    from yunying.warehouse.engine import Warehouse

    r = clients["viewer"].post("/api/v1/analytics/funnel", json=FUNNEL)
    assert r.status_code == 200, r.text
    body = r.json()
    assert [s["users"] for s in body["steps"]] == [3, 2, 1]
    settings = clients["viewer"].app.state.settings  # type: ignore[attr-defined]
    with Warehouse(settings) as wh:
        cli = json.loads(run_funnel(wh, FunnelQuery.model_validate(FUNNEL)).model_dump_json())
    assert body == cli


def test_bad_queries_name_the_field(clients: dict[str, TestClient]) -> None:
    c = clients["viewer"]
    r = c.post("/api/v1/analytics/funnel", json={**FUNNEL, "steps": "view"})
    assert r.status_code == 422 and "steps" in r.json()["message"]
    r = c.post("/api/v1/analytics/funnel", content=b"{nope", headers={"content-type": "application/json"})
    assert r.status_code == 422 and "JSON" in r.json()["message"]
    r = c.post("/api/v1/insights", json={"name": "x", "kind": "overview", "colour": 1},
               headers={"X-CSRF-Token": clients["viewer"].headers["X-CSRF-Token"]})
    assert r.status_code in (403, 422)
    r = clients["analyst"].post("/api/v1/insights", json={"name": "x", "kind": "overview", "colour": 1})
    assert r.status_code == 422 and "colour" in r.json()["message"]
    r = clients["analyst"].post("/api/v1/insights", json={"name": "x", "kind": "funnel", "query": {"steps": []}})
    assert r.status_code == 400 and "steps" in r.json()["message"]
    r = c.post("/api/v1/analytics/funnel", json={**FUNNEL, "dates": {"from": "2000-01-01", "to": "2026-01-01"}})
    assert r.status_code == 400 and "'dates'" in r.json()["message"]
    r = c.get("/api/v1/nothing-here")
    assert r.status_code == 404 and r.json()["error"] == "web.not_found"


def test_insight_and_dashboard_lifecycle_with_read_only_share(clients: dict[str, TestClient]) -> None:
    a = clients["analyst"]
    r = a.post("/api/v1/insights", json={"name": "Checkout funnel", "kind": "funnel", "query": FUNNEL})
    assert r.status_code == 201, r.text
    iid = r.json()["id"]
    assert a.patch(f"/api/v1/insights/{iid}", json={"name": "Checkout"}).json()["name"] == "Checkout"
    run = a.get(f"/api/v1/insights/{iid}/result").json()
    assert [s["users"] for s in run["result"]["steps"]] == [3, 2, 1]
    d = a.post("/api/v1/dashboards", json={"name": "Weekly", "insight_ids": [iid]}).json()
    share = a.post(f"/api/v1/dashboards/{d['id']}/share").json()
    assert len(share["token"]) >= 32
    anon = clients["anon"]
    shared = anon.get(f"/api/v1/shared/dashboards/{share['token']}")
    assert shared.status_code == 200 and shared.json()["insights"][0]["insight"]["name"] == "Checkout"
    page = anon.get(share["url"])
    assert page.status_code == 200 and "Checkout" in page.text and 'class="echart" data-chart="funnel" style=' in page.text
    # Read-only: the link gives no write access and nothing else.
    assert anon.delete(f"/api/v1/dashboards/{d['id']}").status_code == 401
    assert a.delete(f"/api/v1/dashboards/{d['id']}/share").status_code == 204
    assert anon.get(f"/api/v1/shared/dashboards/{share['token']}").status_code == 404
    assert clients["viewer"].delete(f"/api/v1/insights/{iid}").status_code == 403
    assert a.delete(f"/api/v1/insights/{iid}").status_code == 204
    assert a.get(f"/api/v1/insights/{iid}").status_code == 404
    actions = [e["action"] for e in clients["admin"].get("/api/v1/audit").json()]
    for act in ("insight.create", "insight.update", "dashboard.share", "dashboard.unshare", "insight.delete"):
        assert act in actions


def test_pages_render_in_both_languages_with_local_times(app: object) -> None:
    from tests.web.conftest import sign_in

    c = TestClient(app, headers={"accept-language": "zh-CN,zh;q=0.9"})  # type: ignore[arg-type]
    sign_in(c, "admin@example.com")
    zh = c.get("/")
    assert zh.status_code == 200 and "总览" in zh.text and 'lang="zh-CN"' in zh.text
    c.get("/lang/en", follow_redirects=False)
    en = c.get("/data")
    assert "Data" in en.text and 'lang="en"' in en.text
    # events last 2026-03-05 02:02 UTC = 10:02 in Asia/Shanghai
    assert "2026-03-05 10:02" in en.text
    for path in ("/analysis/funnel", "/analysis/retention", "/analysis/trends", "/analysis/rfm",
                 "/analysis/lifecycle", "/analysis/stickiness", "/analysis/clv", "/insights", "/alerts",
                 "/admin/users", "/admin/apikeys"):
        assert c.get(path).status_code == 200, path


def test_overview_kpis_and_sparklines(clients: dict[str, TestClient]) -> None:
    html = clients["viewer"].get("/").text
    assert len(re.findall(r'class="kpi"', html)) >= 10
    assert html.count('data-chart="spark"') == 3  # sparklines (DAU, orders, GMV)
    ov = clients["viewer"].get("/api/v1/overview").json()
    assert ov["headline"]["orders"] == 2 and ov["headline"]["gmv"] == "200.50"


def test_static_assets_are_local(clients: dict[str, TestClient]) -> None:
    html = clients["viewer"].get("/").text
    assert "http://" not in html and "https://" not in html
    js = clients["anon"].get("/static/app.js")
    assert js.status_code == 200 and "fetch" in js.text
    assert clients["anon"].get("/static/../pages.py").status_code == 404


def test_data_page_shows_imports_and_quarantined_rows(clients: dict[str, TestClient], tmp_path: object) -> None:
    """A real import with bad rows (the CLI runs while the app is up), then the Data page."""
    import subprocess
    from pathlib import Path

    from tests.web.server import YUNYING

    settings = clients["operator"].app.state.settings  # type: ignore[attr-defined]
    f = Path(str(tmp_path)) / "ev.csv"
    f.write_text("event_id,event,user_id,ts\nq1,view,u9,2026-03-04T10:00:00\nq2,view,,2026-03-04T10:00:00\n")
    subprocess.run([YUNYING, "import", "events", str(f), "--project", str(settings.project_dir)],
                   check=True, capture_output=True)
    html = clients["operator"].get("/data").text
    assert 'id="imports"' in html and 'id="quarantine"' in html
    assert "user_id" in html.split('id="quarantine"')[1]
    assert clients["viewer"].get("/data", follow_redirects=False).status_code == 403


def test_metric_queries_match_the_indicator_system(clients: dict[str, TestClient]) -> None:
    from yunying.metrics.compute import compute
    from yunying.metrics.spec import load_registry
    from yunying.warehouse.engine import Warehouse

    c = clients["viewer"]
    body = {"names": ["orders", "gmv"], "grain": "day", "from": "2026-03-01", "to": "2026-03-05"}
    r = c.post("/api/v1/metrics/compute", json=body)
    assert r.status_code == 200, r.text
    settings = c.app.state.settings  # type: ignore[attr-defined]
    import datetime as dt

    with Warehouse(settings) as wh:
        direct = compute(wh, load_registry(settings), ["orders", "gmv"], "day", dt.date(2026, 3, 1), dt.date(2026, 3, 5))
    api, cli = r.json(), json.loads(direct.model_dump_json())
    api.pop("cached")  # the indicator system's own cache flag: the second run is served from it
    cli.pop("cached")
    assert api == cli and api["series"]
    assert c.post("/api/v1/metrics/compute", json={**body, "names": ["nope"]}).status_code == 400
    r = c.post("/api/v1/metrics/whatif", json={"metric": "gmv", "period": "2026-03", "changes": {"uv": "+10%"}})
    assert r.status_code in (200, 400), r.text  # 400: the tiny project lacks a driver's data
    assert "Traceback" not in r.text
