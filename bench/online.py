"""Online feature lookups over HTTP: p50 and p99 for 1 and 100 keys, warm and cold, REST and GraphQL.

Run: python -m bench.online [--orders 100000] [--warm 500] [--cold 50]

The server is `semantic serve` in its own process (so the client does not share its interpreter) on the example
shop. "Latest" lookups read the snapshot; lookups "at" a time read the per-key cache when warm, and compute the
keys in SQL when cold (each cold request asks for a time no request asked for before).
"""

from __future__ import annotations

import argparse
import random
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from bench.run import machine, ms, percentile, table, timed

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"


def start(path: Path) -> tuple[subprocess.Popen[bytes], str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    process = subprocess.Popen([sys.executable, "-m", "api.cli.main", "serve", str(ROOT / "examples" / "shop"),
                                "--port", str(port), "--warehouse", f"duckdb:///{path}"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not start")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--warm", type=int, default=500)
    parser.add_argument("--cold", type=int, default=50)
    args = parser.parse_args(argv)

    from examples.shop.generate import ensure

    DATA.mkdir(exist_ok=True)
    path = ensure(DATA / f"shop-{args.orders}.duckdb", orders=args.orders)
    print(machine())
    print(f"data: {path.name}\n")
    process, url = start(path)
    rng = random.Random(7)  # noqa: S311 - sampling keys, not secrets
    customers = args.orders // 10
    rows: list[list[str]] = []
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            refreshed = client.post("/features/customer/refresh").json()

            def rest(keys: list[int], at: str | None) -> Callable[[], Any]:
                params: list[tuple[str, str | int | float | bool | None]] = [("key", str(k)) for k in keys]
                params += [("at", at)] if at else []
                return lambda: client.get("/features/customer", params=params)

            def graphql(keys: list[int], at: str | None) -> Callable[[], Any]:
                where = f', at: "{at}"' if at else ""
                query = (f"{{ customerFeatures(keys: {keys}{where}) {{ customerId ordersLast30d lifetimeRevenue "
                         f"revenueLast90d viewsLast7d orders7d revenue7d region segment revenuePerOrder30d }} }}")
                return lambda: client.post("/graphql", json={"query": query})

            def run(label: str, make: Callable[[list[int], str | None], Callable[[], Any]], size: int,
                    mode: str, n: int) -> None:
                keys = [rng.randint(1, customers) for _ in range(size)]
                base = datetime(2024, 6, 1)
                if mode == "warm, at a time":
                    for _ in range(3):
                        make(keys, base.isoformat())()
                times = []
                for i in range(n):
                    at = None if mode == "latest (snapshot)" else \
                        (base + timedelta(seconds=i + 1)).isoformat() if mode == "cold, at a time" else base.isoformat()
                    if mode == "latest (snapshot)" and i < 3:
                        make(keys, None)()  # warm-up: connection, parser and validation caches
                    elapsed, response = timed(make(keys, at))
                    if response.status_code != 200 or "errors" in response.text[:20]:
                        raise RuntimeError(f"{label}: {response.status_code} {response.text[:300]}")
                    times.append(elapsed)
                rows.append([label, str(size), mode, str(n), ms(percentile(times, 50)), ms(percentile(times, 99))])

            for label, make in (("REST GET /features", rest), ("GraphQL customerFeatures", graphql)):
                for size in (1, 100):
                    run(label, make, size, "latest (snapshot)", args.warm)
                    run(label, make, size, "warm, at a time", args.warm)
                    run(label, make, size, "cold, at a time", args.cold)
    finally:
        process.terminate()
        process.wait(timeout=20)
    print("# online lookups over HTTP (one request at a time, keep-alive; 10 features from 4 sources)")
    print(table(["interface", "keys", "cache", "n", "p50 ms", "p99 ms"], rows, right={1, 3, 4, 5}))
    print(f"\nsnapshot of all {refreshed['keys']:,} customers (cold latest): built in {refreshed['seconds']} s")


if __name__ == "__main__":
    main()
