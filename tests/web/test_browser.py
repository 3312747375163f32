"""Browser tests: a real ``yunying serve`` in a subprocess, driven by Chromium through Playwright."""

from __future__ import annotations

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


def test_sign_in_build_a_funnel_and_see_its_chart(server: Server, browser: Any) -> None:
    ctx = browser.new_context(locale="en-US")
    page = ctx.new_page()
    sign_in(page, server.url, *ADMIN)
    assert page.locator("#kpis .kpi").count() >= 10
    page.click('a[data-nav="funnel"]')
    page.fill("#steps", "view, add_to_cart, checkout, pay")
    page.click("#run")
    page.wait_for_selector("#chart svg.bars", timeout=60_000)
    labels = page.locator("#chart svg text.lab").all_text_contents()
    assert labels == ["1. view", "2. add_to_cart", "3. checkout", "4. pay"]
    rows = page.locator("#result-table tr").count()
    assert rows == 5  # header + 4 steps
    with page.expect_download() as dl:
        page.click("#export")
    text = Path(dl.value.path()).read_text(encoding="utf-8-sig")
    assert text.splitlines()[0].count(",") == 6 and "checkout" in text
    ctx.close()


def test_retention_heatmap(server: Server, browser: Any) -> None:
    ctx = browser.new_context(locale="en-US")
    page = ctx.new_page()
    sign_in(page, server.url, *ADMIN)
    page.goto(server.url + "/analysis/retention")
    page.wait_for_selector("#heatmap", timeout=60_000)  # the page runs its query on open
    cells = page.locator("#heatmap td[style]")
    assert cells.count() > 5
    assert cells.first.inner_text().endswith("%")
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
