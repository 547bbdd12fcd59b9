"""Tests for the seeded e-commerce example dataset (examples/shop/generate.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest

import examples.shop.generate as shop
from examples.shop.generate import VERSION, ensure, generate

ORDERS = 2_000
KEYS: dict[str, str] = {
    "customers": "customer_id",
    "products": "product_id",
    "orders": "order_id",
    "order_items": "order_item_id",
    "page_views": "page_view_id",
    "customer_daily_stats": "customer_id, event_timestamp, created_timestamp",
}


@pytest.fixture(scope="module")
def db_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("shop") / "shop.duckdb", orders=ORDERS, seed=7)


@pytest.fixture()
def con(db_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with duckdb.connect(str(db_path), read_only=True) as connection:
        yield connection


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> object:
    return con.execute(sql).fetchone()[0]


def _rows(path: Path, table: str) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as connection:
        return connection.execute(f"SELECT * FROM {table} ORDER BY {KEYS[table]}").fetchall()


def test_same_seed_gives_identical_data(db_path: Path, tmp_path: Path) -> None:
    again = generate(tmp_path / "again.duckdb", orders=ORDERS, seed=7)
    for table in KEYS:
        assert _rows(db_path, table) == _rows(again, table), table


def test_different_seed_gives_different_data(db_path: Path, tmp_path: Path) -> None:
    other = generate(tmp_path / "other.duckdb", orders=ORDERS, seed=8)
    assert _rows(db_path, "orders") != _rows(other, "orders")


def test_row_counts(con: duckdb.DuckDBPyConnection) -> None:
    assert _scalar(con, "SELECT count(*) FROM customers") == max(100, ORDERS // 10)
    assert _scalar(con, "SELECT count(*) FROM products") == 500
    assert _scalar(con, "SELECT count(*) FROM orders") == ORDERS
    assert ORDERS * 1.5 < _scalar(con, "SELECT count(*) FROM order_items") < ORDERS * 2.3
    assert ORDERS * 2.5 <= _scalar(con, "SELECT count(*) FROM page_views") <= ORDERS * 3.5
    per_order = "SELECT min(n), max(n) FROM (SELECT count(*) AS n FROM order_items GROUP BY order_id)"
    assert con.execute(per_order).fetchone() == (1, 4)
    assert _scalar(con, "SELECT count(*) FROM customer_daily_stats") > 0


def test_amount_equals_sum_of_items(con: duckdb.DuckDBPyConnection) -> None:
    mismatches = _scalar(con, """
        SELECT count(*) FROM orders o
        LEFT JOIN (SELECT order_id, round(sum(quantity * unit_price), 2) AS total FROM order_items GROUP BY order_id) i
          USING (order_id)
        WHERE i.total IS NULL OR abs(o.amount - i.total) > 1e-6""")
    assert mismatches == 0


def test_orphan_orders_exist(con: duckdb.DuckDBPyConnection) -> None:
    orphans = _scalar(con, "SELECT count(*) FROM orders o ANTI JOIN customers c USING (customer_id)")
    assert 1 <= orphans <= ORDERS * 0.02


def test_null_regions_exist(con: duckdb.DuckDBPyConnection) -> None:
    assert _scalar(con, "SELECT count(*) FROM customers WHERE region IS NULL") > 0
    assert _scalar(con, "SELECT count(*) FROM page_views WHERE customer_id IS NULL") > 0


def test_timestamps_in_range(con: duckdb.DuckDBPyConnection) -> None:
    lo, hi = "TIMESTAMP '2023-01-01 00:00:00'", "TIMESTAMP '2024-12-31 23:59:59'"
    for table, column in [("orders", "ordered_at"), ("customers", "signed_up_at"), ("page_views", "viewed_at")]:
        outside = f"SELECT count(*) FROM {table} WHERE {column} NOT BETWEEN {lo} AND {hi} OR {column} IS NULL"
        assert _scalar(con, outside) == 0, table
    late = "SELECT count(*) FROM orders o JOIN customers c USING (customer_id) WHERE o.ordered_at <= c.signed_up_at"
    assert _scalar(con, late) == 0


def test_edge_timestamps(con: duckdb.DuckDBPyConnection) -> None:
    assert _scalar(con, "SELECT count(*) FROM orders WHERE CAST(ordered_at AS DATE) = DATE '2024-02-29'") > 0
    assert _scalar(con, "SELECT count(*) FROM orders WHERE ordered_at = date_trunc('day', ordered_at)") > 0
    month_end = "CAST(last_day(ordered_at) AS TIMESTAMP) + INTERVAL '23:59:59'"
    assert _scalar(con, f"SELECT count(*) FROM orders WHERE ordered_at = {month_end}") > 0


def test_daily_stats_and_restatements(con: duckdb.DuckDBPyConnection) -> None:
    delay = con.execute("SELECT min(created_timestamp - event_timestamp) FROM customer_daily_stats").fetchone()[0]
    assert delay.total_seconds() >= 3_600
    not_midnight = "SELECT count(*) FROM customer_daily_stats WHERE event_timestamp <> date_trunc('day', event_timestamp)"
    assert _scalar(con, not_midnight) == 0
    restated = _scalar(con, """
        SELECT count(*) FROM (SELECT customer_id, event_timestamp FROM customer_daily_stats
                              GROUP BY ALL HAVING count(DISTINCT orders_7d) > 1)""")
    assert restated > 0
    # The first-published value of every row matches a recomputation from orders.
    wrong = _scalar(con, """
        WITH first AS (
            SELECT * FROM customer_daily_stats
            QUALIFY row_number() OVER (PARTITION BY customer_id, event_timestamp ORDER BY created_timestamp) = 1)
        SELECT count(*) FROM first f WHERE f.orders_7d <> (
            SELECT count(*) FROM orders o WHERE o.customer_id = f.customer_id AND o.status <> 'cancelled'
              AND o.ordered_at >= f.event_timestamp - INTERVAL 6 DAY
              AND o.ordered_at < f.event_timestamp + INTERVAL 1 DAY)""")
    assert wrong == 0


def test_ensure_builds_once(tmp_path: Path) -> None:
    path = tmp_path / "ensured.duckdb"
    assert ensure(path, orders=500) == path and path.exists()
    mtime = path.stat().st_mtime_ns
    ensure(path, orders=500)
    assert path.stat().st_mtime_ns == mtime
    assert [p.name for p in tmp_path.iterdir()] == ["ensured.duckdb"]  # no temp files left behind


def test_failed_build_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def crash(con: duckdb.DuckDBPyConnection, n_orders: int, seed: int) -> None:
        con.execute("CREATE TABLE half_built AS SELECT 1 AS x")
        raise RuntimeError("boom")

    monkeypatch.setattr(shop, "_build", crash)
    with pytest.raises(RuntimeError, match="boom"):
        ensure(tmp_path / "shop.duckdb", orders=500)
    assert list(tmp_path.iterdir()) == []


def test_ensure_rebuilds_files_of_an_older_generator(tmp_path: Path) -> None:
    path = tmp_path / "shop.duckdb"
    ensure(path, orders=300)
    built = path.stat().st_mtime_ns
    assert ensure(path, orders=300) == path and path.stat().st_mtime_ns == built  # current: kept
    with duckdb.connect(str(path)) as con:
        con.execute("DROP TABLE generator_info")  # as a file from before versions looks
    ensure(path, orders=300)
    with duckdb.connect(str(path), read_only=True) as con:
        assert con.execute("SELECT version, orders FROM generator_info").fetchone() == (VERSION, 300)
