"""Class 8: a many-to-one target whose key is not unique in the data (customer 1 twice) must not double count a
served answer: the query is refused with DATA_INTEGRITY, through the Service, the CLI and GraphQL over HTTP; a
query that does not join through it is still answered; a duplicate appearing later is noticed on re-check."""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import anyio
import duckdb
import httpx
import psycopg
import pytest

from api.app import create_app
from semantic.errors import DataIntegrityError
from semantic.execute import SqlWarehouse
from semantic.features.request import FeatureRequest
from semantic.integrity import KeyGuard
from semantic.loader import load
from semantic.query import Filter, SemanticQuery
from semantic.service import Service
from tests.test_checks import DATA, GOOD, POSTGRES

ROOT = Path(__file__).resolve().parents[1]
FEATURES = GOOD.replace("      - {name: signed_up, type: time, storage: date}\n", """      - {name: signed_up, type: time, storage: date}
      - {name: customer_id, type: integer}
    features:
      - {name: region_now, dimension: region}
""")


@pytest.fixture(scope="module")
def duck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("integrity") / "data.duckdb"
    with duckdb.connect(str(path)) as con:
        for statement in DATA:
            con.execute(statement)
    return path


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(FEATURES)
    return path


def test_service_refuses_a_join_through_a_duplicate_key(duck: Path, model_path: Path) -> None:
    warehouse = SqlWarehouse(f"duckdb:///{duck}")
    service = Service(load(model_path), warehouse, integrity=KeyGuard(warehouse))
    try:
        with pytest.raises(DataIntegrityError) as refused:
            service.query(SemanticQuery(metrics=("order.order_count",), dimensions=("customer.region",)))
        assert refused.value.code == "DATA_INTEGRITY"
        assert "'customer' on (customer_id)" in refused.value.message and "customer_id = 1" in refused.value.message
        # a filter through the customer joins it too
        with pytest.raises(DataIntegrityError):
            service.query(SemanticQuery(metrics=("order.order_count",),
                                        where=Filter.parse("customer.region = 'EU'")))
        # no join through customer: answered, 6 orders; through product (unique): 3 and 3
        assert service.query(SemanticQuery(metrics=("order.order_count",))).rows == ((6,),)
        by_category = service.query(SemanticQuery(metrics=("order.order_count",), dimensions=("product.category",)))
        assert sorted(by_category.rows) == [("books", 3), ("games", 3)]
        request = FeatureRequest.create(service.model, "customer", [2], None, None)
        with pytest.raises(DataIntegrityError):  # the spine joins customers on their key: rows would repeat
            service.features(request)
    finally:
        warehouse.close()


def test_cli_query_refuses_and_graphql_answers_with_the_code(duck: Path, model_path: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "api.cli.main", "query", str(model_path), "--metric",
                          "order.order_count", "--by", "customer.region", "--warehouse", f"duckdb:///{duck}"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and "error [DATA_INTEGRITY]" in run.stderr and "Traceback" not in run.stderr
    warehouse = SqlWarehouse(f"duckdb:///{duck}")
    app = create_app(Service(load(model_path), warehouse))  # the app checks the keys it serves by itself
    transport = httpx.ASGITransport(app=app)

    async def ask(document: str) -> dict[str, object]:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            response = await client.post("/graphql", json={"query": document})
            return dict(response.json())

    answer = anyio.run(ask, '{ query(metrics: ["order.order_count"], dimensions: ["customer.region"]) { rows } }')
    errors = answer["errors"]
    assert isinstance(errors, list) and errors[0]["extensions"]["code"] == "DATA_INTEGRITY"
    answer = anyio.run(ask, '{ query(metrics: ["order.order_count"]) { rows } }')
    assert "errors" not in answer and answer["data"] == {"query": {"rows": [[6]]}}
    warehouse.close()


@pytest.fixture
def postgres() -> Iterator[str]:
    name = f"semantic_integrity_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            with psycopg.connect(f"{POSTGRES}/{name}", autocommit=True) as con:
                for statement in DATA:
                    con.execute(statement)
                con.execute("DELETE FROM customers WHERE region = 'NA'")  # customer 1 once: the key is unique
            yield f"{POSTGRES}/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.mark.postgres
def test_a_duplicate_appearing_later_is_refused_after_the_recheck(postgres: str, model_path: Path) -> None:
    now = [0.0]
    warehouse = SqlWarehouse(postgres)
    service = Service(load(model_path), warehouse, integrity=KeyGuard(warehouse, max_age=60, clock=lambda: now[0]))
    query = SemanticQuery(metrics=("order.order_count",), dimensions=("customer.region",))
    try:
        # orders 100 (customer 1, EU), 101 (2, EU), 105 (3, no region), 102-104 without a customer: by hand
        assert sorted(service.query(query).rows, key=str) == sorted([("EU", 2), (None, 4)], key=str)
        with psycopg.connect(postgres, autocommit=True) as con:
            con.execute("INSERT INTO customers VALUES (2, 'LATAM', NULL)")
        assert service.query(query).cache_hit  # within max_age the verdict stands (the answer is cached)
        now[0] = 61.0
        with pytest.raises(DataIntegrityError, match="customer_id = 2 is held by 2 rows"):
            service.query(query)
    finally:
        warehouse.close()
