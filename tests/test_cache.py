"""The result cache: one computation for concurrent identical requests (threads and processes), never shared
across scopes, stores bounded by bytes, Redis shared and survivable."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from prometheus_client import REGISTRY

from examples.shop.generate import generate
from semantic.cache import ResultCache, Source, decode, encode, result_key
from semantic.execute import SqlWarehouse, Table
from semantic.loader import load
from semantic.query import SemanticQuery
from semantic.service import Service
from semantic.store import MemoryStore, RedisStore, open_store
from tests.local_servers import start_redis
from tests.serving import free_port

ROOT = Path(__file__).resolve().parents[1]
REDIS_DB = 9  # the tests' own database number on the shared server; each test has its own key prefix


def table(value: int, size: int = 1) -> pa.Table:
    return pa.table({"v": [value] * size})


def metric(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def redis_url() -> Iterator[str]:
    url = f"redis://127.0.0.1:6379/{REDIS_DB}?prefix=test-{uuid.uuid4().hex[:8]}:"
    yield url
    store = open_store(url)
    store.clear()  # only this test's prefix
    store.close()


# -- single flight and failures ----------------------------------------------------------------------------------

def test_concurrent_misses_compute_once() -> None:
    cache = ResultCache()
    calls = []
    gate = threading.Event()

    def compute() -> pa.Table:
        calls.append(1)
        gate.wait(5)
        return table(42)

    sources: list[Source] = []
    threads = [threading.Thread(target=lambda: sources.append(cache.get_or_run("k", compute).source))
               for _ in range(8)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # time for every thread to reach the cache, even on a loaded machine
    gate.set()
    for thread in threads:
        thread.join()
    assert len(calls) == 1
    assert sorted(s.value for s in sources) == ["INFLIGHT"] * 7 + ["WAREHOUSE"]
    assert cache.get_or_run("k", compute).source is Source.EXACT and len(calls) == 1


def test_a_failure_is_not_cached() -> None:
    cache = ResultCache()

    def fail() -> pa.Table:
        raise RuntimeError("warehouse down")

    with pytest.raises(RuntimeError):
        cache.get_or_run("k", fail)
    assert cache.get_or_run("k", lambda: table(7)).table.column("v").to_pylist() == [7]


def test_an_answer_not_stored_is_still_computed_once_in_flight() -> None:
    cache = ResultCache()
    calls: list[int] = []
    gate = threading.Event()

    def compute() -> pa.Table:
        calls.append(1)
        gate.wait(5)
        return table(len(calls))

    results: list[int] = []
    threads = [threading.Thread(target=lambda: results.append(
        cache.get_or_run("k", compute, store=False).table.column("v")[0].as_py())) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(1.0)  # time for every thread to reach the cache, even on a loaded machine
    gate.set()
    for thread in threads:
        thread.join()
    assert results == [1] * 4  # one computation for the four concurrent callers
    assert cache.peek("k") is None  # and nothing kept
    assert cache.get_or_run("k", compute, store=False).table.column("v")[0].as_py() == 2


def test_keys_separate_scopes_and_warehouses() -> None:
    base = result_key("SELECT 1", "duckdb:///a", "tenant-a")
    assert base == result_key("SELECT 1", "duckdb:///a", "tenant-a")
    assert base != result_key("SELECT 1", "duckdb:///a", "tenant-b")
    assert base != result_key("SELECT 1", "duckdb:///b", "tenant-a")
    assert result_key("SELECT 1", "ab", "c") != result_key("SELECT 1", "a", "bc")


def test_entries_are_arrow_ipc_keeping_types() -> None:
    original = pa.table({"d": [date(2024, 3, 1), None], "t": [datetime(2024, 3, 1, 12, 30), None],
                         "x": pa.array([Decimal("1.25"), None], pa.decimal128(12, 2)), "s": ["a", None],
                         "n": pa.array([None, None], pa.null())})
    data = encode(original, 123.5)
    back = decode(data)
    assert back is not None and back[1] == 123.5 and back[0].equals(original)
    assert decode(b"not an entry") is None


def test_ttl_and_stale_while_revalidate() -> None:
    now = [1000.0]
    store = MemoryStore(clock=lambda: now[0])
    plain = ResultCache(store, ttl=10, clock=lambda: now[0])
    plain.get_or_run("a", lambda: table(1))
    now[0] += 11
    assert plain.get_or_run("a", lambda: table(2)).source is Source.WAREHOUSE  # expired: computed again

    calls: list[int] = []
    done = threading.Event()

    def recompute() -> pa.Table:
        calls.append(1)
        done.set()
        return table(3)

    swr = ResultCache(MemoryStore(clock=lambda: now[0]), ttl=10, stale=60, clock=lambda: now[0])
    swr.get_or_run("b", lambda: table(1))
    now[0] += 11
    stale = swr.get_or_run("b", recompute)
    assert stale.source is Source.EXACT and stale.table.column("v").to_pylist() == [1]  # served at once
    assert done.wait(5) and calls == [1]  # and refreshed once in the background
    deadline = time.monotonic() + 30  # the refresh stores its answer just after `done`: wait for it, however slow
    while swr.peek("b") is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert swr.get_or_run("b", recompute).table.column("v").to_pylist() == [3] and calls == [1]


def test_invalidate_drops_exactly_the_entries_of_an_entity() -> None:
    cache = ResultCache()
    cache.put("orders-only", table(1), entities=("order",))
    cache.put("orders-and-customers", table(2), entities=("order", "customer"))
    cache.put("customers-only", table(3), entities=("customer",))
    assert cache.invalidate("order") == 2
    assert cache.peek("orders-only") is None and cache.peek("orders-and-customers") is None
    assert cache.peek("customers-only") is not None
    assert cache.invalidate() == 1 and cache.peek("customers-only") is None


# -- stores ------------------------------------------------------------------------------------------------------

def test_memory_store_is_bounded_by_bytes() -> None:
    store = MemoryStore(max_bytes=10_000)
    evicted = metric("semantic_cache_evictions_total")
    for i in range(10):
        store.put(f"k{i}", bytes(3000))
        assert store.bytes <= 10_000
    assert store.bytes == 9000  # three entries of 3,000 bytes fit, not four
    assert [store.get(f"k{i}") is not None for i in range(10)] == [False] * 7 + [True] * 3
    assert metric("semantic_cache_evictions_total") - evicted == 7
    store.get("k7")  # used: now the most recent
    store.put("big", bytes(3000))
    assert store.get("k7") is not None and store.get("k8") is None
    store.put("huge", bytes(20_000))  # larger than the whole store: not kept, nothing evicted for it
    assert store.get("huge") is None and store.get("k7") is not None


def test_open_store_refuses_what_it_does_not_know() -> None:
    from semantic.errors import QueryError

    with pytest.raises(QueryError, match="redis://"):
        open_store("memcached://localhost")
    assert isinstance(open_store(None), MemoryStore)


def test_two_caches_on_one_redis_share_results(redis_url: str) -> None:
    first, second = ResultCache(open_store(redis_url)), ResultCache(open_store(redis_url))
    assert first.get_or_run("q", lambda: table(5, 1000)).source is Source.WAREHOUSE
    found = second.get_or_run("q", lambda: pytest.fail("computed again"))
    assert found.source is Source.EXACT and found.table.column("v").to_pylist() == [5] * 1000


def test_single_flight_across_stores(redis_url: str) -> None:
    """8 concurrent requests on two caches that share only Redis (as two processes would): one computation."""
    caches = [ResultCache(open_store(redis_url)), ResultCache(open_store(redis_url))]
    calls: list[int] = []

    def compute() -> pa.Table:
        calls.append(1)
        time.sleep(1.0)  # long enough for the other seven to find the lease, even on a loaded machine
        return table(9)

    sources: list[Source] = []
    threads = [threading.Thread(target=lambda c=caches[i % 2]: sources.append(c.get_or_run("q", compute).source))
               for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1] and sorted(s.value for s in sources) == ["INFLIGHT"] * 7 + ["WAREHOUSE"]


def test_a_waiter_computes_when_the_holder_dies(redis_url: str) -> None:
    store = open_store(redis_url)
    assert store.lease("q", 0.5) is not None  # a holder that never finishes nor renews: it died
    cache = ResultCache(store, poll=0.01)
    started = time.monotonic()
    found = cache.get_or_run("q", lambda: table(1))
    waited = time.monotonic() - started
    assert found.source is Source.WAREHOUSE and 0.4 <= waited < 3


def test_the_holder_renews_its_lease_while_computing(redis_url: str) -> None:
    holder, waiter = ResultCache(open_store(redis_url), lease=0.3), ResultCache(open_store(redis_url), lease=0.3)
    calls: list[int] = []

    computing = threading.Event()

    def slow() -> pa.Table:
        calls.append(1)
        computing.set()  # the lease is taken
        time.sleep(1.0)  # three leases long
        return table(1)

    thread = threading.Thread(target=lambda: holder.get_or_run("q", slow))
    thread.start()
    assert computing.wait(30)
    assert waiter.get_or_run("q", slow).source is Source.INFLIGHT
    thread.join()
    assert calls == [1]


def test_requests_survive_redis_going_away_and_the_cache_comes_back(tmp_path: Path) -> None:
    """A Redis of the test's own, stopped and started again mid-run: every request is answered."""
    port = free_port()
    server = start_redis(port, tmp_path)
    try:
        store = open_store(f"redis://127.0.0.1:{port}/0")
        assert isinstance(store, RedisStore)
        store.retry_after = 0.2
        cache = ResultCache(store)
        computed: list[int] = []

        def compute() -> pa.Table:
            computed.append(1)
            return table(len(computed))

        assert cache.get_or_run("q", compute).source is Source.WAREHOUSE
        assert cache.get_or_run("q", compute).source is Source.EXACT
        errors = metric("semantic_cache_store_errors_total")
        server.terminate()
        server.wait(10)
        for _ in range(5):  # no server: answered from the warehouse, each time
            assert cache.get_or_run("q", compute).source is Source.WAREHOUSE
        assert metric("semantic_cache_store_errors_total") > errors and len(computed) == 6
        server = start_redis(port, tmp_path)
        time.sleep(0.3)
        cache.get_or_run("q", compute)  # first request after it is back fills the cache again
        assert cache.get_or_run("q", compute).source is Source.EXACT
    finally:
        server.kill()
        server.wait(10)


# -- through the service -----------------------------------------------------------------------------------------

class CountingWarehouse:
    """A real DuckDB warehouse that counts the statements it runs."""

    def __init__(self, url: str) -> None:
        self.inner = SqlWarehouse(url, read_only=True)
        self.identity, self.dialect = self.inner.identity, self.inner.dialect
        self.statements: list[str] = []

    def run(self, sql: str) -> Table:
        self.statements.append(sql)
        return self.inner.run(sql)

    def arrow(self, sql: str) -> pa.Table:
        self.statements.append(sql)
        return self.inner.arrow(sql)

    def arrow_with(self, sql: str, tables: Any) -> pa.Table:
        self.statements.append(sql)
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
    assert second.cache_source is Source.EXACT and first.cache_source is Source.WAREHOUSE
    assert [c.name for c in second.columns] == ["customer.region", "order.order_count", "order.revenue"]
    assert sorted(r[1:] for r in second.rows) == sorted((r[2], r[1]) for r in first.rows)


def test_feature_snapshots_are_shared_through_the_store(tmp_path: Path, redis_url: str) -> None:
    """Two processes' online stores over one Redis: the second serves the first's snapshot, with no statement;
    an explicit refresh rebuilds it once for both."""
    from semantic.online import OnlineStore

    path = generate(tmp_path / "shop.duckdb", orders=300)
    model = load(ROOT / "examples" / "shop")
    warehouses = [CountingWarehouse(f"duckdb:///{path}") for _ in range(2)]
    stores = [OnlineStore(Service(model, w, ResultCache(open_store(redis_url)))) for w in warehouses]
    names = ("lifetime_revenue", "orders_last_30d")
    first = stores[0].snapshot("customer", names)
    assert warehouses[0].statements and not warehouses[1].statements
    second = stores[1].snapshot("customer", names)
    assert not warehouses[1].statements  # served from the store
    assert second.at == first.at and second.rows == first.rows and len(first.rows) > 10
    built = len(warehouses[0].statements)
    time.sleep(1.1)  # snapshot times are whole seconds
    rebuilt = stores[1].snapshot("customer", names, refresh=True)
    assert warehouses[1].statements and rebuilt.at > first.at
    assert stores[0].snapshot("customer", names, refresh=False).at in (first.at, rebuilt.at)
    assert len(warehouses[0].statements) == built
    for warehouse in warehouses:
        warehouse.close()



def test_an_answer_from_memory_is_the_query_answer_and_never_stale_nor_another_readers(tmp_path: Path,
                                                                                       redis_url: str) -> None:
    """`Service.from_memory` answers only what `query` would answer from this process's memory with no statement:
    the same rows; nothing before the first query, after a cache clear, for a reader of another view, once a key
    check is due again, or with a store outside the process. (A due refresh key: tests/test_freshness.py.)"""
    from semantic.access import Access
    from semantic.integrity import KeyGuard
    from tests.tenants import policied_model

    path = generate(tmp_path / "shop.duckdb", orders=300)
    warehouse = CountingWarehouse(f"duckdb:///{path}")
    now = [0.0]
    service = Service(load(policied_model(tmp_path)), warehouse,
                      integrity=KeyGuard(warehouse, max_age=60, clock=lambda: now[0]))
    eu, na = (Access.from_claims({"sub": r, "roles": ["analyst"], "region": r}) for r in ("EU", "NA"))
    query = SemanticQuery(("order.revenue", "order.order_count"), ("customer.region",))
    assert service.from_memory(query, eu) is None
    answer = service.query(query, eu, exact={"order.revenue"})
    statements = len(warehouse.statements)
    found = service.from_memory(query, eu, exact={"order.revenue"})
    assert found is not None and found.rows == answer.rows and found.rows[0][0] == "EU"
    assert isinstance(found.rows[0][1], Decimal) and found.cache_hit and found.cache_source is Source.EXACT
    assert (found.columns, found.sql, found.cache_key) == (answer.columns, answer.sql, answer.cache_key)
    assert service.from_memory(query, eu) is None  # its rows converted otherwise: not yet in memory
    assert service.from_memory(query, na) is None  # another reader's view: never this answer
    assert len(warehouse.statements) == statements
    now[0] += 61  # the join key's verdict is old: checked again, by a statement, before any answer
    assert service.from_memory(query, eu, exact={"order.revenue"}) is None
    service.query(query, eu, exact={"order.revenue"})
    assert service.from_memory(query, eu, exact={"order.revenue"}) is not None
    service.clear_cache()
    assert service.from_memory(query, eu, exact={"order.revenue"}) is None
    elsewhere = Service(load(ROOT / "examples" / "shop"), warehouse, ResultCache(open_store(redis_url)))
    elsewhere.query(query)
    assert elsewhere.query(query).cache_hit and elsewhere.from_memory(query) is None
