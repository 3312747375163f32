"""Screenshots of the main pages for docs/web.md, with the browser tests' Playwright set-up.

    .venv/bin/python tests/web/take_screenshots.py /tmp/yy-demo docs/screenshots [funnel,trends,...]

The optional third argument names the pages to take (default: all).

The project must hold the demo company (``yunying demo --project /tmp/yy-demo``).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.web.browser import launch, sign_in  # noqa: E402
from tests.web.server import Server  # noqa: E402
from yunying.appdb import open_appdb  # noqa: E402
from yunying.config import load_settings  # noqa: E402
from yunying.web.accounts import ensure_user  # noqa: E402

CHART = "#chart-main[data-ready] canvas"  # ECharts has drawn the page's chart
PAGES = [
    ("overview", "/", None),
    ("funnel", "/analysis/funnel", CHART),
    ("retention", "/analysis/retention", CHART),
    ("trends", "/analysis/trends", CHART),
    ("lifecycle", "/analysis/lifecycle", CHART),
    ("rfm", "/analysis/rfm", CHART),
    ("clv", "/analysis/clv", CHART),
    ("metric-tree", "/metrics/tree", "#tree-chart[data-ready] canvas"),
    ("alerts", "/alerts", None),
    ("data", "/data", None),
    ("users", "/admin/users", None),
    ("apikeys", "/admin/apikeys", None),
]


def main(project: Path, out: Path, only: set[str] | None = None) -> None:
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    ensure_user(open_appdb(load_settings(project)), "demo@yunying.local", "yunying-demo", "admin")
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    server = Server(project)
    try:
        with sync_playwright() as p:
            browser = launch(p, chromium)
            for locale, suffix in (("en-US", ""), ("zh-CN", "-zh")):
                ctx = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
                page = ctx.new_page()
                sign_in(page, server.url, "demo@yunying.local", "yunying-demo")
                for name, path, wait in PAGES:
                    if suffix and name not in ("overview", "funnel", "retention", "trends", "rfm"):
                        continue
                    if only and name not in only:
                        continue
                    page.goto(server.url + path)
                    if name == "funnel":
                        page.fill("#steps", "view, add_to_cart, checkout, pay")
                        page.click("#run")
                    if wait:
                        page.wait_for_selector(wait, timeout=120_000)
                    page.wait_for_load_state("networkidle")
                    page.screenshot(path=str(out / f"{name}{suffix}.png"), full_page=True)
                    print("wrote", out / f"{name}{suffix}.png")
                ctx.close()
            browser.close()
    finally:
        server.stop()


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), set(sys.argv[3].split(",")) if len(sys.argv) > 3 else None)
