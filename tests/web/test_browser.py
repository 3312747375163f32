"""Browser tests: a real ``yunying serve`` in a subprocess, driven by Chromium through Playwright."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.web.browser import launch, sign_in
from tests.web.server import YUNYING, Server

pytestmark = [pytest.mark.browser, pytest.mark.xdist_group("web")]

ADMIN = ("admin@example.com", "browser-admin-1")
VIEWER = ("viewer@example.com", "browser-viewer-1")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    project = tmp_path_factory.mktemp("browser")
    env_args = ["--project", str(project)]
    subprocess.run([YUNYING, "demo", *env_args, "--users", "300", "--days", "60"], check=True, capture_output=True)
    for (email, pw), role in ((ADMIN, "admin"), (VIEWER, "viewer")):
        subprocess.run([YUNYING, "user", "add", email, "--role", role, "--password", pw, *env_args], check=True, capture_output=True)
    srv = Server(project)
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = launch(p, chromium_path)
        yield b
        b.close()


# -- charts (ECharts, drawn in the browser from the option the server embeds) --------------
def _watch_errors(page: Any) -> list[str]:
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("response", lambda r: errors.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    return errors


def _wait_chart(page: Any, selector: str = "#chart-main") -> None:
    """The chart element is initialised (data-ready) and ECharts has drawn its canvas."""
    page.wait_for_selector(f"{selector}[data-ready] canvas", timeout=60_000)
    assert page.evaluate(f"!!echarts.getInstanceByDom(document.querySelector('{selector}'))")


def _legend_item(page: Any, name: str, selector: str = "#chart-main") -> tuple[float, float]:
    """Page coordinates of a legend item's text, found in the chart's drawn elements."""
    box = page.locator(selector).bounding_box()
    xy = page.evaluate(
        """([sel, name]) => {
          const c = echarts.getInstanceByDom(document.querySelector(sel));
          for (const el of c.getZr().storage.getDisplayList()) {
            if (el.style && el.style.text === name) {
              const r = el.getBoundingRect().clone(); r.applyTransform(el.getComputedTransform());
              return [r.x + r.width / 2, r.y + r.height / 2];
            }
          }
          return null;
        }""",
        [selector, name],
    )
    assert xy is not None, f"legend item {name!r} not drawn"
    return box["x"] + xy[0], box["y"] + xy[1]


def _hover_point(page: Any, data: list[Any], selector: str = "#chart-main", series: int = 0) -> str:
    """Move the mouse onto a data point and return the tooltip's text."""
    box = page.locator(selector).bounding_box()
    px = page.evaluate(
        "([sel, s, d]) => echarts.getInstanceByDom(document.querySelector(sel)).convertToPixel({seriesIndex: s}, d)",
        [selector, series, data],
    )
    page.mouse.move(box["x"] + px[0], box["y"] + px[1])
    tip = page.locator(f"{selector} .echart-tooltip")
    tip.wait_for(state="visible", timeout=10_000)
    return str(tip.inner_text())


def _legend_selected(page: Any, name: str, selector: str = "#chart-main") -> bool:
    return bool(page.evaluate(
        "([sel, n]) => { const s = echarts.getInstanceByDom(document.querySelector(sel)).getOption().legend[0].selected;"
        " return s[n] !== false; }",
        [selector, name],
    ))


def test_sign_in_build_a_funnel_and_see_its_chart(server: Server, browser: Any) -> None:
    ctx = browser.new_context(locale="en-US", accept_downloads=True)
    page = ctx.new_page()
    errors = _watch_errors(page)
    sign_in(page, server.url, *ADMIN)
    assert page.locator("#kpis .kpi").count() >= 10
    page.wait_for_selector('#kpis .echart[data-chart="spark"][data-ready] canvas', timeout=30_000)
    page.click('a[data-nav="funnel"]')
    page.fill("#steps", "view, add_to_cart, checkout, pay")
    page.click("#run")
    _wait_chart(page)
    opt = page.evaluate("echarts.getInstanceByDom(document.querySelector('#chart-main')).getOption()")
    assert opt["yAxis"][0]["data"] == ["1. view", "2. add_to_cart", "3. checkout", "4. pay"]
    rows = page.locator("#result-table tr").count()
    assert rows == 5  # header + 4 steps
    users = [int(c.replace(",", "")) for c in page.locator("#result-table tr td:nth-child(4)").all_text_contents()]
    assert [d["value"] for d in opt["series"][0]["data"]] == users
    # hover a bar: the tooltip names the step and its users
    tip = _hover_point(page, [users[1] / 2, 1])
    assert "2. add_to_cart" in tip and f"{users[1]:,}" in tip
    # toggle the "lost" series off and on from its legend item
    lost = "Lost since the previous step"
    page.mouse.click(*_legend_item(page, lost))
    assert not _legend_selected(page, lost)
    page.mouse.click(*_legend_item(page, lost))
    assert _legend_selected(page, lost)
    # PNG download: click the toolbox's download button (found by its title)
    box = page.locator("#chart-main").bounding_box()
    xy = page.evaluate(
        """() => {
          const c = echarts.getInstanceByDom(document.querySelector('#chart-main'));
          for (const el of c.getZr().storage.getDisplayList()) {
            if (el.__title === 'Download PNG') {
              const r = el.getBoundingRect().clone(); r.applyTransform(el.getComputedTransform());
              return [r.x + r.width / 2, r.y + r.height / 2];
            }
          }
          return null;
        }""")
    assert xy is not None
    with page.expect_download() as dl:
        page.mouse.click(box["x"] + xy[0], box["y"] + xy[1])
    assert dl.value.suggested_filename == "yunying-funnel.png"
    assert Path(dl.value.path()).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as dl:
        page.click("#export")
    text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].count(",") == 6 and "checkout" in text
    assert errors == []
    ctx.close()


def test_trends_chart_zooms_and_toggles_its_lines(server: Server, browser: Any) -> None:
    ctx = browser.new_context(locale="en-US")
    page = ctx.new_page()
    errors = _watch_errors(page)
    sign_in(page, server.url, *ADMIN)
    page.goto(server.url + "/analysis/trends")
    page.wait_for_selector('#chart-main[data-chart="trends"][data-ready] canvas', timeout=60_000)  # run on open
    query = json.loads(page.input_value("#query"))
    query["breakdown"] = {"property": "user.channel"}
    page.fill("#query", json.dumps(query))
    page.click("#run")
    page.wait_for_function(
        "() => { const el = document.querySelector('#chart-main[data-ready]');"
        " return el && echarts.getInstanceByDom(el).getOption().series.length >= 2; }", timeout=60_000)
    opt = page.evaluate("echarts.getInstanceByDom(document.querySelector('#chart-main')).getOption()")
    names = [s["name"] for s in opt["series"]]
    assert len(names) >= 2 and opt["legend"][0]["data"] == names
    assert {z["type"] for z in opt["dataZoom"]} == {"inside", "slider"}
    x = opt["xAxis"][0]["data"]
    i = len(x) // 2
    tip = _hover_point(page, [i, opt["series"][0]["data"][i] or 0])
    assert x[i] in tip and names[0] in tip
    page.mouse.click(*_legend_item(page, names[0]))
    assert not _legend_selected(page, names[0]) and _legend_selected(page, names[1])
    # zoom in with the mouse wheel over the plot: the visible window shrinks
    box = page.locator("#chart-main").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.wheel(0, -600)
    page.wait_for_timeout(300)
    zoom = page.evaluate("echarts.getInstanceByDom(document.querySelector('#chart-main')).getOption().dataZoom[0]")
    assert zoom["end"] - zoom["start"] < 100
    assert errors == []
    ctx.close()


def test_retention_heatmap(server: Server, browser: Any) -> None:
    ctx = browser.new_context(locale="zh-CN")
    page = ctx.new_page()
    errors = _watch_errors(page)
    sign_in(page, server.url, *ADMIN)
    page.goto(server.url + "/analysis/retention")
    # the page runs its query on open
    page.wait_for_selector('#chart-main[data-chart="retention"][data-ready] canvas', timeout=60_000)
    opt = page.evaluate("echarts.getInstanceByDom(document.querySelector('#chart-main')).getOption()")
    cells = opt["series"][0]["data"]
    assert len(cells) > 5 and all(0 <= c["value"][2] <= 100 for c in cells)
    assert opt["yAxis"][0]["data"][0].startswith("全部")
    tip = _hover_point(page, cells[1]["value"][:2])
    assert "%" in tip and "/" in tip
    assert errors == []
    ctx.close()


def test_metric_tree_is_drawn_and_follows_the_sliders(server: Server, browser: Any) -> None:
    ctx = browser.new_context(locale="en-US")
    page = ctx.new_page()
    errors = _watch_errors(page)
    sign_in(page, server.url, *ADMIN)
    page.goto(server.url + "/metrics/tree")
    _wait_chart(page, "#tree-chart")
    root = page.evaluate("echarts.getInstanceByDom(document.querySelector('#tree-chart')).getOption().series[0].data[0]")
    assert root["children"] and "→" not in root["label"]["formatter"]  # nothing moved yet
    slider = page.locator('input[type="range"]').first
    slider.fill("20")
    slider.dispatch_event("input")
    page.wait_for_function(
        "() => { const el = document.querySelector('#tree-chart[data-ready]');"
        " return el && echarts.getInstanceByDom(el).getOption().series[0].data[0].label.formatter.includes('→'); }",
        timeout=60_000)
    root = page.evaluate("echarts.getInstanceByDom(document.querySelector('#tree-chart')).getOption().series[0].data[0]")
    assert "(+" in root["label"]["formatter"]
    assert errors == []
    ctx.close()


def test_language_follows_the_browser_and_switches(server: Server, browser: Any) -> None:
    ctx = browser.new_context(locale="zh-CN")
    page = ctx.new_page()
    sign_in(page, server.url, *ADMIN)
    assert page.locator('a[data-nav="overview"]').inner_text() == "总览"
    page.click("#lang-switch")
    page.wait_for_load_state("networkidle")
    assert page.locator('a[data-nav="overview"]').inner_text() == "Overview"
    assert page.locator("html").get_attribute("lang") == "en"
    page.click("#lang-switch")
    page.wait_for_load_state("networkidle")
    assert page.locator('a[data-nav="overview"]').inner_text() == "总览"
    ctx.close()


def test_viewer_is_denied_the_admin_page(server: Server, browser: Any) -> None:
    ctx = browser.new_context(locale="en-US")
    page = ctx.new_page()
    sign_in(page, server.url, *VIEWER)
    assert page.locator('a[data-nav="users"]').count() == 0
    response = page.goto(server.url + "/admin/users")
    assert response is not None and response.status == 403
    assert "users.manage" in page.locator("#error-message").inner_text()
    ctx.close()
