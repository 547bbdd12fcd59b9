"""The example's dashboard end to end: `semantic serve` on the example data, the page at /dashboard in headless
Chromium, and every number it shows (totals, revenue by month, revenue and orders by region, top products) compared
with SQL written by hand on the same DuckDB file, before and after choosing a region and a time zone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest
from playwright.sync_api import Page

from api.pages import dashboard_of
from tests import browser
from tests.serving import ROOT, serving

MODEL = ROOT / "examples" / "shop" / "model.yaml"

ORDERS = """
    FROM orders o LEFT JOIN customers c ON c.customer_id = o.customer_id
    WHERE $region IS NULL OR c.region = $region"""


def expected(con: duckdb.DuckDBPyConnection, region: str | None, timezone: str) -> dict[str, Any]:
    """What the page must show, by hand: revenue excludes cancelled orders; months are cut in `timezone` (the
    stored timestamps are UTC); an order without a known region counts under none."""
    params = {"region": region}
    revenue, orders = con.execute(
        f"SELECT SUM(o.amount) FILTER (WHERE o.status <> 'cancelled'), COUNT(*) {ORDERS}", params).fetchone() or ()
    months = con.execute(f"""
        SELECT CAST(date_trunc('month', (o.ordered_at AT TIME ZONE 'UTC') AT TIME ZONE $tz) AS DATE) AS month,
               SUM(o.amount) FILTER (WHERE o.status <> 'cancelled')
        {ORDERS} GROUP BY month ORDER BY month""", {**params, "tz": timezone}).fetchall()
    regions = con.execute(f"""
        SELECT c.region, SUM(o.amount) FILTER (WHERE o.status <> 'cancelled') AS revenue, COUNT(*)
        {ORDERS} GROUP BY c.region ORDER BY revenue DESC""", params).fetchall()
    products = con.execute("""
        SELECT p.name, p.category, SUM(oi.quantity),
               SUM(oi.quantity * oi.unit_price) FILTER (WHERE o.status <> 'cancelled') AS revenue
        FROM order_items oi JOIN orders o ON o.order_id = oi.order_id
        LEFT JOIN customers c ON c.customer_id = o.customer_id JOIN products p ON p.product_id = oi.product_id
        WHERE $region IS NULL OR c.region = $region
        GROUP BY p.name, p.category ORDER BY revenue DESC LIMIT 10""", params).fetchall()
    return {
        "totals": [round(float(revenue), 2), orders, round(float(revenue) / orders, 2)],
        "months": [(m.isoformat(), round(float(r), 2)) for m, r in months],
        "regions": [(r or "", round(float(v), 2), n) for r, v, n in regions],
        "products": [[str(i + 1), name, category, units, round(float(v), 2)]
                     for i, (name, category, units, v) in enumerate(products)],
    }


SHOWN = """() => {
  const text = s => document.querySelector(s).textContent;
  return {
    totals: [text('#kpi-revenue'), text('#kpi-orders'), text('#kpi-aov')],
    points: [...document.querySelectorAll('#months circle.point')].map(
      c => [c.dataset.month, Number(c.dataset.revenue), c.querySelector('title').textContent]),
    regions: [...document.querySelectorAll('#regions g.region')].map(
      g => [g.dataset.region, g.querySelector('.revenue-label').textContent,
            g.querySelector('.orders-label').textContent]),
    products: [...document.querySelectorAll('#products tbody tr')].map(
      tr => [...tr.querySelectorAll('td')].map(td => td.textContent)),
  };
}"""


def number(text: str) -> float:
    """A number as the page writes it (`1,234.50`, `€1,234.50`)."""
    return float(text.replace(",", "").replace("€", ""))


def shown(page: Page) -> dict[str, Any]:
    """The numbers on the page, as text read off it (the line chart's points from their data and tooltips)."""
    seen = page.evaluate(SHOWN)
    months = []
    for month, revenue, title in seen["points"]:
        assert round(number(title.split(": ")[1]), 2) == round(revenue, 2), title  # the tooltip says the same
        months.append((month, round(revenue, 2)))
    return {
        "totals": [number(seen["totals"][0]), int(number(seen["totals"][1])), number(seen["totals"][2])],
        "months": months,
        "regions": [(region, number(revenue), int(number(orders))) for region, revenue, orders in seen["regions"]],
        "products": [[rank, name, category, int(number(units)), number(revenue)]
                     for rank, name, category, units, revenue in seen["products"]],
    }


@pytest.fixture(scope="module")
def server(duckdb_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(MODEL, f"duckdb:///{duckdb_path}", tmp_path_factory.mktemp("dashboard") / "serve.log") as url:
        yield url


def test_the_dashboard_is_served_beside_the_model(server: str) -> None:
    assert httpx.get(f"{server}/dashboard").headers["location"].endswith("/dashboard/")
    page = httpx.get(f"{server}/dashboard/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.text == (ROOT / "examples" / "shop" / "dashboard" / "index.html").read_text()


def test_a_dashboard_is_a_folder_with_an_index_beside_the_model(tmp_path: Path) -> None:
    model = tmp_path / "model.yaml"
    model.write_text("version: 1\n")
    assert dashboard_of(str(model)) is None and dashboard_of(str(tmp_path)) is None
    (tmp_path / "dashboard").mkdir()
    assert dashboard_of(str(model)) is None  # a folder without a page is not a dashboard
    (tmp_path / "dashboard" / "index.html").write_text("<!doctype html>")
    assert dashboard_of(str(model)) == dashboard_of(str(tmp_path)) == tmp_path / "dashboard"
    assert dashboard_of(str(MODEL)) == ROOT / "examples" / "shop" / "dashboard"


def wait(page: Page, generation: int) -> None:
    """Until the page has drawn the answer to its `generation`-th request, and that answer was not an error."""
    page.wait_for_selector(f"body[data-generation='{generation}']", timeout=30_000)
    assert page.locator("body").get_attribute("data-state") == "ready", page.locator("#error").text_content()


@pytest.mark.browser
def test_the_dashboard_shows_the_hand_computed_numbers(server: str, duckdb_path: Path) -> None:
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        everything = expected(con, None, "UTC")
        eu_tokyo = expected(con, "EU", "Asia/Tokyo")
        eu_utc = expected(con, "EU", "UTC")
    # The choices matter for this data: the EU is a part, and Tokyo's months differ from UTC's.
    assert eu_tokyo["totals"] != everything["totals"] and eu_tokyo["months"] != eu_utc["months"]
    with browser.page() as (page, traffic):
        page.goto(f"{server}/dashboard")
        wait(page, 1)
        assert shown(page) == everything
        assert page.locator("#region option").all_inner_texts() == \
            ["All regions", *(r for r, _, _ in everything["regions"] if r)]
        page.select_option("#timezone", "Asia/Tokyo")
        wait(page, 2)
        page.select_option("#region", "EU")
        wait(page, 3)
        assert shown(page) == eu_tokyo
        assert traffic.outside() == [] and traffic.failed == []
        assert sum(url.endswith("/graphql") for url in traffic.urls) == 3  # one request per state
