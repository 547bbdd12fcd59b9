"""`semantic validate` against the data: hand-made tables with a misspelt name, duplicate keys, orphans and type
mismatches, on a real DuckDB file and a real PostgreSQL database; the loader's strictness (unknown keys, versions,
duplicate YAML keys, empty files). Expected figures are counted by hand from the rows below."""

from __future__ import annotations

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import duckdb
import psycopg
import pytest

from semantic.checks import check_data
from semantic.errors import Issue, ModelError
from semantic.execute import SqlWarehouse
from semantic.loader import load, read

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = "postgresql://postgres@127.0.0.1:5432"

# customer 1 twice (so every order of customer 1 would count twice), customer 99 nowhere (2 orphan orders), one
# order without a customer; product 10 once, every order has a product.
DATA = [
    "CREATE TABLE customers (customer_id INTEGER, region VARCHAR, signed_up DATE)",
    "INSERT INTO customers VALUES (1, 'EU', DATE '2024-01-01'), (1, 'NA', DATE '2024-01-02'), "
    "(2, 'EU', DATE '2024-01-03'), (3, NULL, NULL)",
    "CREATE TABLE products (product_id INTEGER, category VARCHAR)",
    "INSERT INTO products VALUES (10, 'books'), (11, 'games')",
    "CREATE TABLE orders (order_id INTEGER, customer_id INTEGER, product_id INTEGER, amount DECIMAL(10, 2), "
    "status VARCHAR, ordered_at TIMESTAMP)",
    "INSERT INTO orders VALUES (100, 1, 10, 5.00, 'paid', TIMESTAMP '2024-02-01 10:00:00'), "
    "(101, 2, 10, 7.50, 'paid', TIMESTAMP '2024-02-02 10:00:00'), "
    "(102, 99, 11, 1.25, 'cancelled', TIMESTAMP '2024-02-03 10:00:00'), "
    "(103, 99, 11, 2.00, 'paid', TIMESTAMP '2024-02-04 10:00:00'), "
    "(104, NULL, 10, 3.00, 'paid', TIMESTAMP '2024-02-05 10:00:00'), "
    "(105, 3, 11, 4.00, 'paid', TIMESTAMP '2024-02-06 10:00:00')",
]


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def data_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    if request.param == "duckdb":
        path = tmp_path_factory.mktemp("checks") / "data.duckdb"
        with duckdb.connect(str(path)) as con:
            for statement in DATA:
                con.execute(statement)
        yield f"duckdb:///{path}"
        return
    name = f"semantic_checks_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{POSTGRES}/postgres", autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE DATABASE {name}")
        try:
            with psycopg.connect(f"{POSTGRES}/{name}", autocommit=True) as con:
                for statement in DATA:
                    con.execute(statement)
            yield f"{POSTGRES}/{name}"
        finally:
            admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


GOOD = """version: 1
name: checks
entities:
  - name: customer
    table: customers
    key: customer_id
    dimensions:
      - {name: region}
      - {name: signed_up, type: time, storage: date}
  - name: product
    table: products
    key: product_id
    dimensions:
      - {name: category}
  - name: order
    table: orders
    key: order_id
    time: ordered_at
    relationships:
      - {entity: customer, key: customer_id}
      - {entity: product, key: product_id}
    dimensions:
      - {name: status}
      - {name: ordered_at, type: time}
      - {name: amount, type: number}
    metrics:
      - {name: order_count, agg: count}
      - {name: revenue, agg: sum, expr: amount, filter: "status <> 'cancelled'"}
"""


def _checked(tmp_path: Path, text: str, url: str) -> list[Issue]:
    path = tmp_path / "model.yaml"
    path.write_text(text)
    warehouse = SqlWarehouse(url)
    try:
        return check_data(load(path), warehouse)
    finally:
        warehouse.close()


def _at(issues: list[Issue], line: int, level: str = "error") -> list[str]:
    return [i.message for i in issues if i.line == line and i.level == level]


def test_keys_orphans_and_required(tmp_path: Path, data_url: str) -> None:
    issues = _checked(tmp_path, GOOD, data_url)
    # line 4: the customer entity; 20 and 21: the two relationships of order
    assert _at(issues, 4, "warning") == ["entity 'customer': key (customer_id) is not unique in the data: "
                                         "customer_id = 1 is held by 2 rows"]
    [target] = _at(issues, 20)
    assert "customer_id = 1 is held by 2 rows" in target and "count those order rows 2 times" in target
    [required] = _at(issues, 21, "note")
    assert "every one of the 6 order rows has a matching product" in required and "required: true" in required
    assert [m for m in _at(issues, 10, "note") if "key product.product_id is typed string" in m]
    assert {i.level for i in issues if i.line not in (4, 10, 15, 20, 21)} == set()


def test_orphans_counted_and_required_refused(tmp_path: Path, data_url: str) -> None:
    unique = GOOD.replace("table: customers", "sql: \"select distinct on (customer_id) * from customers\"")
    text = unique.replace("{entity: customer, key: customer_id}", "{entity: customer, key: customer_id, required: true}")
    issues = _checked(tmp_path, text, data_url)
    [refused] = _at(issues, 20)
    assert "2 of 6 order rows have a customer_id matching no customer and 1 have none" in refused
    issues = _checked(tmp_path, unique, data_url)
    [counted] = _at(issues, 20, "warning")
    assert "of 6 order rows, 2 have a customer_id matching no customer and 1 have no customer_id" in counted
    assert not [i for i in issues if i.level == "error"]


def test_types_must_fit(tmp_path: Path, data_url: str) -> None:
    text = GOOD.replace("{name: status}", "{name: status, type: time}").replace(
        "{name: amount, type: number}", "{name: amount, type: integer}").replace(
        "{name: category}", "{name: category, type: boolean}")
    issues = _checked(tmp_path, text, data_url)
    assert any("dimension order.status is declared time but column 'status' holds" in m and "CAST(status AS" in m
               for m in _at(issues, 23))
    assert any("order.amount is declared integer" in m and "DECIMAL(10, 2)" in m for m in _at(issues, 25))
    assert any("product.category is declared boolean" in m for m in _at(issues, 14))
    assert not _at(issues, 24)  # a TIMESTAMP fits a time dimension


def test_time_storage_must_fit(tmp_path: Path, data_url: str) -> None:
    """A DATE column read as a naive timestamp would move to the previous day west of UTC (docs/time.md)."""
    text = GOOD.replace("{name: signed_up, type: time, storage: date}", "{name: signed_up, type: time}").replace(
        "{name: ordered_at, type: time}", "{name: ordered_at, type: time, storage: timestamptz}")
    issues = _checked(tmp_path, text, data_url)
    assert [m for m in _at(issues, 9) if "signed_up" in m and "declare `storage: date`" in m]
    assert [m for m in _at(issues, 24) if "ordered_at" in m and "declare `storage: timestamp`" in m]


def semantic(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


BROKEN = """version: 1
name: broken
colour: blue
entities:
  - name: customer
    table: custmers
    key: customer_id
  - name: product
    table: products
    key: product_id
    dimensions:
      - {name: category}
  - name: order
    table: orders
    key: order_id
    relationships:
      - {entity: customer, key: customer_id}
      - {entity: product, key: product_id}
    dimensions:
      - {name: amount, type: number, expr: amont}
    metrics:
      - name: order_count
        agg: count
        agg: count
"""


def test_validate_reports_every_kind_of_problem_in_one_run(tmp_path: Path) -> None:
    """The Done-when line: a misspelt table, a misspelt column, a non-unique many-to-one target, an unknown top-level
    key and a duplicate YAML key, in one run, each with file:line, exit 2."""
    data = tmp_path / "data.duckdb"
    with duckdb.connect(str(data)) as con:
        for statement in DATA:
            con.execute(statement)
        con.execute("INSERT INTO products VALUES (11, 'toys')")  # product 11 twice
    model = tmp_path / "broken.yaml"
    model.write_text(BROKEN)
    run = semantic("validate", str(model), "--warehouse", f"duckdb:///{data}")
    assert run.returncode == 2, run.stdout + run.stderr
    assert "Traceback" not in run.stderr
    lines = run.stderr.splitlines()
    assert lines[0] == "error [BAD_MODEL]: 5 problems in the model:"

    def at(line: int) -> str:
        [found] = [text for text in lines if text.strip().startswith(f"{model}:{line}: ")]
        return found

    assert "unknown key 'colour' in the model (top level)" in at(3)
    assert "table 'custmers' does not exist" in at(5) and "Did you mean 'customers'?" in at(5)
    assert "product's key is not unique" in at(18) and "product_id = 11 is held by 2 rows" in at(18)
    assert "column 'amont' does not exist in table 'orders'" in at(20) and "Did you mean 'amount'?" in at(20)
    assert "key 'agg' is given twice" in at(24)
    assert "entity 'product'" in run.stderr and re.search(r"broken.yaml:8: warning: .*product_id = 11", run.stderr)


def test_offline_and_unreachable(tmp_path: Path) -> None:
    model = tmp_path / "model.yaml"
    model.write_text(GOOD)
    offline = semantic("validate", str(model), "--offline")
    assert offline.returncode == 0 and "offline" in offline.stdout
    missing = semantic("validate", str(model), "--warehouse", f"duckdb:///{tmp_path / 'none.duckdb'}")
    assert missing.returncode == 0 and "data not checked" in missing.stdout and "does not exist" in missing.stdout


@pytest.mark.parametrize(("text", "line", "words"), [
    ("version: 2\nname: x\nentities: []\n", 1, "unknown model format version 2"),
    ("version: 1\nname: x\nentites: []\n", 3, "unknown key 'entites' in the model (top level)"),
    ("version: 1\nname: x\nentities:\n  - name: a\n    table: t\n    key: id\n    table: u\n", 7,
     "key 'table' is given twice in one mapping (first at line 5)"),
    ("version: 1\nentities:\n  - {name: a, table: t, key: id, dimensions: [{name: d, name: e}]}\n", 3,
     "key 'name' is given twice"),
    ("", 1, "the model file is empty"),
    ("# only a comment\n", 1, "the model file is empty"),
])
def test_loader_strictness(tmp_path: Path, text: str, line: int, words: str) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(text)
    with pytest.raises(ModelError) as raised:
        load(path)
    assert any(i.line == line and words in i.message for i in raised.value.issues), raised.value.message
    _, issues = read(path)
    assert issues == list(raised.value.issues)


# `semantic validate` reads what `query` and `compile` read: a dbt manifest's YAML and an OSI model, over DATA.
DBT = """semantic_models:
  - name: orders
    node_relation: {alias: orders}
    defaults: {agg_time_dimension: ordered_at}
    entities:
      - {name: order, type: primary, expr: order_id}
      - {name: customer, type: foreign, expr: customer_id}
    dimensions:
      - {name: ordered_at, type: time, type_params: {time_granularity: day}}
      - {name: status, type: categorical}
    measures:
      - {name: order_total, agg: sum, expr: amont}
  - name: customers
    node_relation: {alias: custmers}
    entities:
      - {name: customer, type: primary, expr: customer_id}
    dimensions:
      - {name: region, type: categorical}
metrics:
  - {name: revenue, type: simple, type_params: {measure: order_total}}
  - {name: signups, type: conversion, type_params: {}}
"""
OSI = """version: "0.1"
name: shop
datasets:
  - name: customers
    source: customers
    primary_key: [customer_id]
    fields:
      - {name: customer_id, expression: customer_id, dimension: {}}
      - {name: region, expression: region, dimension: {}}
  - name: orders
    source: orders
    primary_key: [order_id]
    fields:
      - {name: order_id, expression: order_id, dimension: {}}
      - {name: customer_id, expression: customer_id, dimension: {}}
      - {name: amount, expression: amont}
relationships:
  - {name: orders_customer, from: orders, to: customers, from_columns: [customer_id], to_columns: [customer_id]}
metrics:
  - {name: revenue, expression: SUM(orders.amount)}
"""


def _problems(stderr: str, path: Path) -> dict[str, str]:
    """Each reported line after the heading, by where it says it is (`file:line`, or `file` alone)."""
    found = {}
    for text in stderr.splitlines()[1:]:
        where, _, message = text.strip().partition(": ")
        assert where.startswith(str(path)), text
        found[where.removeprefix(str(path))] = found.get(where.removeprefix(str(path)), "") + message + "\n"
    return found


def test_validate_reads_a_dbt_manifest_and_reports_every_problem_at_its_line(data_url: str, tmp_path: Path) -> None:
    """No counterpart for a conversion metric (line 21), a misspelt column (line 12, and the metric over it, line
    20) and a misspelt table (its semantic model, line 13), in one run; exit 2."""
    manifest = tmp_path / "semantic_models.yaml"
    manifest.write_text(DBT)
    run = semantic("validate", str(manifest), "--warehouse", data_url)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stdout + run.stderr
    assert run.stderr.splitlines()[0] == "error [BAD_MODEL]: 4 problems in the model:"
    at = _problems(run.stderr, manifest)
    assert "conversion metrics" in at[":21"]
    assert "column 'amont' does not exist in table 'orders'" in at[":12"] and "Did you mean 'amount'?" in at[":12"]
    assert "column 'amont'" in at[":20"]
    assert "table 'custmers' does not exist" in at[":13"]
    # The table spelt right: customer 1 is held by 2 rows, so every order of theirs would count twice.
    manifest.write_text(DBT.replace("custmers", "customers").replace("amont", "amount").replace(
        "  - {name: signups, type: conversion, type_params: {}}\n", ""))
    run = semantic("validate", str(manifest), "--warehouse", data_url)
    assert run.returncode == 2, run.stdout + run.stderr
    at = _problems(run.stderr, manifest)
    assert "customers's key is not unique" in at[":7"] and "customer_id = 1 is held by 2 rows" in at[":7"]
    offline = semantic("validate", str(manifest), "--offline")
    assert offline.returncode == 0 and "dbt: ok (2 entities" in offline.stdout and "offline" in offline.stdout


def test_validate_reads_a_dbt_semantic_manifest(duckdb_path: Path) -> None:
    manifest = ROOT / "tests" / "dbt" / "semantic_manifest.json"
    run = semantic("validate", str(manifest), "--warehouse", f"duckdb:///{duckdb_path}")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "dbt: ok (2 entities, 8 dimensions, 10 metrics" in run.stdout and "data checked on" in run.stdout


def test_validate_reads_an_osi_model(data_url: str, tmp_path: Path) -> None:
    """The data checks on an OSI model, at the lines of its items: a misspelt column (line 16) and customer 1 held
    by 2 rows (the relationship, line 18); what OSI refuses while mapping is reported with its OSI code and line,
    every refusal in one run."""
    model = tmp_path / "shop.osi.yaml"
    model.write_text(OSI)
    run = semantic("validate", str(model), "--warehouse", data_url)
    assert run.returncode == 2 and "Traceback" not in run.stderr, run.stdout + run.stderr
    assert run.stderr.splitlines()[0] == "error [BAD_MODEL]: 2 problems in the model:"
    problems = _problems(run.stderr, model)
    assert "dimension orders.amount: column 'amont' does not exist in table 'orders'" in problems[":16"]
    assert "relationship orders -> customers: customers's key is not unique" in problems[":18"]
    assert "customer_id = 1 is held by 2 rows" in problems[":18"]
    model.write_text(OSI.replace("amont", "amount"))
    offline = semantic("validate", str(model), "--offline")
    assert offline.returncode == 0 and "shop: ok (2 entities" in offline.stdout, offline.stdout + offline.stderr
    model.write_text(OSI.replace("amont", "amount").replace("SUM(orders.amount)", "orders.amount")
                     .replace("    primary_key: [order_id]\n", "    primary_key: [order_id]\n    grain: day\n")
                     .replace("{name: order_id, expression: order_id,", "{name: order_id, expression: MAX(order_id),")
                     + "  - {name: revenue, expression: COUNT(orders.order_id)}\n")
    refused = semantic("validate", str(model), "--warehouse", data_url)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.splitlines()[0] == "error [BAD_MODEL]: 5 problems in the model:", refused.stderr
    problems = _problems(refused.stderr, model)
    assert problems[":13"].startswith("[E_DEFERRED_KEY_REJECTED] dataset 'orders': key 'grain'"), problems
    assert problems[":15"].startswith("[E_AGGREGATE_IN_FIELD] field orders.order_id"), problems
    assert problems[":21"].startswith("[E_NAME_NOT_FOUND] metric 'revenue'"), problems
    assert problems[":22"].startswith("[E_DUPLICATE_NAME] metric 'revenue' is declared twice"), problems
    assert "customer_id = 1 is held by 2 rows" in problems[":19"]  # the data checks still ran
    first = semantic("compile", str(model), "--metric", "revenue")  # a query sees the first, with its code
    assert first.returncode == 2 and "error [E_DEFERRED_KEY_REJECTED]: dataset 'orders': key" in first.stderr
