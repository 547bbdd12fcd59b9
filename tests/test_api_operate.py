"""Operating the server: row caps that say so, request ids, JSON logs, /metrics, CORS and gzip, against a real
uvicorn process started with the serve options."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from examples.shop.generate import generate
from tests.serving import ROOT, serving
from tests.test_api_http import gql, hand

ORIGIN = "http://bi.example.test"


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("operate") / "shop.duckdb", orders=2000)


@pytest.fixture(scope="module")
def days(shop_file: Path) -> int:
    (count,) = hand(shop_file, "SELECT COUNT(DISTINCT CAST(ordered_at AS DATE)) FROM orders")
    return int(count[0])


@pytest.fixture(scope="module")
def served(shop_file: Path, days: int) -> Iterator[tuple[str, Path]]:
    log = shop_file.with_suffix(".log")
    options = ("--max-rows", "50", "--cors-origin", ORIGIN, "--cors-origin", "http://other.example.test",
               "--log-format", "json", "--log-level", "info")
    with serving(ROOT / "examples" / "shop", f"duckdb:///{shop_file}", log, args=options) as url:
        yield url, log


def test_a_cut_answer_says_so(served: tuple[str, Path], days: int) -> None:
    url, _ = served
    assert days > 50
    generic = gql(url, '{ query(metrics: ["order.order_count"], dimensions: ["order.ordered_at:day"]) '
                       '{ rows truncated } }')["data"]["query"]
    assert len(generic["rows"]) == 50 and generic["truncated"] is True
    small = gql(url, '{ query(metrics: ["order.order_count"], dimensions: ["order.ordered_at:day"], limit: 7) '
                     '{ rows truncated } }')["data"]["query"]
    assert len(small["rows"]) == 7 and small["truncated"] is False
    typed = gql(url, "{ order { orderedAt(grain: DAY) orderCount } }")
    assert len(typed["data"]["order"]) == 50 and typed["extensions"]["truncated"] is True
    whole = gql(url, "{ order { status orderCount } }")
    assert whole["extensions"]["truncated"] is False


def _metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        match = re.match(rf"^{name}(?:\{{(.*)\}})? (\S+)$", line)
        if match:
            found = dict(re.findall(r'(\w+)="([^"]*)"', match.group(1) or ""))
            if all(found.get(k) == v for k, v in labels.items()):
                total += float(match.group(2))
    return total


def test_metrics_move_with_the_requests(served: tuple[str, Path]) -> None:
    url, _ = served
    before = httpx.get(f"{url}/metrics").text
    query = '{ query(metrics: ["order.revenue"], dimensions: ["order.channel"]) { rows } }'
    for _ in range(3):
        gql(url, query)
    gql(url, '{ query(metrics: ["order.revnue"]) { rows } }')
    after = httpx.get(f"{url}/metrics").text
    assert "# TYPE semantic_warehouse_statements_total counter" in after
    requests = "semantic_http_requests_total"
    assert _metric(after, requests, route="/graphql", status="200") - _metric(before, requests, route="/graphql",
                                                                             status="200") == 4
    assert _metric(after, "semantic_warehouse_statements_total") - _metric(before,
                                                                           "semantic_warehouse_statements_total") == 1
    misses, hits = "semantic_cache_misses_total", "semantic_cache_hits_total"
    assert _metric(after, misses) - _metric(before, misses) == 1
    assert _metric(after, hits, source="exact") - _metric(before, hits, source="exact") == 2
    assert _metric(after, "semantic_errors_total", code="UNKNOWN_FIELD") - _metric(
        before, "semantic_errors_total", code="UNKNOWN_FIELD") == 1
    latency = "semantic_http_request_duration_seconds_count"
    assert _metric(after, latency, route="/graphql") - _metric(before, latency, route="/graphql") == 4


def test_request_id_in_header_and_every_log_line(served: tuple[str, Path]) -> None:
    url, log = served
    given = httpx.post(f"{url}/graphql", json={"query": "{ catalog { name } }"},
                       headers={"x-request-id": "trace-42.a"})
    assert given.headers["x-request-id"] == "trace-42.a"
    made = httpx.post(f"{url}/graphql", json={"query": '{ query(metrics: ["order.revnue"]) { rows } }'},
                      headers={"x-request-id": "bad id with spaces"})
    rid = made.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", rid)
    deadline = time.monotonic() + 30  # the server writes its lines after answering: wait for them, however slow
    while True:
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        if time.monotonic() > deadline or ({rid, "trace-42.a"} <= {line["request_id"] for line in lines} and any(
                line["logger"] == "semantic.access" and line["request_id"] == "trace-42.a" for line in lines)):
            break
        time.sleep(0.05)
    mine = [line for line in lines if line["request_id"] == rid]
    assert mine and all(line["level"] and line["time"].endswith("Z") for line in mine)
    access = [line for line in lines if line["logger"] == "semantic.access" and line["request_id"] == "trace-42.a"]
    assert access and access[0]["status"] == 200 and access[0]["path"] == "/graphql"


def test_cors_allows_the_origins_given(served: tuple[str, Path]) -> None:
    url, _ = served
    preflight = {"origin": ORIGIN, "access-control-request-method": "POST",
                 "access-control-request-headers": "content-type"}
    allowed = httpx.options(f"{url}/graphql", headers=preflight)
    assert allowed.status_code == 200 and allowed.headers["access-control-allow-origin"] == ORIGIN
    refused = httpx.options(f"{url}/graphql", headers={**preflight, "origin": "http://evil.example.test"})
    assert refused.status_code == 400 and "access-control-allow-origin" not in refused.headers
    simple = httpx.post(f"{url}/graphql", json={"query": "{ catalog { name } }"}, headers={"origin": ORIGIN})
    assert simple.headers["access-control-allow-origin"] == ORIGIN
    assert "x-request-id" in simple.headers["access-control-expose-headers"]


def test_large_responses_are_gzipped(served: tuple[str, Path]) -> None:
    url, _ = served
    body: dict[str, Any] = {"query": "{ order { orderedAt(grain: DAY) orderCount revenue } }"}
    big = httpx.post(f"{url}/graphql", json=body, headers={"accept-encoding": "gzip"})
    assert big.headers["content-encoding"] == "gzip" and len(big.json()["data"]["order"]) == 50
    plain = httpx.post(f"{url}/graphql", json=body, headers={"accept-encoding": "identity"})
    assert "content-encoding" not in plain.headers and plain.json()["data"] == big.json()["data"]
    tiny = httpx.post(f"{url}/graphql", json={"query": "{ order { orderCount } }"},
                      headers={"accept-encoding": "gzip"})
    assert "content-encoding" not in tiny.headers
    # Level 6: the gzip header's XFL byte is 2 at level 9 (slowest) and 4 at level 1 (fastest), 0 between (RFC 1952).
    with httpx.stream("POST", f"{url}/graphql", json=body, headers={"accept-encoding": "gzip"}) as raw:
        head = b"".join(raw.iter_raw())[:10]
    assert head[:2] == b"\x1f\x8b" and head[8] == 0, head
