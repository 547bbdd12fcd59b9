"""Two real `semantic serve` processes sharing a Redis cache, over HTTP: an answer one computed is the other's with
no warehouse statement of its own; 8 concurrent identical requests over both cost one statement; a Redis of the
test's own stopped mid-run costs no failed request, and the cache comes back with it."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from examples.shop.generate import generate
from semantic.store import open_store
from tests.local_servers import start_redis
from tests.serving import ROOT, free_port, server_process


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("servers") / "shop.duckdb", orders=3000)


class Server:
    """A `semantic serve` process over `shop` with the cache `cache`; `stop()` ends it and checks its log."""

    def __init__(self, shop: Path, cache: str, log: Path) -> None:
        self.log = log
        self._running = ExitStack()
        self.url, _ = self._running.enter_context(server_process(
            ROOT / "examples" / "shop", f"duckdb:///{shop}", log, args=("--cache", cache)))

    def ask(self, metrics: list[str], dimensions: list[str]) -> dict[str, Any]:
        body = {"query": "query($m: [String!], $d: [String!]) { query(metrics: $m, dimensions: $d) "
                         "{ rows cache { hit source } } }", "variables": {"m": metrics, "d": dimensions}}
        response = httpx.post(f"{self.url}/graphql", json=body, timeout=30)
        assert response.status_code == 200, response.text
        answer = response.json()
        assert "errors" not in answer, answer
        return dict(answer["data"]["query"])

    def metrics(self) -> str:
        response = httpx.get(f"{self.url}/metrics", timeout=5)
        if response.status_code == 404:
            pytest.skip("this build serves no /metrics yet (the serving work adds it)")
        return response.text

    def statements(self) -> float:
        text = self.metrics()
        return sum(sample.value for family in text_string_to_metric_families(text)
                   if family.name == "semantic_warehouse_statements" for sample in family.samples
                   if sample.name == "semantic_warehouse_statements_total")

    def stop(self) -> None:
        self._running.close()


@pytest.fixture
def servers(shop_file: Path, tmp_path: Path) -> Iterator[tuple[Server, Server]]:
    url = f"redis://127.0.0.1:6379/9?prefix=test-{uuid.uuid4().hex[:8]}:"
    first = Server(shop_file, url, tmp_path / "first.log")
    try:
        second = Server(shop_file, url, tmp_path / "second.log")
    except RuntimeError:
        first.stop()
        raise
    yield first, second
    first.stop()
    second.stop()
    store = open_store(url)
    store.clear()
    store.close()
    for server in (first, second):
        assert "Traceback" not in server.log.read_text(), server.log.read_text()


def test_a_second_process_answers_what_the_first_computed(servers: tuple[Server, Server]) -> None:
    first, second = servers
    question = (["order.revenue", "order.order_count"], ["customer.region", "order.status"])
    computed = first.ask(*question)
    assert computed["cache"]["source"] == "WAREHOUSE"
    before = second.statements()
    shared = second.ask(*question)
    assert shared["cache"] == {"hit": True, "source": "EXACT"} and shared["rows"] == computed["rows"]
    rolled = second.ask(["order.revenue"], ["customer.region"])  # from the first's finer answer
    assert rolled["cache"]["source"] == "ROLLUP"
    assert second.statements() == before


def test_concurrent_identical_requests_over_two_processes_cost_one_statement(
        servers: tuple[Server, Server]) -> None:
    first, second = servers
    question = (["order.buyers", "order.median_amount"], ["customer.segment", "order.channel"])  # no roll-up
    before = first.statements() + second.statements()
    answers: list[dict[str, Any]] = []
    gate = threading.Barrier(8)

    def ask(server: Server) -> None:
        gate.wait()
        answers.append(server.ask(*question))

    threads = [threading.Thread(target=ask, args=((first, second)[i % 2],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 8 and all(a["rows"] == answers[0]["rows"] for a in answers)
    assert first.statements() + second.statements() - before == 1
    assert sorted(a["cache"]["source"] for a in answers).count("WAREHOUSE") == 1


def test_stopping_redis_mid_run_fails_no_request(shop_file: Path, tmp_path: Path) -> None:
    port = free_port()
    redis = start_redis(port, tmp_path)
    server = Server(shop_file, f"redis://127.0.0.1:{port}/0", tmp_path / "server.log")
    try:
        questions = [(["order.revenue"], [dimension]) for dimension in
                     ("customer.region", "order.status", "order.channel", "customer.segment")]
        sources = []
        for round_ in range(12):
            if round_ == 4:
                redis.terminate()
                redis.wait(10)
            if round_ == 8:
                redis = start_redis(port, tmp_path)
                time.sleep(1.2)  # past the store's retry pause
            for question in questions:
                sources.append((round_, server.ask(*question)["cache"]["source"]))  # ask() fails on any error
        down = [s for r, s in sources if 4 <= r < 8]
        assert down == ["WAREHOUSE"] * len(down)  # answered, from the warehouse
        assert [s for r, s in sources if r >= 10] == ["EXACT"] * 8  # the cache came back with Redis
        assert "semantic_cache_store_errors_total" in server.metrics()
    finally:
        server.stop()
        redis.kill()
        redis.wait(10)
    log = (tmp_path / "server.log").read_text()
    assert "unreachable" in log and "Traceback" not in log
