"""Freshness: ttls from the model, refresh keys that drop exactly the answers reading a changed entity (on a real
PostgreSQL whose data the test changes), `semantic cache clear` on a real Redis, and the clearCache mutation that
only an admin role may call."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from api.app import create_app
from api.auth import Authenticator
from semantic.cache import ResultCache, Source
from semantic.errors import ModelError
from semantic.execute import SqlWarehouse
from semantic.freshness import Freshness
from semantic.loader import load
from semantic.query import SemanticQuery
from semantic.service import Service
from semantic.store import open_store
from tests.tenants import AUDIENCE, SECRET, Client, bearer

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql://postgres@127.0.0.1:5432"

MODEL = """
version: 1
name: freshness
dialect: postgres
cache: {ttl: 300, stale_while_revalidate: 0}
entities:
  - name: sale
    table: sales
    key: sale_id
    cache: {ttl: 120, refresh_key: "select max(updated_at) from sales", refresh_every: 0.2}
    relationships:
      - {entity: shop, key: shop_id}
    dimensions:
      - {name: sale_id, type: integer}
      - {name: shop_id, type: integer}
    metrics:
      - {name: total, agg: sum, expr: amount}
  - name: shop
    table: shops
    key: shop_id
    cache: {ttl: 30}
    dimensions:
      - {name: shop_id, type: integer}
      - {name: city}
    metrics:
      - {name: shops, agg: count}
"""


@pytest.fixture
def database() -> Iterator[str]:
    name = f"semantic_fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            with psycopg.connect(f"{POSTGRES}/{name}", autocommit=True) as db:
                db.execute("CREATE TABLE shops (shop_id INT, city TEXT)")
                db.execute("INSERT INTO shops VALUES (1, 'Lyon'), (2, 'Porto')")
                db.execute("CREATE TABLE sales (sale_id INT, shop_id INT, amount INT, updated_at TIMESTAMP)")
                db.execute("INSERT INTO sales VALUES (1, 1, 10, '2024-01-01'), (2, 2, 5, '2024-01-02')")
            yield f"{POSTGRES}/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(MODEL)
    return path


def _by_city(service: Service) -> Any:
    return service.query(SemanticQuery(("sale.total",), ("shop.city",)))


def test_ttls_come_from_the_entities_read(model_path: Path) -> None:
    service = Service(load(model_path), None)
    assert service.freshness.ttl(("sale",)) == 120
    assert service.freshness.ttl(("sale", "shop")) == 30  # the shortest
    assert service.freshness.ttl(()) == 300  # the model's


def test_bad_cache_settings_are_refused_with_where(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(MODEL.replace("ttl: 30}", "ttl: -1, refresh_key: \"max(x)\", every: 3}"))
    with pytest.raises(ModelError) as raised:
        load(path)
    text = str(raised.value)
    assert "model.yaml:" in text and "`ttl` must be a number of seconds" in text
    assert "unknown key 'every'" in text and "refresh_key must be a query" in text


def test_a_changed_refresh_key_drops_exactly_the_answers_that_read_it(model_path: Path, database: str) -> None:
    warehouse = SqlWarehouse(database)
    try:
        service = Service(load(model_path), warehouse, ResultCache())
        now = [0.0]  # the refresh schedule's own clock, moved by hand: a loaded machine cannot make it late
        service.freshness = Freshness(service.model, service.cache, clock=lambda: now[0])
        assert sorted(_by_city(service).rows) == [("Lyon", 10), ("Porto", 5)]
        shops = service.query(SemanticQuery(("shop.shops",), ("shop.city",)))
        assert _by_city(service).cache_source is Source.EXACT
        with psycopg.connect(database, autocommit=True) as db:
            db.execute("INSERT INTO sales VALUES (3, 1, 7, '2024-02-01')")
        assert _by_city(service).cache_source is Source.EXACT  # not checked again yet: within refresh_every
        by_city = SemanticQuery(("sale.total",), ("shop.city",))
        assert service.from_memory(by_city) == _by_city(service)
        now[0] += 0.3
        assert service.from_memory(by_city) is None  # the refresh key is due: it runs before any answer
        fresh = _by_city(service)
        assert fresh.cache_source is Source.WAREHOUSE and sorted(fresh.rows) == [("Lyon", 17), ("Porto", 5)]
        again = service.query(SemanticQuery(("shop.shops",), ("shop.city",)))  # reads shops only: kept
        assert again.cache_source is Source.EXACT and again.rows == shops.rows
        now[0] += 0.3
        assert _by_city(service).cache_source is Source.EXACT  # the key did not change again
    finally:
        warehouse.close()


def test_cache_clear_on_redis(model_path: Path, database: str) -> None:
    url = f"redis://127.0.0.1:6379/9?prefix=test-{uuid.uuid4().hex[:8]}:"
    warehouse = SqlWarehouse(database)
    store = open_store(url)
    try:
        service = Service(load(model_path), warehouse, ResultCache(store))
        _by_city(service)
        shops = SemanticQuery(("shop.shops",), ())
        service.query(shops)

        def clear(*options: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([sys.executable, "-m", "api.cli.main", "cache", "clear", str(model_path),
                                   "--cache", url, *options], cwd=ROOT, capture_output=True, text=True, check=False)

        bad = clear("--entity", "sales")
        assert bad.returncode == 2 and "unknown entity 'sales'" in bad.stderr and "Traceback" not in bad.stderr
        done = clear("--entity", "sale")
        assert done.returncode == 0 and "dropped 1 cached answers that read sale" in done.stdout, done.stderr
        assert _by_city(service).cache_source is Source.WAREHOUSE  # dropped
        assert service.query(shops).cache_source is Source.EXACT  # read shops only: kept
        everything = clear()
        assert everything.returncode == 0 and "dropped" in everything.stdout
        assert service.query(shops).cache_source is Source.WAREHOUSE
        missing = subprocess.run([sys.executable, "-m", "api.cli.main", "cache", "clear"], cwd=ROOT,
                                 capture_output=True, text=True, check=False,
                                 env={k: v for k, v in os.environ.items() if k != "SEMANTIC_CACHE_URL"})
        assert missing.returncode == 2 and "no shared cache to clear" in missing.stderr
    finally:
        store.clear()
        store.close()
        warehouse.close()


def test_the_clear_cache_mutation_needs_an_admin_role(model_path: Path, database: str) -> None:
    warehouse = SqlWarehouse(database)
    try:
        service = Service(load(model_path), warehouse, ResultCache())
        client = Client(create_app(service, auth=Authenticator(jwt_secret=SECRET, audience=AUDIENCE)))
        ask = {"query": "{ query(metrics: [\"sale.total\"], dimensions: [\"shop.city\"]) { cache { source } } }"}
        clear = {"query": "mutation { clearCache(entity: \"sale\") }"}
        user, admin = bearer({"sub": "u", "roles": ["analyst"]}), bearer({"sub": "a", "roles": ["admin"]})
        assert client.post("/graphql", json=ask, headers=user).json()["data"]["query"]["cache"]["source"] == \
            "WAREHOUSE"
        refused = client.post("/graphql", json=clear, headers=user).json()
        assert refused["errors"][0]["extensions"]["code"] == "FORBIDDEN" and refused["data"] is None
        assert client.post("/graphql", json=ask, headers=user).json()["data"]["query"]["cache"]["source"] == "EXACT"
        done = client.post("/graphql", json=clear, headers=admin).json()
        assert done == {"data": {"clearCache": 1}}
        assert client.post("/graphql", json=ask, headers=user).json()["data"]["query"]["cache"]["source"] == \
            "WAREHOUSE"
        over_get = client.get("/graphql", params=clear, headers=admin)
        assert over_get.status_code in (400, 405)  # no mutations over GET
    finally:
        warehouse.close()


def test_typed_fields_report_cache_facts_in_extensions(model_path: Path, database: str) -> None:
    warehouse = SqlWarehouse(database)
    try:
        client = Client(create_app(Service(load(model_path), warehouse, ResultCache())))
        body = {"query": "{ a: sale { total shop { city } } b: sale { total } }"}
        first = client.post("/graphql", json=body).json()
        assert first["extensions"]["cache"]["a"]["source"] == "WAREHOUSE"
        assert first["extensions"]["cache"]["b"]["source"] in ("WAREHOUSE", "ROLLUP")
        second = client.post("/graphql", json=body).json()
        assert {k: v["source"] for k, v in second["extensions"]["cache"].items()} == {"a": "EXACT", "b": "EXACT"}
        assert second["extensions"]["cache"]["a"]["hit"] is True and len(second["extensions"]["cache"]["a"]["key"]) == 64
    finally:
        warehouse.close()
