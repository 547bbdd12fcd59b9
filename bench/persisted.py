"""Persisted queries over HTTP: the dashboard's document sent whole by POST, against its hash alone by GET (what a CDN
can cache) and by POST; request bytes, p50/p99 latency of result-cache hits (one uvicorn worker), Cache-Control.

Run: python -m bench.persisted [--orders 20000] [--repeat 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import httpx

from api.persisted import digest
from tests.serving import shop_server

DOCUMENT = """query Dashboard($orders: OrderWhere) {
  totals: order(where: $orders) { revenue orderCount averageOrderValue }
  months: order(where: $orders, orderBy: [{orderedAt: ASC}]) { month: orderedAt(grain: MONTH) revenue }
  regions: order(where: $orders, orderBy: [{revenue: DESC}]) { customer { region } revenue orderCount }
}"""
VARIABLES = {"orders": {"customer": {"region": {"eq": "EU"}}}}
EXTENSIONS = {"persistedQuery": {"version": 1, "sha256Hash": digest(DOCUMENT)}}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args(argv)
    with shop_server(args.orders) as (url, _), httpx.Client(timeout=60) as client:
        endpoint = f"{url}/graphql"
        client.post(endpoint, json={"query": DOCUMENT, "variables": VARIABLES, "extensions": EXTENSIONS})
        params = {"extensions": json.dumps(EXTENSIONS), "variables": json.dumps(VARIABLES)}
        cases: dict[str, tuple[int, Callable[[], httpx.Response]]] = {
            "POST document": (len(json.dumps({"query": DOCUMENT, "variables": VARIABLES})),
                              lambda: client.post(endpoint, json={"query": DOCUMENT, "variables": VARIABLES})),
            "GET hash alone": (len(httpx.URL(endpoint, params=params).raw_path),
                               lambda: client.get(endpoint, params=params)),
            "POST hash alone": (len(json.dumps({"variables": VARIABLES, "extensions": EXTENSIONS})),
                                lambda: client.post(endpoint, json={"variables": VARIABLES, "extensions": EXTENSIONS})),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        answers = set()
        for round_ in range(20 + args.repeat):  # alternated: every case sees the same load; 20 rounds of warm-up
            for name, (_, send) in cases.items():
                started = time.perf_counter()
                response = send()
                elapsed = time.perf_counter() - started
                body = response.json()
                if response.status_code != 200 or "errors" in body:
                    raise RuntimeError(f"{name}: {response.text[:300]}")
                answers.add(json.dumps(body["data"], sort_keys=True))
                if round_ >= 20:
                    times[name].append(elapsed)
        print(f"{'request':16} {'bytes':>6} {'p50 ms':>7} {'p99 ms':>7}  cache-control")
        for name, (size, send) in cases.items():
            found = sorted(times[name])
            print(f"{name:16} {size:6d} {statistics.median(found) * 1000:7.2f} "
                  f"{found[int(len(found) * 0.99)] * 1000:7.2f}  {send().headers.get('cache-control')}")
        print(f"answers identical: {len(answers) == 1}")


if __name__ == "__main__":
    main()
