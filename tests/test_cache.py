"""The result cache: one warehouse query for concurrent identical requests, never shared across scopes."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from examples.shop.generate import generate
from semantic.cache import ResultCache, result_key
from semantic.execute import SqlWarehouse, Table
from semantic.loader import load
from semantic.query import SemanticQuery
from semantic.service import Service

ROOT = Path(__file__).resolve().parents[1]


def test_concurrent_misses_compute_once() -> None:
    cache: ResultCache[int] = ResultCache()
    calls = []
    gate = threading.Event()

    def compute() -> int:
        calls.append(1)
        gate.wait(5)
        return 42

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_run("k", compute).value))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join()
    assert results == [42] * 8 and len(calls) == 1


def test_a_failure_is_not_cached() -> None:
    cache: ResultCache[int] = ResultCache()

    def fail() -> int:
        raise RuntimeError("warehouse down")

    with pytest.raises(RuntimeError):
        cache.get_or_run("k", fail)
    assert cache.get_or_run("k", lambda: 7).value == 7


def test_an_answer_not_stored_is_still_computed_once_in_flight() -> None:
    cache: ResultCache[int] = ResultCache()
    calls = []
    gate = threading.Event()

    def compute() -> int:
        calls.append(1)
        gate.wait(5)
        return len(calls)

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get_or_run("k", compute, store=False).value))
               for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.2)
    gate.set()
    for thread in threads:
        thread.join()
    assert results == [1] * 4  # one computation for the four concurrent callers
    assert cache.peek("k", count=False) is None  # and nothing kept
    assert cache.get_or_run("k", compute, store=False).value == 2


def test_keys_separate_scopes_and_warehouses() -> None:
    base = result_key("SELECT 1", "duckdb:///a", "tenant-a")
    assert base == result_key("SELECT 1", "duckdb:///a", "tenant-a")
    assert base != result_key("SELECT 1", "duckdb:///a", "tenant-b")
    assert base != result_key("SELECT 1", "duckdb:///b", "tenant-a")
    assert result_key("SELECT 1", "ab", "c") != result_key("SELECT 1", "a", "bc")


class CountingWarehouse:
    """A real DuckDB warehouse that counts the statements it runs."""

    def __init__(self, url: str) -> None:
        self.inner = SqlWarehouse(url, read_only=True)
        self.identity, self.dialect = self.inner.identity, self.inner.dialect
        self.statements: list[str] = []

    def run(self, sql: str) -> Table:
        self.statements.append(sql)
        return self.inner.run(sql)

    def arrow(self, sql: str):  # type: ignore[no-untyped-def]
        return self.inner.arrow(sql)

    def arrow_with(self, sql: str, tables):  # type: ignore[no-untyped-def]
        return self.inner.arrow_with(sql, tables)

    def close(self) -> None:
        self.inner.close()


def test_consumers_share_results_whatever_the_item_order(tmp_path: Path) -> None:
    path = generate(tmp_path / "shop.duckdb", orders=500)
    warehouse = CountingWarehouse(f"duckdb:///{path}")
    service = Service(load(ROOT / "examples" / "shop"), warehouse)
    first = service.query(SemanticQuery(("order.revenue", "order.order_count"), ("customer.region",)))
    second = service.query(SemanticQuery(("order.order_count", "order.revenue"), ("customer.region",)))
    assert len(warehouse.statements) == 1 and second.cache_hit and not first.cache_hit
    assert [c.name for c in second.columns] == ["customer.region", "order.order_count", "order.revenue"]
    assert sorted(r[1:] for r in second.rows) == sorted((r[2], r[1]) for r in first.rows)
    service.query(SemanticQuery(("order.revenue",), ("customer.region",)), scope="tenant-b")
    assert len(warehouse.statements) == 2
