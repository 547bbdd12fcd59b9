"""A time filter reaches PostgreSQL on the raw column, so an index on that column serves it (EXPLAIN says so)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from semantic.loader import load
from semantic.query import Filter, SemanticQuery
from semantic.service import Service
from tests.conftest import POSTGRES

pytestmark = pytest.mark.postgres

MODEL = """
name: indexed
dialect: postgres
entities:
  - name: event
    table: events
    key: id
    time: happened_at
    dimensions:
      - {name: kind}
      - {name: happened_at, type: time, grain: second}
    metrics:
      - {name: events, agg: count}
"""


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    name = f"semantic_index_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    try:
        with psycopg.connect(f"{POSTGRES}/{name}", autocommit=True) as con:
            con.execute("CREATE TABLE events AS SELECT i AS id, (ARRAY['a','b','c'])[1 + i % 3] AS kind, "
                        "TIMESTAMP '2024-01-01' + i * INTERVAL '1 minute' AS happened_at "
                        "FROM generate_series(1, 200000) i")
            con.execute("CREATE INDEX events_happened_at ON events (happened_at)")
            con.execute("ANALYZE events")
        yield name
    finally:
        with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


def _nodes(plan: dict[str, object]) -> list[str]:
    found = [str(plan["Node Type"])]
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        found += _nodes(child)
    return found


@pytest.mark.parametrize("where", ["event.happened_at >= '2024-03-01' and event.happened_at < '2024-03-02'",
                                   "event.happened_at:day = '2024-03-01'",
                                   "time:month = '2024-03-01'"])
def test_time_filter_uses_the_index(database: str, tmp_path: Path, where: str) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(MODEL)
    query = SemanticQuery(("event.events",), ("event.kind",), Filter.parse(where))
    sql = Service(load(path), None).compile(query, "postgres").sql
    with psycopg.connect(f"{POSTGRES}/{database}") as con:
        plan = con.execute(f"EXPLAIN (FORMAT JSON) {sql}").fetchone()[0][0]["Plan"]  # type: ignore[index]
        rows = con.execute(sql).fetchall()
    assert any("Index" in node for node in _nodes(plan)), json.dumps(plan)[:2000]
    assert sum(r[1] for r in rows) > 0
