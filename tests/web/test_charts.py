"""ECharts option builders (web/charts.py) on hand-made results, and the pages that embed them."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from yunying.analytics.funnels import FunnelGroup, FunnelResult, StepCount
from yunying.analytics.lifecycle import LifecyclePeriod, LifecycleResult
from yunying.analytics.retention import RetentionCohort, RetentionResult
from yunying.analytics.rfm import CLASSES, RfmGroup, RfmResult, RfmThresholds
from yunying.analytics.trends import TrendPoint, TrendSeries, TrendsResult
from yunying.i18n import set_language
from yunying.web import charts


@pytest.fixture(autouse=True)
def english() -> Any:
    set_language("en")
    yield
    set_language("en")


def _funnel(groups: list[FunnelGroup] | None = None) -> FunnelResult:
    # 100 viewed, 40 added to cart, 10 paid: conversion 100 %, 40 %, 10 %; drop-off 60, 30, 0.
    steps = [
        StepCount(step=1, name="view", users=100, conversion=1.0, step_conversion=1.0, drop_off=60),
        StepCount(step=2, name="add_to_cart", users=40, conversion=0.4, step_conversion=0.4, drop_off=30),
        StepCount(step=3, name="pay", users=10, conversion=0.1, step_conversion=0.25, drop_off=0),
    ]
    return FunnelResult(mode="ordered", window_seconds=86400, steps=steps, groups=groups or [])


def test_funnel_bars_are_the_step_users_with_the_loss_stacked() -> None:
    c = charts.funnel_chart(_funnel())
    opt = c.option
    assert opt["yAxis"]["data"] == ["1. view", "2. add_to_cart", "3. pay"]
    users, lost = opt["series"]
    assert [d["value"] for d in users["data"]] == [100, 40, 10]
    assert [d["label"]["formatter"] for d in users["data"]] == ["100 · 100.0%", "40 · 40.0%", "10 · 10.0%"]
    assert lost["data"] == [0, 60, 30]  # users + lost = the previous step's users
    assert users["stack"] == lost["stack"]
    assert opt["legend"]["data"] == ["Users", "Lost since the previous step"]
    assert opt["toolbox"]["feature"]["saveAsImage"]["title"] == "Download PNG"
    assert "Noto Sans CJK SC" in opt["textStyle"]["fontFamily"]


def test_funnel_with_a_breakdown_has_a_series_per_value() -> None:
    g = [FunnelGroup(value="ads", steps=[
        StepCount(step=1, name="view", users=70, conversion=1.0, step_conversion=1.0, drop_off=50),
        StepCount(step=2, name="add_to_cart", users=20, conversion=2 / 7, step_conversion=2 / 7, drop_off=15),
        StepCount(step=3, name="pay", users=5, conversion=1 / 14, step_conversion=0.25, drop_off=0),
    ])]
    opt = charts.funnel_chart(_funnel(g)).option
    assert [s["name"] for s in opt["series"]] == ["All users", "ads"]
    assert [s["data"] for s in opt["series"]] == [[100, 40, 10], [70, 20, 5]]


def test_trends_lines_zoom_and_legend() -> None:
    res = TrendsResult(measure="count", grain="day", series=[
        TrendSeries(group="ads", total=6.0, points=[TrendPoint(period="2026-03-01", value=1.0),
                                                    TrendPoint(period="2026-03-02", value=5.0)]),
        TrendSeries(group="seo", total=2.0, points=[TrendPoint(period="2026-03-01", value=None),
                                                    TrendPoint(period="2026-03-02", value=2.0)]),
    ])
    opt = charts.trends_chart(res).option
    assert opt["xAxis"]["data"] == ["2026-03-01", "2026-03-02"]
    assert [(s["name"], s["type"], s["data"]) for s in opt["series"]] == [
        ("ads", "line", [1.0, 5.0]), ("seo", "line", [None, 2.0])]
    assert opt["legend"]["data"] == ["ads", "seo"]
    assert {z["type"] for z in opt["dataZoom"]} == {"inside", "slider"}
    assert "dataZoom" in opt["toolbox"]["feature"]


def test_lifecycle_stacks_the_four_stages_dormant_below_zero() -> None:
    res = LifecycleResult(grain="week", periods=[
        LifecyclePeriod(period="2026-03-02", new=5, returning=3, resurrecting=1, dormant=-2, active=9),
        LifecyclePeriod(period="2026-03-09", new=4, returning=6, resurrecting=0, dormant=-3, active=10),
    ])
    opt = charts.lifecycle_chart(res).option
    assert opt["xAxis"]["data"] == ["2026-03-02", "2026-03-09"]
    assert [s["name"] for s in opt["series"]] == ["New", "Returning", "Resurrecting", "Dormant"]
    assert [s["data"] for s in opt["series"]] == [[5, 4], [3, 6], [1, 0], [-2, -3]]
    assert {s["stack"] for s in opt["series"]} == {"lifecycle"}
    set_language("zh_CN")
    assert [s["name"] for s in charts.lifecycle_chart(res).option["series"]][0] != "New"


def test_retention_heatmap_cells_are_the_rates_in_percent() -> None:
    # Cohort 03-01: 4 users, 2 back on day 1, day 2 not over yet; 03-02: 2 users, 1 back.
    c1 = RetentionCohort(cohort="2026-03-01", size=4, retained=[4, 2, 1], rates=[1.0, 0.5, 0.25])
    c2 = RetentionCohort(cohort="2026-03-02", size=2, retained=[2, 1, 0], rates=[1.0, 0.5, None])
    total = RetentionCohort(cohort="all", size=6, retained=[6, 3, 1], rates=[1.0, 0.5, 0.25])
    res = RetentionResult(period="day", method="classic", cohorts=[c1, c2], total=total, summary=[])
    opt = charts.retention_chart(res).option
    assert opt["xAxis"]["data"] == ["Day 0", "Day 1", "Day 2"]
    assert opt["yAxis"]["data"] == ["All cohorts (6)", "2026-03-01 (4)", "2026-03-02 (2)"]
    cells = [tuple(d["value"]) for d in opt["series"][0]["data"]]
    assert cells == [(0, 0, 100.0), (1, 0, 50.0), (2, 0, 25.0),
                     (0, 1, 100.0), (1, 1, 50.0), (2, 1, 25.0),
                     (0, 2, 100.0), (1, 2, 50.0)]  # no cell where the period is not over
    assert opt["series"][0]["data"][4]["name"] == "2026-03-01 (4) · Day 1: 2 / 4"
    assert opt["visualMap"]["min"] == 0 and opt["visualMap"]["max"] == 100


def test_rfm_grid_puts_each_class_in_its_cell() -> None:
    groups = [RfmGroup(key=k, name_zh=zh, name_en=en, users=10 * (i + 1), share=(i + 1) / 36, revenue=100.0 * (i + 1),
                       revenue_share=(i + 1) / 36, avg_spend=10.0) for i, (k, _r, _f, _m, zh, en) in enumerate(CLASSES)]
    res = RfmResult(as_of=dt.date(2026, 3, 5), window_start=dt.date(2025, 3, 6), lookback_days=365, threshold="mean",
                    thresholds=RfmThresholds(recency_days=30, frequency=2, monetary=100), users=360, revenue=3600.0,
                    classes=groups, segments=[])
    c = charts.rfm_chart(res, "{}")
    opt = c.option
    assert opt["xAxis"]["data"] == ["R high", "R low"]
    assert opt["yAxis"]["data"] == ["F high · M high", "F low · M high", "F high · M low", "F low · M low"]
    cells = {d["label"]["formatter"].split("\n")[0]: d["value"] for d in opt["series"][0]["data"]}
    assert cells["important value"] == [0, 0, round(100 / 36, 1)]  # R, F, M high
    assert cells["important win-back"] == [1, 1, round(400 / 36, 1)]  # R low, F low, M high
    assert cells["general value"] == [0, 2, round(500 / 36, 1)]  # R high, F high, M low
    assert cells["general win-back"] == [1, 3, round(800 / 36, 1)]
    assert opt["series"][0]["data"][0]["label"]["formatter"] == "important value\n10\nrevenue 2.8%"
    assert len(c.links) == 8 and c.links[0][1].startswith("/analysis/rfm/members.csv?group=important_value")
    set_language("zh_CN")
    assert charts.rfm_chart(res).option["series"][0]["data"][0]["label"]["formatter"].startswith("重要价值客户")


def test_metric_tree_nests_the_drivers_under_their_parent() -> None:
    from yunying.metrics.tree import NodeValue, WhatIfResult

    nodes = [
        NodeValue(name="gmv", label="GMV", format="currency", base=1000.0, scenario=1100.0, change_pct=0.1),
        NodeValue(name="uv", label="UV", format="integer", base=100.0, scenario=110.0, change_pct=0.1, changed=True),
        NodeValue(name="aov", label="AOV", format="currency", base=10.0, scenario=10.0, change_pct=0.0),
    ]
    res = WhatIfResult(metric="gmv", period={"start": "2026-03-01", "end": "2026-03-31"}, changes={"uv": "+10%"},
                       base=1000.0, scenario=1100.0, change=100.0, change_pct=0.1, nodes=nodes)
    opt = charts.metric_tree_chart(res, {"gmv": ["uv", "aov"], "uv": [], "aov": []}).option
    root = opt["series"][0]["data"][0]
    assert opt["series"][0]["type"] == "tree"
    assert (root["name"], root["value"]) == ("GMV", 1100.0)
    assert root["label"]["formatter"] == "GMV\n1,000.00 → 1,100.00 (+10.00%)"
    assert [(k["name"], k["value"], k["children"]) for k in root["children"]] == [("UV", 110.0, []), ("AOV", 10.0, [])]
    assert root["children"][0]["itemStyle"]["color"] == "#d97706"  # the driver that was moved
    assert root["children"][1]["label"]["formatter"] == "AOV\n10.00"


def test_option_json_cannot_close_its_script_element() -> None:
    text = charts.option_json({"name": "</script><script>alert(1)</script> & 'x'"})
    assert "<" not in text and ">" not in text and "&" not in text and "'" not in text
    assert json.loads(text) == {"name": "</script><script>alert(1)</script> & 'x'"}
    html = str(charts.render(charts.Chart({"a": 1}, height=200, kind="x"), "c1"))
    assert html == ('<div class="echart" data-chart="x" id="c1" style="height:200px"></div>'
                    '<script type="application/json" class="echart-option">{"a":1}</script>')


# -- pages ----------------------------------------------------------------------------------
FUNNEL = {"steps": [{"event": "view"}, {"event": "add_to_cart"}, {"event": "pay"}],
          "dates": {"from": "2026-03-01", "to": "2026-03-05"}}


def _options(html: str) -> list[dict[str, Any]]:
    return [json.loads(m) for m in re.findall(r'<script type="application/json" class="echart-option">(.*?)</script>', html, re.S)]


def test_echarts_is_served_from_static_with_its_license(clients: dict[str, TestClient]) -> None:
    anon = clients["anon"]
    r = anon.get("/static/vendor/echarts/echarts.min.js")
    assert r.status_code == 200 and "javascript" in r.headers["content-type"]
    assert len(r.content) > 500_000 and b"Apache" in r.content[:2000] and b"echarts" in r.content
    for name in ("LICENSE", "NOTICE"):
        assert anon.get(f"/static/vendor/echarts/{name}").status_code == 200


def test_pages_load_echarts_from_static_and_embed_the_option(clients: dict[str, TestClient]) -> None:
    c = clients["viewer"]
    page = c.get("/analysis/funnel").text
    scripts = re.findall(r'<script[^>]* src="([^"]+)"', page)
    assert "/static/vendor/echarts/echarts.min.js" in scripts
    assert all(s.startswith("/static/") for s in scripts)  # no CDN
    assert scripts.index("/static/vendor/echarts/echarts.min.js") < scripts.index("/static/app.js")
    html = c.post("/analysis/funnel/run", data={"query": json.dumps(FUNNEL)}).text
    assert 'class="echart" data-chart="funnel" id="chart-main"' in html
    [opt] = _options(html)
    assert [d["value"] for d in opt["series"][0]["data"]] == [3, 2, 1]
    assert opt["yAxis"]["data"] == ["1. view", "2. add_to_cart", "3. pay"]
    html = c.post("/analysis/trends/run", data={"query": json.dumps(
        {"event": "view", "dates": {"from": "2026-03-01", "to": "2026-03-05"}})}).text
    [opt] = _options(html)
    assert opt["series"][0]["data"] == [3, 3, 3, 3, 3] and "dataZoom" in opt
    zh = c.post("/analysis/funnel/run", data={"query": json.dumps(FUNNEL)}, cookies={"yy_lang": "zh_CN"}).text
    assert _options(zh)[0]["legend"]["data"][0] == "用户数"


def test_every_analysis_page_embeds_its_own_chart(clients: dict[str, TestClient]) -> None:
    c = clients["viewer"]
    dates = {"from": "2026-03-01", "to": "2026-03-05"}
    queries = {
        "lifecycle": {"grain": "day", "dates": dates},
        "rfm": {"as_of": "2026-03-05"},
        "stickiness": {"dates": {"from": "2026-03-02", "to": "2026-03-08"}},
        "retention": {"start_event": "view", "dates": dates, "periods": 3},
    }
    for name, q in queries.items():
        html = c.post(f"/analysis/{name}/run", data={"query": json.dumps(q)}).text
        assert f'data-chart="{name}"' in html, (name, html[:300])
        assert _options(html)[0]["toolbox"]["feature"]["saveAsImage"], name
    rfm = c.post("/analysis/rfm/run", data={"query": json.dumps(queries["rfm"])}).text
    assert rfm.count('class="members"') == 8 and "/analysis/rfm/members.csv?group=important_value" in rfm
    life = _options(c.post("/analysis/lifecycle/run", data={"query": json.dumps(queries["lifecycle"])}).text)[0]
    assert life["series"][0]["data"][0] == 3  # the three users are new on 03-01
