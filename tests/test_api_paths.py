"""Nested relationship fields name the join path when several lead to one entity."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import httpx
import pytest

from api.app import create_app
from semantic.execute import SqlWarehouse
from semantic.loader import load
from semantic.service import Service
from tests.test_refusals import TWO_PATHS


@pytest.fixture
def service(tmp_path: Path) -> Service:
    (tmp_path / "flights.yaml").write_text(TWO_PATHS)
    path = tmp_path / "flights.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE airports AS SELECT * FROM (VALUES ('OSL', 'Oslo'), ('FCO', 'Rome')) t(code, city)")
        con.execute("CREATE TABLE routes AS SELECT * FROM (VALUES (1, 'FCO'), (2, 'OSL')) t(route_id, destination)")
        con.execute("CREATE TABLE flights AS SELECT * FROM (VALUES (10, 'OSL', 1, DATE '2024-01-01'), "
                    "(11, 'OSL', 2, DATE '2024-01-02'), (12, 'FCO', 1, DATE '2024-01-03')) "
                    "t(flight_id, origin, route_id, departed_at)")
    return Service(load(tmp_path / "flights.yaml"), SqlWarehouse(f"duckdb:///{path}"))


@pytest.mark.anyio
async def test_nested_fields_pick_the_path(service: Service) -> None:
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/graphql", json={"query": """{ flight {
            from: airport { city } to: route { airport { city } } flights } }"""})
    rows = response.json()["data"]["flight"]
    assert sorted((r["from"]["city"], r["to"]["airport"]["city"], r["flights"]) for r in rows) == [
        ("Oslo", "Oslo", 1), ("Oslo", "Rome", 1), ("Rome", "Rome", 1)]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _post(service: Service, query: str) -> dict[str, Any]:
    transport = httpx.ASGITransport(app=create_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/graphql", json={"query": query})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


@pytest.mark.anyio
async def test_typed_where_and_order_follow_the_nested_path(service: Service) -> None:
    """Flights 10 and 12 take route 1 to FCO (Rome); flight 12 leaves from FCO; flight 11 flies route 2 to Oslo."""
    to_rome = await _post(service, '{ flight(where: {route: {airport: {city: {eq: "Rome"}}}}) { flights } }')
    assert to_rome["data"] == {"flight": [{"flights": 2}]}
    from_rome = await _post(service, '{ flight(where: {airport: {city: {eq: "Rome"}}}) { flights } }')
    assert from_rome["data"] == {"flight": [{"flights": 1}]}
    ordered = await _post(service, """{ flight(orderBy: [{route: {airport: {city: DESC}}}]) {
        flights route { airport { city } } } }""")
    assert [(r["route"]["airport"]["city"], r["flights"]) for r in ordered["data"]["flight"]] == [
        ("Rome", 2), ("Oslo", 1)]


@pytest.mark.anyio
async def test_syntax_and_validation_errors_carry_codes(service: Service) -> None:
    syntax = await _post(service, "{ flight { flights ")
    assert syntax["errors"][0]["extensions"] == {"code": "GRAPHQL_PARSE_FAILED"}
    assert "Syntax Error" in syntax["errors"][0]["message"]
    unknown = await _post(service, "{ flight { nope } }")
    assert unknown["errors"][0]["extensions"] == {"code": "UNKNOWN_FIELD"}
    wrong = await _post(service, '{ flight(limit: "ten") { flights } }')
    assert wrong["errors"][0]["extensions"] == {"code": "GRAPHQL_VALIDATION_FAILED"}
