"""GraphQL over HTTP against a real uvicorn process serving the example model on a small DuckDB file."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from examples.shop.generate import generate
from tests.serving import ROOT, serving


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("api") / "shop.duckdb", orders=3000)


@pytest.fixture(scope="module")
def server(shop_file: Path) -> Iterator[str]:
    with serving(ROOT / "examples" / "shop", f"duckdb:///{shop_file}", shop_file.with_suffix(".log")) as url:
        yield url


def gql(server: str, query: str, headers: dict[str, str] | None = None, **variables: Any) -> dict[str, Any]:
    response = httpx.post(f"{server}/graphql", json={"query": query, "variables": variables}, headers=headers,
                          timeout=30)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def hand(shop_file: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(shop_file), read_only=True) as con:
        return con.sql(sql).fetchall()


def error_code(body: dict[str, Any]) -> str:
    assert body.get("errors"), body
    code: str = body["errors"][0]["extensions"]["code"]
    return code


@pytest.fixture(scope="module")
def revenue_by_region(shop_file: Path) -> dict[Any, Decimal]:
    # Read before the server opens the file, so the read-only connection does not clash with it.
    rows = hand(shop_file, """
        select c.region, sum(case when o.status <> 'cancelled' then o.amount end)
        from orders o left join customers c on o.customer_id = c.customer_id group by 1""")
    return {region: revenue for region, revenue in rows}  # DECIMAL(38,2): exact


def test_typed_field_matches_hand_written_sql(server: str, revenue_by_region: dict[Any, Decimal]) -> None:
    """The selection set is the query: customer { region } groups, revenue aggregates, exact to the cent (a
    `Decimal` is a string of its digits)."""
    body = gql(server, "{ order { customer { region } revenue } }")
    got = {row["customer"]["region"]: row["revenue"] for row in body["data"]["order"]}
    assert got.keys() == revenue_by_region.keys()
    for region, value in revenue_by_region.items():
        assert isinstance(value, Decimal) and got[region] == str(value)


def test_generic_query_matches_typed_field(server: str) -> None:
    body = gql(server, """{ query(metrics: ["order.revenue", "order.order_count"], dimensions: ["customer.region"],
                                  orderBy: ["-order.revenue"]) { columns { name type } rows sql } }""")
    result = body["data"]["query"]
    assert [c["name"] for c in result["columns"]] == ["customer.region", "order.revenue", "order.order_count"]
    assert [c["type"] for c in result["columns"]] == ["string", "number", "integer"]
    revenues = [row[1] for row in result["rows"]]
    assert revenues == sorted(revenues, reverse=True)
    typed = gql(server, "{ order(orderBy: [{revenue: DESC}]) { customer { region } revenue orderCount } }")
    # The typed Decimal is its exact digits; the generic rows' JSON number, read back, has the same digits.
    assert [[r["customer"]["region"], Decimal(r["revenue"]), r["orderCount"]] for r in typed["data"]["order"]] == [
        [region, Decimal(repr(revenue)), count] for region, revenue, count in result["rows"]]


def test_aliases_read_one_time_at_two_grains(server: str) -> None:
    """Two aliases of one time field at two grains; the time filter is a half-open range."""
    body = gql(server, """{ order(where: {orderedAt: {gte: "2024-03-01", lt: "2024-04-01"}}) {
                             month: orderedAt(grain: MONTH) day: orderedAt(grain: DAY) orderCount } }""")
    rows = body["data"]["order"]
    assert {r["month"] for r in rows} == {"2024-03-01"}
    assert sorted(r["day"] for r in rows) == [f"2024-03-{d:02d}" for d in range(1, 32)]


def test_ordering_by_a_time_selected_at_two_grains_is_refused(server: str) -> None:
    body = gql(server, "{ order(orderBy: [{orderedAt: ASC}]) { m: orderedAt(grain: MONTH) d: orderedAt(grain: DAY) } }")
    assert error_code(body) == "BAD_QUERY"
    assert "several grains" in body["errors"][0]["message"]


def test_nested_where_filters_before_aggregation(server: str, shop_file: Path) -> None:
    """A typed where on the entity and on a related one: the count a hand-written query gives."""
    body = gql(server, """{ order(where: {status: {in: ["completed", "shipped"]}, customer: {region: {eq: "EU"}}}) {
                             orderCount } }""")
    (expected,) = hand(shop_file, """SELECT COUNT(*) FROM orders o JOIN customers c ON o.customer_id = c.customer_id
                                     WHERE o.status IN ('completed', 'shipped') AND c.region = 'EU'""")
    assert expected[0] > 0 and body["data"]["order"] == [{"orderCount": expected[0]}]


def test_cache_is_shared_and_the_scope_header_is_not_trusted(server: str) -> None:
    query = '{ query(metrics: ["page_view.views"], dimensions: ["page_view.page"]) { cache { hit key } } }'
    gql(server, query)
    again = gql(server, query)["data"]["query"]["cache"]
    assert again["hit"] is True
    # A client-chosen header no longer picks a cache scope: only authenticated policies do (tests/test_access*).
    other = gql(server, query, headers={"x-semantic-scope": "tenant-b"})["data"]["query"]["cache"]
    assert other == again


def test_features_by_key(server: str) -> None:
    body = gql(server, '{ customerFeatures(keys: [1, 2, 999999, 1], at: "2024-06-01T00:00:00") '
                       '{ customerId ordersLast30d region } }')
    rows = body["data"]["customerFeatures"]
    assert [r["customerId"] for r in rows] == [1, 2, 999999, 1]
    assert rows[2] == {"customerId": 999999, "ordersLast30d": None, "region": None}
    assert rows[0] == rows[3]


def test_catalog_lists_every_entity(server: str) -> None:
    body = gql(server, "{ catalog { name description metrics { name description } features { name } } }")
    names = {e["name"] for e in body["data"]["catalog"]}
    assert names == {"customer", "product", "order", "order_item", "page_view", "daily_stats", "inventory"}
    assert all(m["description"] for e in body["data"]["catalog"] for m in e["metrics"])


@pytest.mark.parametrize(("query", "code", "words"), [
    ('{ query(metrics: ["order.revnue"]) { rows } }', "UNKNOWN_FIELD", "order.revenue"),
    ('{ query(metrics: ["customer.customer_count"], dimensions: ["order.status"]) { rows } }', "FANOUT", "instead"),
    ('{ query(metrics: ["order.revenue"], dimensions: ["order.ordered_at:fortnight"]) { rows } }', "BAD_QUERY",
     "grain"),
    ('{ query(metrics: ["order.revenue"], where: "order.ordered_at >= \'not-a-date\'") { rows } }', "BAD_QUERY",
     "not a date"),
    ('{ query(metrics: ["order.revenue"], limit: -1) { rows } }', "BAD_QUERY", "limit"),
    ('{ query(metrics: ["order.revenue"], dimensions: ["customer.region"], orderBy: ["order.order_count"]) '
     '{ rows } }', "BAD_QUERY", "not selected"),
    ('{ query(metrics: ["order.revenue"], where: "order.status in (select 1)") { rows } }', "BAD_QUERY",
     "not allowed"),
    ('{ query(metrics: ["revenue"]) { rows } }', "BAD_QUERY", "order.revenue"),
    ('{ order { nope } }', "UNKNOWN_FIELD", "nope"),
    ('{ customerFeatures(keys: [1], at: "yesterday") { region } }', "GRAPHQL_VALIDATION_FAILED", "yesterday"),
    ('{ features(entity: "custmer", keys: [1]) { rows } }', "UNKNOWN_FIELD", "customer"),
    ('{ compile(metrics: ["order.revenue"], dialect: "oracle9") }', "BAD_QUERY", "dialect"),
])
def test_bad_input_gets_a_code_and_a_hint(server: str, query: str, code: str, words: str) -> None:
    body = gql(server, query)
    assert error_code(body) == code
    message = body["errors"][0]["message"]
    assert words in message
    assert "Traceback" not in message


def test_malformed_request_is_not_a_server_error(server: str) -> None:
    response = httpx.post(f"{server}/graphql", content=b"{not json", headers={"content-type": "application/json"})
    assert 400 <= response.status_code < 500


def test_compile_returns_labelled_sql(server: str) -> None:
    body = gql(server, '{ compile(metrics: ["order.revenue"], dimensions: ["customer.region"], dialect: "postgres") }')
    sql = body["data"]["compile"]
    assert "LEFT JOIN customers" in sql and "Aggregate order" in sql


def _operations() -> list[str]:
    text = (ROOT / "examples" / "shop" / "queries.graphql").read_text()
    return [line.split()[1] for line in text.splitlines() if line.startswith("query ")]


@pytest.mark.parametrize("operation", _operations())
def test_every_example_query_answers(server: str, operation: str) -> None:
    document = (ROOT / "examples" / "shop" / "queries.graphql").read_text()
    response = httpx.post(f"{server}/graphql", json={"query": document, "operationName": operation}, timeout=30)
    body = response.json()
    assert response.status_code == 200 and "errors" not in body, body
    (value,) = body["data"].values()
    assert value


def test_feature_lookup_over_http(server: str) -> None:
    """GET /features/customer: the same values as GraphQL, one row per key in order; latest values say when."""
    body = httpx.get(f"{server}/features/customer", params=[("key", "2"), ("key", "1"), ("key", "2"),
                                                            ("feature", "orders_last_30d"), ("feature", "region"),
                                                            ("at", "2024-06-01T00:00:00")]).json()
    assert [c["name"] for c in body["columns"]] == ["customer_id", "orders_last_30d", "region"]
    assert [row[0] for row in body["rows"]] == [2, 1, 2] and body["at"] == "2024-06-01T00:00:00"
    typed = gql(server, '{ customerFeatures(keys: [2, 1, 2], at: "2024-06-01T00:00:00") '
                        '{ customerId ordersLast30d region } }')["data"]["customerFeatures"]
    assert [[r["customerId"], r["ordersLast30d"], r["region"]] for r in typed] == body["rows"]
    latest = httpx.get(f"{server}/features/customer", params={"key": "1"}).json()
    assert latest["at"].startswith("snapshot as of ") and len(latest["rows"]) == 1
    refreshed = httpx.post(f"{server}/features/customer/refresh").json()
    assert refreshed["entity"] == "customer" and refreshed["keys"] > 0


@pytest.mark.parametrize(("path", "params", "status", "words"), [
    ("/features/custmer", {"key": "1"}, 422, "customer"),
    ("/features/customer", {"key": "one"}, 422, "integer"),
    ("/features/customer", {"key": "1", "at": "yesterday"}, 400, "ISO 8601"),
    ("/features/customer", {"key": "1", "feature": "orders_7dd"}, 422, "orders_7d"),
    ("/features/customer", {}, 422, "keys"),
])
def test_feature_lookup_errors(server: str, path: str, params: dict[str, str], status: int, words: str) -> None:
    response = httpx.get(f"{server}{path}", params=params)
    assert response.status_code == status
    assert words in response.json()["error"]["message"]


def test_alias_and_depth_limits(server: str) -> None:
    """Many aliases (also through fragments) or deep nesting are refused before anything runs."""
    aliases = " ".join(f"a{i}: catalog {{ name }}" for i in range(60))
    assert "aliases" in gql(server, f"{{ {aliases} }}")["errors"][0]["message"]
    spread = "fragment F on CatalogEntity { " + " ".join(f"n{i}: name" for i in range(60)) + " }"
    assert "aliases" in gql(server, f"{{ catalog {{ ...F }} }} {spread}")["errors"][0]["message"]
