"""Shared fixtures: the example model, a small example DuckDB file, and the same data on DuckDB and PostgreSQL.

`warehouse_url` runs each test that uses it once per warehouse. The PostgreSQL copy lives in a fresh database that
is dropped at the end of the session; an unreachable server fails those tests unless SEMANTIC_SKIP_POSTGRES=1.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from examples.shop.generate import generate
from semantic.execute import SqlWarehouse
from semantic.loader import load
from semantic.model import Model
from semantic.service import Service
from tests.local_servers import copy_tables

MODEL_PATH = Path(__file__).resolve().parents[1] / "examples" / "shop" / "model.yaml"
POSTGRES = "postgresql://postgres@127.0.0.1:5432"
TABLES = ("customers", "products", "orders", "order_items", "page_views", "customer_daily_stats",
          "inventory_snapshots")


@pytest.fixture(scope="session")
def model() -> Model:
    return load(MODEL_PATH)


@pytest.fixture(scope="session")
def duckdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("shop") / "shop.duckdb", orders=3000, seed=7)


def _connect_postgres(database: str) -> psycopg.Connection:
    try:
        return psycopg.connect(f"{POSTGRES}/{database}", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if os.environ.get("SEMANTIC_SKIP_POSTGRES") == "1":
            pytest.skip(f"PostgreSQL is not reachable ({error}); skipped because SEMANTIC_SKIP_POSTGRES=1")
        pytest.fail(f"PostgreSQL at {POSTGRES} is not reachable: {error}; set SEMANTIC_SKIP_POSTGRES=1 to skip")


@pytest.fixture(scope="session")
def postgres_url(duckdb_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database holding the six example tables; dropped at the end of the session."""
    name = f"semantic_test_{uuid.uuid4().hex[:8]}"
    with _connect_postgres("postgres") as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            copy_tables(duckdb_path, f"{POSTGRES}/{name}", TABLES)
            yield f"{POSTGRES}/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="session", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def warehouse_url(request: pytest.FixtureRequest, duckdb_path: Path) -> str:
    if request.param == "duckdb":
        return f"duckdb:///{duckdb_path}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture(scope="session")
def service(model: Model, warehouse_url: str) -> Iterator[Service]:
    warehouse = SqlWarehouse(warehouse_url)
    yield Service(model, warehouse)
    warehouse.close()
