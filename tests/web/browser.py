"""The Playwright set-up shared by the browser tests and the screenshot script."""

from __future__ import annotations

from typing import Any

LAUNCH_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def launch(playwright: Any, chromium_path: str) -> Any:
    return playwright.chromium.launch(executable_path=chromium_path, args=LAUNCH_ARGS)


def sign_in(page: Any, base: str, email: str, password: str) -> None:
    page.goto(base + "/login")
    page.fill('input[name="email"]', email)
    page.fill('input[name="password"]', password)
    page.click("#sign-in")
    page.wait_for_load_state("networkidle")
