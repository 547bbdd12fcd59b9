"""Nested relationship fields name the join path when several lead to one entity."""

from __future__ import annotations

from pathlib import Path

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
