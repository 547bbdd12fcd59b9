"""Headless Chromium for the browser tests: Debian's `chromium` (`apt-get install chromium`; .ci/run installs it
when missing), driven by Playwright through `executable_path`, so no browser is downloaded.

A missing browser fails the test with the command that installs it; SEMANTIC_SKIP_BROWSER=1 skips instead.
SEMANTIC_CHROMIUM names another executable.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, sync_playwright

from examples.shop.screenshot import chromium


def executable() -> str:
    """The Chromium to drive, or the test's failure (skip with SEMANTIC_SKIP_BROWSER=1) when there is none."""
    path = chromium()
    if not Path(path).is_file():
        message = f"no Chromium at {path}: `apt-get install chromium` (or set SEMANTIC_CHROMIUM)"
        if os.environ.get("SEMANTIC_SKIP_BROWSER") == "1":
            pytest.skip(f"{message}; skipped because SEMANTIC_SKIP_BROWSER=1")
        pytest.fail(f"{message}; set SEMANTIC_SKIP_BROWSER=1 to skip")
    return path


class Traffic:
    """Every request a page makes (documents, scripts, styles, fetches, workers), and its failures."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self.failed: list[str] = []
        page.on("request", lambda request: self.urls.append(request.url))
        page.on("requestfailed", lambda request: self.failed.append(f"{request.url}: {request.failure}"))

    def outside(self, host: str = "127.0.0.1") -> list[str]:
        """Requests that went anywhere but `host` (inline `data:` and `blob:` URLs stay in the page)."""
        return [url for url in self.urls if urlsplit(url).scheme not in ("data", "blob")
                and urlsplit(url).hostname != host]


@contextmanager
def page(width: int = 1280, height: int = 900) -> Iterator[tuple[Page, Traffic]]:
    """A fresh page in a new headless Chromium, with its traffic recorded; closed afterwards."""
    path = executable()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True)
        try:
            opened = browser.new_page(viewport={"width": width, "height": height})
            yield opened, Traffic(opened)
        finally:
            browser.close()

