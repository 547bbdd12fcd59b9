"""A PostgreSQL of the test's own stopped and restarted while a real `semantic serve` answers concurrent clients:
while it is down every failed answer is WAREHOUSE_UNAVAILABLE (never WAREHOUSE_ERROR, INTERNAL or a 500; no host,
port, user or database in the message), statements cut by the shutdown included; once it is back every answer is
right, checked against hand SQL, with no statement failing on a connection that died in the pool."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from examples.shop.generate import generate
from semantic.errors import WarehouseUnavailableError
from semantic.execute import SqlWarehouse
from tests.conftest import TABLES
from tests.local_servers import PostgresServer, copy_tables, postgres_server
from tests.serving import ROOT, server_process

USER, DATABASE = "fault_reader", "fault_shop"  # names that must never reach a client
QUESTION = ('query($w: String) { query(metrics: ["order.revenue", "order.order_count"], '
            'dimensions: ["customer.region"], where: $w) { rows } }')
HAND = ("SELECT c.region, SUM(o.amount) FILTER (WHERE o.status <> 'cancelled'), COUNT(*) FROM orders o "
        "LEFT JOIN customers c ON c.customer_id = o.customer_id WHERE o.amount > %s GROUP BY c.region")


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    shop = generate(tmp_path_factory.mktemp("faults") / "shop.duckdb", orders=3000)
    with postgres_server() as server:
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute(f"CREATE ROLE {USER} LOGIN")
            admin.execute(f"CREATE DATABASE {DATABASE} OWNER {USER}")
        copy_tables(shop, server.url(DATABASE, USER), TABLES)
        yield server


@dataclass(frozen=True)
class Answer:
    threshold: Decimal  # the question: revenue and order count by region of the orders above this amount
    sent: float
    received: float
    status: int
    body: dict[str, Any]


def _by_region(rows: list[list[Any]]) -> dict[str | None, tuple[float | None, int]]:
    return {r[0]: (None if r[1] is None else round(float(r[1]), 2), int(r[2])) for r in rows}


def _load(url: str, clients: int, running: threading.Event, answers: list[Answer], lock: threading.Lock) -> None:
    """Clients asking, until `running` is cleared, a question no one asked before (so each one reaches the
    warehouse rather than the result cache); each answer appended to `answers` under `lock`."""
    counter = iter(range(10**9))

    def client() -> None:
        with httpx.Client(timeout=60) as http:
            while running.is_set():
                with lock:
                    threshold = Decimal(next(counter)) / 10
                sent = time.monotonic()
                response = http.post(f"{url}/graphql", json={
                    "query": QUESTION, "variables": {"w": f"order.amount > {threshold}"}})
                body = response.json() if "json" in response.headers.get("content-type", "") else {}
                with lock:
                    answers.append(Answer(threshold, sent, time.monotonic(), response.status_code, body))

    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(client)


def _wait_for(answers: list[Answer], lock: threading.Lock, count: int, since: float) -> None:
    """Until `count` answers asked at `since` or later have come back (phases last as long as a loaded machine
    needs, not a fixed time)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with lock:
            if sum(a.sent >= since for a in answers) >= count:
                return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {count} answers in 120 s")


def test_a_warehouse_stopped_under_load_is_unavailable_then_recovers(postgres: PostgresServer,
                                                                      tmp_path: Path) -> None:
    running = threading.Event()
    running.set()
    log = tmp_path / "server.log"
    with server_process(ROOT / "examples" / "shop", postgres.url(DATABASE, USER), log) as (url, _):
        answers: list[Answer] = []
        lock = threading.Lock()
        with ThreadPoolExecutor(1) as background:
            load = background.submit(_load, url, 8, running, answers, lock)
            _wait_for(answers, lock, 25, 0)
            stopping = time.monotonic()
            postgres.stop("fast")  # sessions are terminated: statements running now are cut
            stopped = time.monotonic()
            _wait_for(answers, lock, 25, stopped)
            postgres.start()
            started = time.monotonic()
            _wait_for(answers, lock, 25, started + 3)
            running.clear()
            load.result()
        healthy = httpx.get(f"{url}/healthz", timeout=10).status_code
    assert healthy == 200

    before = [a for a in answers if a.received < stopping]
    down = [a for a in answers if a.sent >= stopped and a.received < started]
    after = [a for a in answers if a.sent >= started + 3]
    assert len(before) > 20 and len(down) > 20 and len(after) > 20, (len(before), len(down), len(after))
    assert all(a.status == 200 for a in answers), {a.status for a in answers}

    errors = [a for a in answers if a.body.get("errors")]
    assert {e["extensions"]["code"] for a in errors for e in a.body["errors"]} == {"WAREHOUSE_UNAVAILABLE"}
    for answer in errors:
        message = answer.body["errors"][0]["message"]
        for secret in (USER, DATABASE, str(postgres.port), "127.0.0.1", "localhost"):
            assert secret not in message, message
    assert all(a.body.get("errors") for a in down)  # nothing answered from nowhere
    assert not [a for a in before if a.body.get("errors")]
    # Back within a few seconds, and from then on every answer right: no statement fails on a connection that
    # died in the pool while the warehouse was away.
    first_right = min(a.received for a in answers if a.sent >= started and not a.body.get("errors"))
    assert first_right - started < 3
    assert not [a for a in answers if a.sent >= first_right and a.body.get("errors")]

    answered = [a for a in answers if not a.body.get("errors")]
    with psycopg.connect(postgres.url(DATABASE, USER)) as hand:
        for answer in answered:
            expected = hand.execute(HAND, [answer.threshold]).fetchall()
            assert _by_region(answer.body["data"]["query"]["rows"]) == _by_region([list(r) for r in expected]), \
                answer.threshold


def test_a_statement_cut_by_a_shutdown_is_unavailable_and_the_pool_recovers(postgres: PostgresServer) -> None:
    warehouse = SqlWarehouse(postgres.url(DATABASE, USER))
    try:
        with ThreadPoolExecutor(4) as pool:  # four connections, left idle in the pool
            assert list(pool.map(lambda _: warehouse.run("SELECT COUNT(*) AS n FROM orders").rows,
                                 range(4))) == [((3000,),)] * 4
            cut = pool.submit(warehouse.run, "SELECT pg_sleep(30) AS slept")
            time.sleep(1)
            postgres.stop("fast")
            with pytest.raises(WarehouseUnavailableError) as raised:
                cut.result(timeout=30)
        assert "went away" in raised.value.message
        with pytest.raises(WarehouseUnavailableError):
            warehouse.run("SELECT 1 AS one")
        postgres.start()
        # every pooled connection died with the server; none of them fails a statement now
        assert [warehouse.run("SELECT COUNT(*) AS n FROM orders").rows for _ in range(6)] == [((3000,),)] * 6
    finally:
        warehouse.close()
        if not postgres.running():
            postgres.start()
