"""Take the README's picture of the dashboard (docs/dashboard.png) with headless Chromium.

    semantic serve &                                   # the example, on its full data
    python -m examples.shop.screenshot http://127.0.0.1:8000 docs/dashboard.png

Needs the test extra (Playwright) and Debian's `chromium` (SEMANTIC_CHROMIUM names another executable).
"""

from __future__ import annotations

import os
import shutil
import sys

from playwright.sync_api import sync_playwright


def chromium() -> str:
    """The Chromium executable to drive: SEMANTIC_CHROMIUM, else Debian's `chromium` (the browser tests use it
    too)."""
    return os.environ.get("SEMANTIC_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"


def screenshot(url: str, out: str, width: int = 1280, height: int = 900) -> None:
    """Open `url`/dashboard/, wait until its first answer is drawn, and save the whole page as a PNG."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), headless=True)
        try:
            page = browser.new_page(viewport={"width": width, "height": height})
            page.goto(f"{url.rstrip('/')}/dashboard/")
            page.wait_for_selector("body[data-generation='1']", timeout=60_000)
            if page.locator("body").get_attribute("data-state") != "ready":
                raise SystemExit(f"the dashboard shows an error: {page.locator('#error').text_content()}")
            page.screenshot(path=out, full_page=True)
        finally:
            browser.close()


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m examples.shop.screenshot URL OUT.png")
    screenshot(sys.argv[1], sys.argv[2])
