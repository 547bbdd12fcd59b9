"""The example suite on a real Spark Connect server (started locally for the session), cell by cell against
DuckDB's answers on the same data; a training set with its spine sent as a DataFrame; the time limit as an
interrupt."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from semantic.errors import WarehouseError, WarehouseTimeoutError
from semantic.execute import SqlWarehouse, Table
from semantic.model import Model
from semantic.query import Filter, SemanticQuery
from semantic.service import Service
from semantic.spark import SparkWarehouse
from semantic.warehouses import connect
from tests.conftest import TABLES
from tests.spark_server import load_tables, spark_connect_server
from tests.test_golden import EXPECTED_COMPILE_ERRORS, QUERIES

pytestmark = pytest.mark.spark


@pytest.fixture(scope="session")
def spark_url(tmp_path_factory: pytest.TempPathFactory, duckdb_path: Path) -> Iterator[str]:
    with spark_connect_server(tmp_path_factory.mktemp("spark")) as url:
        load_tables(url, duckdb_path, TABLES)
        yield url


@pytest.fixture(scope="module")
def spark(spark_url: str, model: Model) -> Iterator[Service]:
    warehouse = connect(spark_url, timeout=120)
    assert isinstance(warehouse, SparkWarehouse)
    yield Service(model, warehouse)
    warehouse.close()


@pytest.fixture(scope="module")
def local(duckdb_path: Path, model: Model) -> Iterator[Service]:
    warehouse = SqlWarehouse(f"duckdb:///{duckdb_path}", read_only=True)
    yield Service(model, warehouse)
    warehouse.close()


def _cell(value: Any) -> Any:
    """One value as both engines can agree on it: numbers as floats, times as naive UTC."""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def _same_cells(got: tuple[tuple[Any, ...], ...], want: tuple[tuple[Any, ...], ...], ordered: bool) -> None:
    def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple((v is None, str(v)) for v in row)

    rows = [tuple(_cell(v) for v in row) for row in got]
    expected = [tuple(_cell(v) for v in row) for row in want]
    if not ordered:
        rows, expected = sorted(rows, key=key), sorted(expected, key=key)
    assert len(rows) == len(expected)
    for i, (row, other) in enumerate(zip(rows, expected, strict=True)):
        for a, b in zip(row, other, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                # Spark's AVG of a DECIMAL keeps 6 decimal places; DuckDB's answers a double
                assert math.isclose(a, b, rel_tol=1e-7, abs_tol=1e-6), (i, row, other)
            else:
                assert a == b, (i, row, other)


SUITE = [name for name in QUERIES if (name, "spark") not in EXPECTED_COMPILE_ERRORS]


@pytest.mark.parametrize("name", SUITE)
def test_example_suite_equals_duckdb(spark: Service, local: Service, name: str) -> None:
    query = QUERIES[name]
    got, want = spark.query(query), local.query(query)
    assert [c.name for c in got.columns] == [c.name for c in want.columns]
    assert want.rows, f"{name} answers nothing on DuckDB, so it checks nothing"
    _same_cells(got.rows, want.rows, ordered=bool(query.order_by))


def test_fill_zero_equals_duckdb(spark: Service, local: Service) -> None:
    """The periods of a fill come from a series joined as a table: on Spark a LATERAL VIEW of EXPLODE(SEQUENCE)."""
    query = SemanticQuery(metrics=("order.revenue",), dimensions=("time:day",), fill="zero",
                          where=Filter.parse("customer.segment = 'enterprise' and customer.region = 'LATAM' "
                                             "and order.channel = 'store'"))
    got, want = spark.query(query), local.query(query)
    assert any(row[1] == 0 for row in want.rows), "no day is filled, so the fill is not checked"
    _same_cells(got.rows, want.rows, ordered=False)


def test_training_set_spine_as_dataframe(spark: Service, local: Service) -> None:
    assert local.warehouse is not None
    spine = local.warehouse.arrow("SELECT customer_id, ordered_at + INTERVAL 1 HOUR AS event_timestamp, "
                                  "order_id AS row_id FROM orders ORDER BY order_id LIMIT 400")
    got, want = spark.training_set("customer", spine), local.training_set("customer", spine)
    assert got.column_names == want.column_names
    assert got.num_rows == want.num_rows == 400
    _same_cells(tuple(zip(*(c.to_pylist() for c in got.columns), strict=True)),
                tuple(zip(*(c.to_pylist() for c in want.columns), strict=True)), ordered=True)
    assert any(v for v in want.column("lifetime_revenue").to_pylist())  # the features are not all empty


def test_arrow_answers_and_temporary_views_are_dropped(spark: Service) -> None:
    warehouse = spark.warehouse
    assert isinstance(warehouse, SparkWarehouse)
    table = pa.table({"k": [3, 1, 2], "day": [date(2024, 1, 3), date(2024, 1, 1), None]})
    answer = warehouse.arrow_with("SELECT SUM(k) AS s, COUNT(day) AS d FROM spine_check", {"spine_check": table})
    assert answer.to_pylist() == [{"s": 6, "d": 2}]
    with pytest.raises(WarehouseError, match="Spark refused"):
        warehouse.arrow("SELECT * FROM spine_check")
    assert isinstance(warehouse.run("SELECT 1 AS one"), Table)


def test_time_limit_interrupts_the_statement(spark_url: str) -> None:
    warehouse = SparkWarehouse(spark_url, timeout=2)
    try:
        started = datetime.now()
        with pytest.raises(WarehouseTimeoutError):
            warehouse.arrow("SELECT COUNT(*) FROM range(0, 100000000000) a")  # minutes of work
        assert (datetime.now() - started).total_seconds() < 60
        warehouse.timeout = 120  # a loaded machine may take seconds for anything; the point is the session goes on
        assert warehouse.run("SELECT 2 AS two").rows == ((2,),)
    finally:
        warehouse.close()
