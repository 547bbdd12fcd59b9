"""The one output-type rule (`semantic.types`): counts and sums of integers are integers (cumulative and offset of
those too), derived features are typed by their expression, and the same types reach query results, feature
lookups and training sets on DuckDB and PostgreSQL; metric features that have no value as of a point in time
are refused at load for online and training alike."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pyarrow as pa
import pytest

from semantic.catalog import read_catalog
from semantic.errors import ModelError
from semantic.execute import SqlWarehouse
from semantic.features.request import FeatureRequest
from semantic.loader import load
from semantic.query import SemanticQuery
from semantic.service import Service
from semantic.types import feature_type, metric_type, with_column_types

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
DATA = [
    "CREATE TABLE customers (customer_id INTEGER, region VARCHAR, signed_up TIMESTAMP)",
    "INSERT INTO customers VALUES (1, 'EU', TIMESTAMP '2024-01-01 00:00:00'), (2, NULL, TIMESTAMP '2024-01-01 00:00:00')",
    "CREATE TABLE sales (sale_id INTEGER, customer_id INTEGER, sold TIMESTAMP, units INTEGER, price DOUBLE)",
    "INSERT INTO sales VALUES (1, 1, TIMESTAMP '2024-02-01 10:00:00', 3, 2.5), "
    "(2, 1, TIMESTAMP '2024-02-20 10:00:00', 4, 1.0), (3, 2, TIMESTAMP '2024-03-01 10:00:00', 5, 4.0)",
]
MODEL = """version: 1
name: types
entities:
  - name: customer
    table: customers
    key: customer_id
    time: signed_up
    dimensions:
      - {name: customer_id, type: integer}
      - {name: region}
      - {name: signed_up, type: time}
    features:
      - {name: region, dimension: region}
      - {name: region_label, expr: "coalesce(region, 'unknown')"}
      - {name: units_total, metric: sale.units_sold}
      - {name: sales_count, metric: sale.sale_count}
      - {name: busy, expr: "sales_count > 1"}
      - {name: per_sale, expr: "units_total / nullif(sales_count, 0)"}
      - {name: last_sold, metric: sale.last_sold}
  - name: sale
    table: sales
    key: sale_id
    time: sold
    relationships:
      - {entity: customer, key: customer_id}
    dimensions:
      - {name: sold, type: time}
    metrics:
      - {name: sale_count, agg: count}
      - {name: units_sold, agg: sum, expr: units}
      - {name: revenue, agg: sum, expr: units * price}
      - {name: last_sold, agg: max, expr: sold}
      - {name: units_to_date, metric: units_sold, window: unbounded}
      - {name: units_before, metric: units_sold, offset: 1 month}
      - {name: sales_and_units, expr: "sale_count + units_sold"}
      - {name: units_per_sale, expr: "units_sold / nullif(sale_count, 0)"}
"""


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "duckdb":
        path = tmp_path / "types.duckdb"
        with duckdb.connect(str(path)) as con:
            for statement in DATA:
                con.execute(statement)
        yield f"duckdb:///{path}"
        return
    name = f"semantic_types_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            with psycopg.connect(f"{POSTGRES}/{name}", autocommit=True) as con:
                for statement in [s.replace("DOUBLE", "DOUBLE PRECISION") for s in DATA]:
                    con.execute(statement)
            yield f"{POSTGRES}/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    path = tmp_path / "model.yaml"
    path.write_text(MODEL)
    return path


def test_types_from_the_warehouse_and_the_expressions(model_path: Path, url: str) -> None:
    declared = load(model_path)
    sale = declared.entities["sale"]
    # `units` is no declared dimension: unknown until the warehouse says INTEGER
    assert metric_type(declared, sale.metrics["units_sold"]) == "number"
    warehouse = SqlWarehouse(url)
    try:
        model = with_column_types(declared, read_catalog(declared, warehouse).types())
        sale = model.entities["sale"]
        expected = {"sale_count": "integer", "units_sold": "integer", "revenue": "number", "last_sold": "datetime",
                    "units_to_date": "integer", "units_before": "integer", "sales_and_units": "integer",
                    "units_per_sale": "number"}
        assert {name: metric_type(model, m) for name, m in sale.metrics.items()} == expected
        customer = model.entities["customer"]
        assert {n: feature_type(model, customer, f) for n, f in customer.features.items()} == {
            "region": "string", "region_label": "string", "units_total": "integer", "sales_count": "integer", "busy": "boolean",
            "per_sale": "number", "last_sold": "datetime"}
        service = Service(model, warehouse)
        result = service.query(SemanticQuery(metrics=("sale.units_sold", "sale.units_to_date"),
                                             dimensions=("sale.sold:month",)))
        assert [c.type for c in result.columns] == ["date", "integer", "integer"]
        assert [row[1:] for row in sorted(result.rows)] == [(7, 7), (5, 12)]  # Feb: 3 + 4; Mar: 5, to date 12
        assert all(isinstance(v, int) for row in result.rows for v in row[1:])
        # Training set: every kind typed; the string and boolean derived features are no longer cast to DOUBLE
        spine = pa.table({"customer_id": pa.array([1, 2, 1, 3], pa.int64()),
                          "event_timestamp": pa.array(["2024-02-10", "2024-03-10", "2024-03-10", "2024-03-10"],
                                                      pa.string()).cast(pa.timestamp("us"))})
        table = service.training_set("customer", spine)
        assert table.schema.field("region_label").type == pa.string()
        assert table.column("region_label").to_pylist() == ["EU", "unknown", "EU", "unknown"]  # 3: no such key
        assert table.column("units_total").type == pa.int64()
        assert table.column("units_total").to_pylist() == [3, 5, 7, None]
        assert table.column("busy").to_pylist() == [False, False, True, None]
        assert table.column("per_sale").to_pylist() == [3.0, 5.0, 3.5, None]
        online = service.features(FeatureRequest.create(model, "customer", [1, 2], ["region_label", "busy"],
                                                        spine.column(1)[1].as_py()))
        assert [c.type for c in online.columns] == ["integer", "string", "boolean"]
        assert online.rows == ((1, "EU", True), (2, "unknown", False))
    finally:
        warehouse.close()


@pytest.mark.parametrize("metric", ["units_to_date", "units_before", "stock", "uses_stock"])
def test_metric_features_without_a_value_at_a_time_are_refused_at_load(tmp_path: Path, metric: str) -> None:
    text = MODEL.replace("      - {name: last_sold, metric: sale.last_sold}\n",
                         f"      - {{name: odd, metric: sale.{metric}}}\n").replace(
        "      - {name: sale_count, agg: count}\n", "      - {name: sale_count, agg: count}\n"
        "      - {name: stock, agg: sum, expr: units, semi_additive: last}\n"
        "      - {name: uses_stock, expr: \"stock + 1\"}\n")
    path = tmp_path / "model.yaml"
    path.write_text(text)
    with pytest.raises(ModelError) as refused:
        load(path)
    [issue] = refused.value.issues
    assert issue.line == 19 and "feature customer.odd" in issue.message and "per period" in issue.message


def test_training_set_files_arrow_feather_and_stream(tmp_path: Path) -> None:
    """`.arrow`/`.feather` are Arrow IPC files (pyarrow.feather and pandas.read_feather open them), `.arrows` a
    stream; through the CLI on a real DuckDB file."""
    import subprocess
    import sys

    import pandas as pd
    import pyarrow.feather as feather

    root = Path(__file__).resolve().parents[1]
    data = tmp_path / "types.duckdb"
    with duckdb.connect(str(data)) as con:
        for statement in DATA:
            con.execute(statement)
    model = tmp_path / "model.yaml"
    model.write_text(MODEL)
    spine = tmp_path / "spine.csv"
    spine.write_text("customer_id,event_timestamp\n1,2024-02-10\n2,2024-03-10\n")
    for name in ("out.arrow", "out.feather", "out.arrows"):
        run = subprocess.run([sys.executable, "-m", "api.cli.main", "features", str(model), "--entity", "customer",
                              "--spine", str(spine), "--out", str(tmp_path / name), "--feature", "units_total",
                              "--warehouse", f"duckdb:///{data}"], cwd=root, capture_output=True, text=True,
                             timeout=60)
        assert run.returncode == 0, run.stderr
        if name == "out.arrows":
            with pa.OSFile(str(tmp_path / name), "rb") as source:
                table = pa.ipc.open_stream(source).read_all()
        else:
            table = feather.read_table(tmp_path / name)
            assert pd.read_feather(tmp_path / name)["units_total"].tolist() == [3, 5]
        assert table.column("units_total").to_pylist() == [3, 5]


def test_compile_takes_the_warehouse_dialect() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    query = ["--metric", "order.p90_amount", "--by", "order.ordered_at:week"]

    def compiled(*options: str) -> str:
        run = subprocess.run([sys.executable, "-m", "api.cli.main", "compile", *query, *options], cwd=root,
                             capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        return run.stdout

    on_postgres = compiled("--warehouse", f"{POSTGRES}/postgres")
    assert on_postgres == compiled("--dialect", "postgres") != compiled("--dialect", "duckdb")
