"""A tiny purpose-built dataset per test module, loaded into a fresh DuckDB file and a fresh PostgreSQL database.

Each test module defines two constants:

- `MODEL`: the model YAML (written into a temporary folder and loaded with `semantic.loader.load`);
- `TABLES`: `{table name: (columns, rows)}`, with `columns` a dict `{column name: SQL type}` in order and `rows` a
  list of tuples. Types are spelled so that both warehouses accept them: INTEGER, VARCHAR, DOUBLE PRECISION,
  DECIMAL(p,s), BOOLEAN, DATE, TIMESTAMP.

`service` then runs every test of the module once per warehouse. `ask` runs a query and returns its rows as a dict
from group to values, checking on the way that no group comes back twice.

The PostgreSQL database (`semantic_sound_<uuid8>`) is dropped when the module's tests end; an unreachable server
fails those tests unless SEMANTIC_SKIP_POSTGRES=1.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from semantic.execute import SqlWarehouse
from semantic.loader import load
from semantic.query import Filter, SemanticQuery
from semantic.service import Service

POSTGRES = "postgresql://postgres@127.0.0.1:5432"

Tables = dict[str, tuple[dict[str, str], list[tuple[Any, ...]]]]
Ask = Callable[..., dict[Any, Any]]


def _dataset(request: pytest.FixtureRequest) -> tuple[str, Tables]:
    module = request.module
    if not hasattr(module, "MODEL") or not hasattr(module, "TABLES"):
        pytest.fail(f"{module.__name__} must define MODEL (YAML text) and TABLES (name -> (columns, rows))")
    return module.MODEL, module.TABLES


def _create(tables: Tables, execute: Callable[[str], Any], insert: Callable[[str, list[tuple[Any, ...]]], Any],
            placeholder: str) -> None:
    for name, (columns, rows) in tables.items():
        execute(f"CREATE TABLE {name} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
        if rows:
            insert(f"INSERT INTO {name} VALUES ({', '.join([placeholder] * len(columns))})", rows)


@contextmanager
def _duckdb(folder: Path, tables: Tables) -> Iterator[str]:
    path = folder / "sound.duckdb"
    with duckdb.connect(str(path)) as con:
        _create(tables, con.execute, con.executemany, "?")
    yield f"duckdb:///{path}"


def _connect_postgres(database: str) -> psycopg.Connection:
    try:
        return psycopg.connect(f"{POSTGRES}/{database}", autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as error:
        if os.environ.get("SEMANTIC_SKIP_POSTGRES") == "1":
            pytest.skip(f"PostgreSQL is not reachable ({error}); skipped because SEMANTIC_SKIP_POSTGRES=1")
        pytest.fail(f"PostgreSQL at {POSTGRES} is not reachable: {error}; set SEMANTIC_SKIP_POSTGRES=1 to skip")


@contextmanager
def _postgres(tables: Tables) -> Iterator[str]:
    name = f"semantic_sound_{uuid.uuid4().hex[:8]}"
    with _connect_postgres("postgres") as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            with psycopg.connect(f"{POSTGRES}/{name}", autocommit=True) as target, target.cursor() as cursor:
                _create(tables, cursor.execute, cursor.executemany, "%s")
            yield f"{POSTGRES}/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """The module's model over the module's tables, on one warehouse per parameter. In this folder it replaces the
    session-wide `service` of tests/conftest.py, which serves the example shop."""
    text, tables = _dataset(request)
    folder = tmp_path_factory.mktemp(f"sound_{request.param}")
    (folder / "model.yaml").write_text(text)
    model = load(folder / "model.yaml")
    with _duckdb(folder, tables) if request.param == "duckdb" else _postgres(tables) as url:
        warehouse = SqlWarehouse(url)
        try:
            yield Service(model, warehouse)
        finally:
            warehouse.close()


@pytest.fixture
def ask(service: Service) -> Ask:
    """`ask(metrics, dimensions=(), where=None, **options)` -> `{group: values}`.

    Options are further `SemanticQuery` fields (`timezone=...`). A group is the tuple of dimension values (the bare
    value when there is exactly one dimension, `()` when there are none); values are the tuple of metric values (the
    bare value when there is exactly one metric). A group that comes back twice fails the test: every group of a
    result is one row.
    """

    def run(metrics: Sequence[str], dimensions: Sequence[str] = (), where: str | None = None,
            **options: Any) -> dict[Any, Any]:
        query = SemanticQuery(tuple(metrics), tuple(dimensions), Filter.parse(where) if where else None, **options)
        width = len(dimensions)
        found: dict[Any, Any] = {}
        for row in service.query(query).rows:
            group = row[0] if width == 1 else tuple(row[:width])
            values = row[width] if len(metrics) == 1 else tuple(row[width:])
            assert group not in found, f"group {group!r} came back twice: {found[group]!r} and {values!r}"
            found[group] = values
        return found

    return run
