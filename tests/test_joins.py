"""Join kinds: LEFT by default so no fact row is lost; INNER only where no row can be lost."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb

from semantic.execute import SqlWarehouse
from semantic.loader import load
from semantic.plan.planner import plan
from semantic.query import SemanticQuery
from semantic.service import Service

MODEL = """
version: 1
name: chain
entities:
  - name: item
    table: items
    key: item_id
    relationships: [{entity: order, key: order_id, required: true}]
    metrics: [{name: units, agg: sum, expr: quantity}]
  - name: order
    table: orders
    key: order_id
    relationships: [{entity: customer, key: customer_id}]
  - name: customer
    table: customers
    key: customer_id
    relationships: [{entity: country, key: country_code, required: true}]
    dimensions: [{name: segment}]
  - name: country
    table: countries
    key: country_code
    dimensions: [{name: continent}]
"""


def joins(tmp_path: Path, dimension: str) -> dict[str, str]:
    path = tmp_path / "chain.yaml"
    path.write_text(MODEL)
    (aggregate,) = plan(load(path), SemanticQuery(("item.units",), (dimension,))).aggregates
    return {join.alias: join.kind for join in aggregate.joins}


def test_required_hops_from_the_base_are_inner(tmp_path: Path) -> None:
    assert joins(tmp_path, "customer.segment") == {"order": "inner", "customer": "left"}


def test_a_required_hop_after_a_left_one_stays_left(tmp_path: Path) -> None:
    """An order whose customer is missing has a NULL country code: an inner join would drop its items."""
    assert joins(tmp_path, "country.continent") == {"order": "inner", "customer": "left", "country": "left"}


# -- a join the entity's own SQL already makes ----------------------------------------------------------------------

REPEAT_MODEL = """
version: 1
name: repeat
entities:
  - name: dated_item          # items with their order's time: the SQL joins orders already (inner)
    sql: "SELECT i.item_id, i.order_id, i.quantity, o.ordered_at FROM items AS i JOIN orders AS o ON o.order_id = i.order_id"
    key: item_id
    time: ordered_at
    relationships: [{entity: order, key: order_id}]
    dimensions: [{name: ordered_at, type: time}]
    metrics: [{name: units, agg: sum, expr: quantity}]
  - name: kept_item           # the same with a LEFT JOIN: items without an order are kept, under NULL
    sql: "SELECT i.item_id, i.order_id, i.quantity, o.ordered_at FROM items AS i LEFT JOIN orders AS o ON i.order_id = o.order_id"
    key: item_id
    relationships: [{entity: order, key: order_id}]
    metrics: [{name: units, agg: sum, expr: quantity}]
  - name: grouped_item        # per order: the SQL's join is below a GROUP BY, so it is not the rows' own join
    sql: "SELECT i.order_id AS item_id, i.order_id, SUM(i.quantity) AS quantity FROM items AS i JOIN orders AS o ON o.order_id = i.order_id GROUP BY 1, 2"
    key: item_id
    relationships: [{entity: order, key: order_id}]
    metrics: [{name: units, agg: sum, expr: quantity}]
  - name: order
    table: orders
    key: order_id
    relationships: [{entity: customer, key: customer_id}]
    dimensions: [{name: status}, {name: ordered_at, type: time}]
  - name: customer
    table: customers
    key: customer_id
    dimensions: [{name: segment}]
"""


def _repeat_service(tmp_path: Path) -> Service:
    path = tmp_path / "repeat.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE customers (customer_id INTEGER, segment TEXT)")
        con.execute("INSERT INTO customers VALUES (1, 'smb'), (2, 'enterprise')")
        con.execute("CREATE TABLE orders (order_id INTEGER, customer_id INTEGER, status TEXT, ordered_at TIMESTAMP)")
        con.execute("INSERT INTO orders VALUES (10, 1, 'shipped', '2024-01-01'), (11, 2, 'cancelled', '2024-01-02'),"
                    " (12, 9, 'shipped', '2024-01-03'), (13, NULL, NULL, '2024-01-04')")
        con.execute("CREATE TABLE items (item_id INTEGER, order_id INTEGER, quantity INTEGER)")
        # items 6 (order 99 missing) and 7 (no order) have no order row
        con.execute("INSERT INTO items VALUES (1, 10, 1), (2, 10, 2), (3, 11, 4), (4, 12, 8), (5, 13, 16),"
                    " (6, 99, 32), (7, NULL, 64)")
    (tmp_path / "repeat.yaml").write_text(REPEAT_MODEL)
    return Service(load(tmp_path / "repeat.yaml"), SqlWarehouse(f"duckdb:///{path}"))


def _answer(service: Service, metric: str, dimension: str) -> tuple[dict[Any, Any], str]:
    result = service.query(SemanticQuery((metric,), (dimension,)))
    return dict(result.rows), result.sql  # type: ignore[arg-type]


def test_a_join_inside_the_entity_sql_is_not_repeated(tmp_path: Path) -> None:
    service = _repeat_service(tmp_path)
    by_status, sql = _answer(service, "dated_item.units", "order.status")
    # by hand: the SQL's inner join keeps items 1-5; order 13 has no status
    assert by_status == {"shipped": 1 + 2 + 8, "cancelled": 4, None: 16}
    assert sql.lower().count("orders") == 1
    by_segment, sql = _answer(service, "dated_item.units", "customer.segment")
    assert by_segment == {"smb": 3, "enterprise": 4, None: 8 + 16}  # order 12's customer 9 is missing
    assert sql.lower().count("orders") == 1 and sql.lower().count("customers") == 1


def test_a_left_join_inside_the_entity_sql_keeps_its_rows(tmp_path: Path) -> None:
    by_status, sql = _answer(_repeat_service(tmp_path), "kept_item.units", "order.status")
    assert by_status == {"shipped": 11, "cancelled": 4, None: 16 + 32 + 64}
    assert sql.lower().count("orders") == 1


def test_a_join_below_a_group_by_is_joined_again(tmp_path: Path) -> None:
    by_status, sql = _answer(_repeat_service(tmp_path), "grouped_item.units", "order.status")
    assert by_status == {"shipped": 11, "cancelled": 4, None: 16}
    assert sql.lower().count("orders") == 2
