"""GraphiQL offline: the vendored assets are the ones the manifest names (versions, licenses, integrity), and the
page at /graphql, opened in headless Chromium, runs a query typed into its editor with no request leaving
127.0.0.1."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
import httpx
import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from api.static.refresh import PACKAGES
from tests import browser
from tests.serving import ROOT, serving

ASSETS = ROOT / "api" / "static" / "graphiql"
MANIFEST = json.loads((ASSETS / "manifest.json").read_text())
MODEL = ROOT / "examples" / "shop" / "model.yaml"


def sri(data: bytes) -> str:
    """Subresource integrity as the W3C spells it and a browser checks it, written here rather than taken from
    `api.static.refresh`: `sha384-` and the base64 of the SHA-384 digest."""
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode("ascii")


def test_every_asset_is_the_manifests_file_from_its_package() -> None:
    pinned = {served: (package.name, package.version) for package in PACKAGES for _, served in package.files}
    assert set(MANIFEST) == set(pinned)
    for served, entry in MANIFEST.items():
        assert (entry["package"], entry["version"]) == pinned[served]
        assert sri((ASSETS / served).read_bytes()) == entry["integrity"], served
        assert entry["license"] == "MIT"
        assert "MIT" in (ASSETS / entry["license_file"]).read_text(), entry["license_file"]


def test_the_page_loads_only_vendored_assets_with_their_integrity() -> None:
    html = (ASSETS / "index.html").read_text()
    tags = re.findall(r"<(?:script|link)\b[^>]*>", html)
    loaded = {}
    for tag in tags:
        url = re.search(r'(?:src|href)="([^"]*)"', tag)
        if url is None or url.group(1).startswith("data:"):
            continue
        integrity = re.search(r'integrity="([^"]*)"', tag)
        loaded[url.group(1)] = integrity.group(1) if integrity else None
    assert loaded == {f"static/graphiql/{served}": entry["integrity"] for served, entry in MANIFEST.items()}
    assert not re.search(r'(?:src|href)="(?:https?:)?//', html)


@pytest.fixture(scope="module")
def server(duckdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(MODEL, f"duckdb:///{duckdb_path}", tmp_path_factory.mktemp("graphiql") / "serve.log") as url:
        yield url


def test_the_app_serves_the_page_and_its_assets(server: str) -> None:
    page = httpx.get(f"{server}/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200 and page.text == (ASSETS / "index.html").read_text()
    for served, entry in MANIFEST.items():
        asset = httpx.get(f"{server}/static/graphiql/{served}")
        assert asset.status_code == 200, served
        assert sri(asset.content) == entry["integrity"], served
    assert httpx.get(f"{server}/static/graphiql/missing.js").status_code == 404
    assert httpx.get(f"{server}/static/graphiql/../../app.py").status_code == 404


QUERY = "{ order(orderBy: [{revenue: DESC}]) { customer { region } revenue orderCount } }"


@pytest.mark.browser
def test_graphiql_runs_a_typed_query_offline(server: str, duckdb_path: Path) -> None:
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        expected = con.execute("""
            SELECT c.region, SUM(o.amount) FILTER (WHERE o.status <> 'cancelled'), COUNT(*)
            FROM orders o LEFT JOIN customers c ON c.customer_id = o.customer_id
            GROUP BY c.region ORDER BY 2 DESC""").fetchall()
    with browser.page() as (page, traffic):
        page.goto(f"{server}/graphql")
        editor = page.locator(".graphiql-query-editor .CodeMirror")
        try:
            editor.wait_for(timeout=30_000)
        except PlaywrightTimeout:
            pytest.fail(f"GraphiQL did not start; requests outside 127.0.0.1: {traffic.outside()}, failed: "
                        f"{traffic.failed}")
        editor.click()
        page.keyboard.press("Control+A")
        page.keyboard.press("Delete")
        page.keyboard.insert_text(QUERY)
        page.locator(".graphiql-execute-button").click()
        page.wait_for_function("""() => {
            const view = document.querySelector('.graphiql-response .CodeMirror');
            return view && view.CodeMirror.getValue().includes('"data"');
        }""", timeout=30_000)
        typed = page.evaluate("document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue()")
        shown = json.loads(page.evaluate(
            "document.querySelector('.graphiql-response .CodeMirror').CodeMirror.getValue()"))
        assert traffic.outside() == [], traffic.outside()
        assert traffic.failed == []
        assert any(url.endswith("/static/graphiql/graphiql.min.js") for url in traffic.urls)
    assert typed == QUERY
    rows = shown["data"]["order"]
    assert [(r["customer"]["region"], round(float(r["revenue"]), 2), int(r["orderCount"])) for r in rows] == \
        [(region, round(float(revenue), 2), orders) for region, revenue, orders in expected]
