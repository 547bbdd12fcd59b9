"""The optional-chain shapes of bench/chains.py keep every item row: on hand-made data with items of a missing order,
items of no order, orders of a missing customer and of none, each gives the LEFT JOIN chain's answer (computed by
hand below), and with the orphans removed, the analyst's inner-join answer."""

from __future__ import annotations

import duckdb
import pytest

from bench.chains import SHAPES


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE customers AS SELECT * FROM (VALUES (1, 'EU'), (2, 'US')) v(customer_id, region)")
    con.execute("CREATE TABLE orders AS SELECT * FROM (VALUES (10, 1), (11, 2), (12, 3), (13, NULL)) "
                "v(order_id, customer_id)")
    con.execute("CREATE TABLE order_items AS SELECT * FROM (VALUES (100, 10, 1), (101, 10, 2), (102, 11, 4), "
                "(103, 12, 8), (104, 13, 16), (105, 99, 32), (106, NULL, 64)) v(order_item_id, order_id, quantity)")
    return con


def answer(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str | None, int]:
    return {region: int(units) for region, units in con.sql(sql).fetchall()}


@pytest.mark.parametrize("shape", SHAPES)
def test_every_item_counts_once(con: duckdb.DuckDBPyConnection, shape: str) -> None:
    # EU: items 100, 101; US: 102; NULL: orders of customer 3 and of none (103, 104), order 99 missing (105), no
    # order (106)
    assert answer(con, SHAPES[shape]) == {"EU": 3, "US": 4, None: 8 + 16 + 32 + 64}


@pytest.mark.parametrize("shape", SHAPES)
def test_without_orphans(con: duckdb.DuckDBPyConnection, shape: str) -> None:
    con.execute("DELETE FROM order_items WHERE order_item_id IN (105, 106)")
    assert answer(con, SHAPES[shape]) == {"EU": 3, "US": 4, None: 8 + 16}
