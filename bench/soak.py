"""A soak of a running server: N clients for S seconds sending a mix of generic and typed queries (varied, so the
cache both hits and misses), feature lookups, a refresh now and then, and introspection. Prints requests per
second, p50/p99 latency, errors, and the server's RSS at the start, after warm-up, each tenth of the run and at
the end.

Run: python -m bench.soak [--seconds 60] [--clients 50] [--warmup 30] [--orders 20000]

The warm-up sends the same mix for `--warmup` seconds before the measured run (its requests are not counted, its
errors are): caches, pools and worker threads fill to their working size, which at a few dozen requests a second
on a loaded machine takes longer than a tenth of a minute. Pass: zero errors, and RSS at the end within 10% of RSS
after warm-up.
"""

from __future__ import annotations

import argparse
import random
import statistics
import threading
import time
from typing import Any

import httpx
from graphql import get_introspection_query

REGIONS = ("EU", "NA", "APAC", "LATAM")


def _requests(rng: random.Random) -> tuple[str, str, dict[str, Any]]:
    """(method, path, httpx keyword arguments) of one request of the mix."""
    roll = rng.random()
    if roll < 0.35:
        region = rng.choice(REGIONS)
        day = rng.randint(1, 28)
        return "POST", "/graphql", {"json": {"query": (
            '{ query(metrics: ["order.revenue", "order.order_count"], dimensions: ["order.ordered_at:month"], '
            f'where: "customer.region = \'{region}\' and order.ordered_at >= \'2024-01-{day:02d}\'") '
            "{ rows } }")}}
    if roll < 0.6:
        status = rng.choice(["completed", "cancelled", "returned", "pending"])
        return "POST", "/graphql", {"json": {"query": (
            "query($s: String) { order(where: {status: {eq: $s}}) { customer { region } revenue orderCount } }"),
            "variables": {"s": status}}}
    if roll < 0.85:
        keys = [("key", str(rng.randint(1, 500))) for _ in range(rng.randint(1, 5))]
        return "GET", "/features/customer", {"params": keys}
    if roll < 0.86:
        return "POST", "/features/customer/refresh", {}
    return "POST", "/graphql", {"json": {"query": get_introspection_query(descriptions=True)}}


def soak(url: str, pid: int, seconds: float, clients: int, warmup: float = 0) -> dict[str, Any]:
    """`clients` threads send the mix for `warmup` + `seconds` seconds; latencies are those of the requests sent
    after the warm-up, errors are all of them."""
    from tests.serving import rss_mb

    latencies: list[float] = []
    errors: list[str] = []
    began = time.monotonic()
    measured = began + warmup
    stop = measured + seconds
    lock = threading.Lock()

    def client(index: int) -> None:
        rng = random.Random(index)  # noqa: S311 - a reproducible request mix, not a secret
        with httpx.Client(base_url=url, timeout=60) as http:
            while time.monotonic() < stop:
                method, path, kwargs = _requests(rng)
                started = time.monotonic()
                try:
                    response = http.request(method, path, **kwargs)
                    ok = response.status_code == 200 and "errors" not in response.text[:20_000]
                    problem = "" if ok else f"{response.status_code} {response.text[:200]}"
                except httpx.HTTPError as error:
                    problem = f"{type(error).__name__}: {error}"
                with lock:
                    if started >= measured:
                        latencies.append(time.monotonic() - started)
                    if problem:
                        errors.append(problem)

    start_rss = rss_mb(pid)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    series = []  # RSS at the end of the warm-up, then at the end of each tenth of the measured run
    for tenth in range(10):
        time.sleep(max(measured + seconds * tenth / 10 - time.monotonic(), 0))
        series.append(rss_mb(pid))
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - measured
    ordered = sorted(latencies)
    return {"requests": len(ordered), "per_second": len(ordered) / elapsed,
            "p50_ms": 1000 * statistics.median(ordered), "p99_ms": 1000 * ordered[int(len(ordered) * 0.99) - 1],
            "errors": errors, "rss_start": start_rss, "rss_warm": series[0], "rss_end": rss_mb(pid),
            "rss_series": series[1:]}


def main() -> None:
    from tests.serving import shop_server

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--orders", type=int, default=20_000)
    args = parser.parse_args()
    with shop_server(args.orders) as (url, pid):
        result = soak(url, pid, args.seconds, args.clients, args.warmup)
    drift = (result["rss_end"] - result["rss_warm"]) / result["rss_warm"] * 100
    print(f"{args.clients} clients for {args.seconds:.0f} s after {args.warmup:.0f} s of warm-up: "
          f"{result['requests']:,} requests, "
          f"{result['per_second']:.0f} req/s, p50 {result['p50_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms")
    print(f"errors: {len(result['errors'])}" + (f" (first: {result['errors'][0]})" if result["errors"] else ""))
    print(f"RSS: {result['rss_start']:.0f} MB at start, {result['rss_warm']:.0f} MB after warm-up, "
          f"{result['rss_end']:.0f} MB at end ({drift:+.1f}% after warm-up)")
    print("RSS at each tenth of the measured run (MB): " + " ".join(f"{v:.0f}" for v in result["rss_series"]))


if __name__ == "__main__":
    main()
