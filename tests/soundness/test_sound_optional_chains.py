"""Optional chains written as an inner chain with the orphans gated in (`semantic.sql.joins.gate_orphans`) keep
every fact row and count it once, whatever the data holds when the statement runs.

Rows (every expected number below is summed by hand from them):

    customers  id region    orders  id customer status ordered_at    order_items  id  order quantity
               1  EU                10  1        paid   2024-01-05                100 10     1
               2  US                11  2        paid   2024-02-10                101 10     2
               3  NULL              12  3        open   2024-02-11                102 11     4
                                    13  4        paid   2024-03-01                103 12     8
                                    14  NULL     open   2024-03-02                104 13    16
                                                                                  105 14    32
                                                                                  106 99    64
                                                                                  107 NULL 128

There is no customer 4 and no order 99. `line` reads every item; `kept` the items 100-105, whose orders all exist.
Units by region: EU 1+2 = 3, US 4, NULL 8 (customer 3's region) + 16 + 32 (orders without a customer) + 64 + 128
(items without an order) = 248; `kept`: EU 3, US 4, NULL 8+16+32 = 56.

Each query runs three ways: as the service writes it (on DuckDB with the integrity guard, which gates `kept`'s join
to orders, checked here), and with every LEFT join of the plan gated, as a stale verdict would have it, once over
`line` (orphans present: the in-statement count must let them in) and once over `kept`. Last, on DuckDB, an item
of a missing order arrives after the check: the cached verdict still writes the inner chain, and the item counts.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import pytest

from semantic.execute import SqlWarehouse
from semantic.integrity import KeyGuard
from semantic.loader import load
from semantic.plan.planner import plan
from semantic.query import Filter, SemanticQuery
from semantic.service import Service
from semantic.sql.build import build
from semantic.sql.render import render

MODEL = """
version: 1
name: chains
entities:
  - name: customer
    table: customers
    key: customer_id
    dimensions:
      - {name: region}
  - name: order
    table: orders
    key: order_id
    time: ordered_at
    relationships:
      - {entity: customer, key: customer_id}
    dimensions:
      - {name: status}
      - {name: ordered_at, type: time}
  - name: line
    table: order_items
    key: order_item_id
    time: order.ordered_at
    relationships:
      - {entity: order, key: order_id}
    dimensions:
      - {name: quantity, type: number}
    metrics:
      - {name: units, agg: sum, expr: quantity}
      - {name: orders, agg: count_distinct, expr: order_id}
      - {name: median_quantity, agg: median, expr: quantity}
  - name: kept
    table: kept_items
    key: order_item_id
    relationships:
      - {entity: order, key: order_id}
    metrics:
      - {name: units, agg: sum, expr: quantity}
"""

ITEMS = [(100, 10, 1), (101, 10, 2), (102, 11, 4), (103, 12, 8), (104, 13, 16), (105, 14, 32), (106, 99, 64),
         (107, None, 128)]
ITEM_COLUMNS = {"order_item_id": "INTEGER", "order_id": "INTEGER", "quantity": "INTEGER"}
TABLES = {
    "customers": ({"customer_id": "INTEGER", "region": "VARCHAR"}, [(1, "EU"), (2, "US"), (3, None)]),
    "orders": ({"order_id": "INTEGER", "customer_id": "INTEGER", "status": "VARCHAR", "ordered_at": "TIMESTAMP"},
               [(10, 1, "paid", "2024-01-05 10:00:00"), (11, 2, "paid", "2024-02-10 10:00:00"),
                (12, 3, "open", "2024-02-11 10:00:00"), (13, 4, "paid", "2024-03-01 10:00:00"),
                (14, None, "open", "2024-03-02 10:00:00")]),
    "order_items": (ITEM_COLUMNS, ITEMS),
    "kept_items": (ITEM_COLUMNS, ITEMS[:6]),
}

M1, M2, M3 = date(2024, 1, 1), date(2024, 2, 1), date(2024, 3, 1)
CASES: list[tuple[str, tuple[str, ...], tuple[str, ...], str | None, dict[Any, Any]]] = [
    ("by region", ("line.units",), ("customer.region",), None, {"EU": 3, "US": 4, None: 248}),
    ("a filter that drops orphans", ("line.units",), ("customer.region",), "customer.region = 'EU'", {"EU": 3}),
    ("a filter that keeps them", ("line.units",), ("customer.region",), "customer.region is null", {None: 248}),
    ("a filter on the fact's own column", ("line.units",), ("customer.region",), "line.quantity > 3",
     {"US": 4, None: 248}),
    ("an or over a joined column", ("line.units",), ("customer.region",),
     "order.status = 'paid' or order.status is null", {"EU": 3, "US": 4, None: 16 + 64 + 128}),
    ("by the first hop's dimension", ("line.units",), ("order.status",), None,
     {"paid": 1 + 2 + 4 + 16, "open": 8 + 32, None: 64 + 128}),
    ("median and distinct count (not re-aggregable)", ("line.median_quantity", "line.orders"),
     ("customer.region",), None, {"EU": (1.5, 1), "US": (4.0, 1), None: (32.0, 4)}),
    ("by the related time", ("line.units",), ("time:month",), None, {M1: 3, M2: 12, M3: 48, None: 192}),
    ("a time filter", ("line.units",), ("time:month",), "time:month >= '2024-02-01'", {M2: 12, M3: 48}),
    ("no orphans on the first hop", ("kept.units",), ("customer.region",), None, {"EU": 3, "US": 4, None: 56}),
]


def _query(metrics: tuple[str, ...], dims: tuple[str, ...], where: str | None) -> SemanticQuery:
    return SemanticQuery(metrics, dims, Filter.parse(where) if where else None)


def _answer(rows: tuple[tuple[Any, ...], ...], width: int) -> dict[Any, Any]:
    found: dict[Any, Any] = {}
    for row in rows:
        values = tuple(float(v) if isinstance(v, float) else v for v in row[width:])
        assert row[0] not in found, f"group {row[0]!r} came back twice"
        found[row[0]] = values[0] if len(values) == 1 else values
    return found


@pytest.mark.parametrize(("name", "metrics", "dims", "where", "expected"), CASES, ids=[c[0] for c in CASES])
def test_every_row_once(service: Service, name: str, metrics: tuple[str, ...], dims: tuple[str, ...],
                        where: str | None, expected: dict[Any, Any]) -> None:
    assert service.warehouse is not None
    guarded = Service(service.model, service.warehouse, integrity=KeyGuard(service.warehouse))
    query = _query(metrics, dims, where)
    assert _answer(guarded.query(query).rows, len(dims)) == expected
    the_plan = plan(service.model, query.canonical())
    every_left = frozenset((a.entity, j.alias) for a in the_plan.aggregates for j in a.joins if j.kind == "left")
    sql = render(build(the_plan, service.model, every_left), service.warehouse.dialect)
    assert _answer(service.warehouse.run(sql).rows, len(dims)) == expected


def test_the_guard_gates_only_joins_that_found_every_row(service: Service) -> None:
    assert service.warehouse is not None
    guard = KeyGuard(service.warehouse)
    kept = plan(service.model, _query(("kept.units",), ("customer.region",), None))
    line = plan(service.model, _query(("line.units",), ("customer.region",), None))
    # Every kept item has its order; orders of customer 4 and of none have no customer; items 106 and 107 no order.
    assert guard.matched(service.model, kept) == {("kept", "order")}
    assert guard.matched(service.model, line) == frozenset()
    compiled = Service(service.model, service.warehouse, integrity=guard).compile(
        _query(("kept.units",), ("customer.region",), None))
    gated = service.warehouse.dialect == "duckdb"  # where the inner chain is faster (GATED_DIALECTS)
    assert compiled.matched == ({("kept", "order")} if gated else frozenset())
    assert ('"kept_matched"' in compiled.sql) is gated


def test_an_orphan_arriving_after_the_check_still_counts(tmp_path: Path) -> None:
    """The verdict is kept `max_age`; an item of a missing order added meanwhile is counted by the statement's own
    check, and after the re-check the join is LEFT again (DuckDB, where the inner chain is written)."""
    path = tmp_path / "chains.duckdb"
    with duckdb.connect(str(path)) as con:
        for name, (columns, rows) in TABLES.items():
            con.execute(f"CREATE TABLE {name} ({', '.join(f'{c} {t}' for c, t in columns.items())})")
            con.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * len(columns))})", rows)
    (tmp_path / "model.yaml").write_text(MODEL)
    warehouse = SqlWarehouse(f"duckdb:///{path}", read_only=False)
    now = [0.0]
    guarded = Service(load(tmp_path / "model.yaml"), warehouse,
                      integrity=KeyGuard(warehouse, max_age=60, clock=lambda: now[0]))
    query = _query(("kept.units",), ("customer.region",), None)
    try:
        assert _answer(guarded.query(query).rows, 1) == {"EU": 3, "US": 4, None: 56}
        with warehouse.engine.begin() as writer:
            writer.exec_driver_sql("INSERT INTO kept_items VALUES (108, 99, 256)")
        guarded.clear_cache()
        assert guarded.compile(query).matched == {("kept", "order")}  # within max_age the verdict stands
        assert _answer(guarded.query(query).rows, 1) == {"EU": 3, "US": 4, None: 56 + 256}
        now[0] = 61.0
        guarded.clear_cache()
        assert guarded.compile(query).matched == frozenset()
        assert _answer(guarded.query(query).rows, 1) == {"EU": 3, "US": 4, None: 56 + 256}
    finally:
        warehouse.close()
