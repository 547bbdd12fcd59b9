"""Benchmarks of the semantic layer on the shop example: compile time, generated vs hand-written SQL, GraphQL over HTTP.

    python -m bench.run [--orders 1000000] [--repeat 9]

1. Compile time per query kind: "first" is a fresh `Service` per call (plan cache cold; the model and sqlglot's own
   process-wide state are warm), "repeated" is the same `Service` again (plan cache hit). Feature requests have no
   plan cache, so their "repeated" is a full compile too.
2. Execution on DuckDB: the generated SQL vs a hand-written query for the same answer, run alternately through
   `service.warehouse.run` (no result cache), median of `--repeat` runs each; the rows are compared too.
3. The typed GraphQL field over real HTTP (uvicorn on 127.0.0.1, httpx client, keep-alive), result cache hit and
   missed (`service.cache.clear()` before each request, outside the timing).

The data file is bench/data/shop-<orders>.duckdb (seed 7), built on first use and reused afterwards.
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import platform
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
MODEL = ROOT / "examples" / "shop" / "model.yaml"

DASHBOARD = "{ order(limit: 10, orderBy: [{revenue: DESC}]) { customer { region } revenue orderCount } }"


# -- helpers ---------------------------------------------------------------------------------------------------------

def ms(ns: float) -> str:
    value = ns / 1e6
    if value < 0.1:
        return f"{value:.4f}"
    if value < 10:
        return f"{value:.3f}"
    return f"{value:.1f}"


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def table(headers: list[str], rows: list[list[str]], right: set[int] | None = None) -> str:
    right = right if right is not None else set(range(1, len(headers)))
    widths = [max(len(str(r[i])) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells: list[str]) -> str:
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths, strict=True))).rstrip()

    return "\n".join([line(headers), "  ".join("-" * w for w in widths), *(line(r) for r in rows)])


def timed(fn: Callable[[], Any]) -> tuple[int, Any]:
    start = time.perf_counter_ns()
    value = fn()
    return time.perf_counter_ns() - start, value


def machine() -> str:
    import duckdb
    import sqlglot

    cpu = "unknown"
    try:
        for text in Path("/proc/cpuinfo").read_text().splitlines():
            if text.startswith("model name"):
                cpu = text.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        from importlib.metadata import version

        sqlglotc = version("sqlglotc")
    except Exception:  # noqa: BLE001 - optional package
        sqlglotc = "not installed"
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return "\n".join([
        f"nproc:    {usable}",
        f"cpu:      {cpu}",
        f"python:   {platform.python_version()} ({platform.python_implementation()}, {platform.machine()})",
        f"duckdb:   {duckdb.__version__}",
        f"sqlglot:  {sqlglot.__version__} (sqlglotc {sqlglotc})",
        f"load:     {load_average()} (1/5/15 min, at start; the cores are shared)",
    ])


def load_average() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "unknown"


# -- the query kinds -------------------------------------------------------------------------------------------------

def queries() -> dict[str, Any]:
    from semantic.query import Filter, SemanticQuery

    return {
        "simple": SemanticQuery(metrics=("order.revenue",), dimensions=("customer.region",)),
        "derived": SemanticQuery(metrics=("order.average_order_value",), dimensions=("order.channel",)),
        "filtered (related)": SemanticQuery(
            metrics=("order.revenue", "order.order_count"), dimensions=("order.channel",),
            where=Filter.parse("customer.segment = 'enterprise' and order.status <> 'returned'")),
        "multi-hop join": SemanticQuery(metrics=("order_item.units",), dimensions=("customer.region",)),
        "multi-entity stitch": SemanticQuery(metrics=("order.revenue", "page_view.views"),
                                             dimensions=("customer.region", "time:month")),
        "time grain month": SemanticQuery(metrics=("order.revenue",), dimensions=("order.ordered_at:month",)),
    }


FEATURE_KIND = "features (100 keys)"


def feature_request(model: Any) -> Any:
    from semantic.features.request import FeatureRequest

    return FeatureRequest.create(model, "customer", list(range(1, 101)), None, datetime(2024, 6, 1))


# Hand-written SQL for the same answers, columns in the generated (canonical) order, as an analyst would write it:
# one GROUP BY, LEFT JOIN where the related row may be missing (orders of unknown customers), an inner JOIN where it
# cannot be (every order item has its order), FILTER for the metric's own condition, FULL JOIN on the dimension
# values for two entities. Keyed by query kind, or by a variant label listed in VARIANT_OF.
HAND: dict[str, str] = {
    "simple": """
        SELECT c.region, SUM(o.amount) FILTER (WHERE o.status <> 'cancelled') AS revenue
        FROM orders o LEFT JOIN customers c ON c.customer_id = o.customer_id
        GROUP BY c.region""",
    "filtered (related)": """
        SELECT o.channel, COUNT(*) AS order_count, SUM(o.amount) FILTER (WHERE o.status <> 'cancelled') AS revenue
        FROM orders o JOIN customers c ON c.customer_id = o.customer_id
        WHERE c.segment = 'enterprise' AND o.status <> 'returned'
        GROUP BY o.channel""",
    "multi-hop join": """
        SELECT c.region, SUM(i.quantity) AS units
        FROM order_items i JOIN orders o ON o.order_id = i.order_id
        LEFT JOIN customers c ON c.customer_id = o.customer_id
        GROUP BY c.region""",
    # The same with the LEFT JOIN the model has to use (it cannot know that no item lacks its order): isolates the
    # cost of LEFT vs inner join, which is the whole gap on the row above.
    "multi-hop join, hand all LEFT": """
        SELECT c.region, SUM(i.quantity) AS units
        FROM order_items i LEFT JOIN orders o ON o.order_id = i.order_id
        LEFT JOIN customers c ON c.customer_id = o.customer_id
        GROUP BY c.region""",
    "multi-entity stitch": """
        WITH r AS (
            SELECT c.region, CAST(date_trunc('month', o.ordered_at) AS DATE) AS month,
                   SUM(o.amount) FILTER (WHERE o.status <> 'cancelled') AS revenue
            FROM orders o LEFT JOIN customers c ON c.customer_id = o.customer_id
            GROUP BY ALL),
        v AS (
            SELECT c.region, CAST(date_trunc('month', p.viewed_at) AS DATE) AS month, COUNT(*) AS views
            FROM page_views p LEFT JOIN customers c ON c.customer_id = p.customer_id
            GROUP BY ALL)
        SELECT COALESCE(r.region, v.region) AS region, COALESCE(r.month, v.month) AS month, r.revenue, v.views
        FROM r FULL JOIN v ON r.region IS NOT DISTINCT FROM v.region AND r.month = v.month""",
    "time grain month": """
        SELECT CAST(date_trunc('month', ordered_at) AS DATE) AS month,
               SUM(amount) FILTER (WHERE status <> 'cancelled') AS revenue
        FROM orders GROUP BY 1""",
}


VARIANT_OF = {"multi-hop join, hand all LEFT": "multi-hop join"}


def same_rows(a: tuple[tuple[Any, ...], ...], b: tuple[tuple[Any, ...], ...]) -> bool:
    if len(a) != len(b):
        return False

    def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple((1, 0) if v is None else (0, v) for v in row)

    for x, y in zip(sorted(a, key=key), sorted(b, key=key), strict=True):
        if len(x) != len(y):
            return False
        for u, v in zip(x, y, strict=True):
            if isinstance(u, float) or isinstance(v, float):
                if u is None or v is None or not math.isclose(u, v, rel_tol=1e-6, abs_tol=1e-9):
                    return False
            elif u != v:
                return False
    return True


# -- 1. compile --------------------------------------------------------------------------------------------------------

def _compile_of(query: Any) -> Callable[[Any], Callable[[], Any]]:
    return lambda service: (lambda: service.compile(query))


def bench_compile(model: Any, fresh: int, repeated: int, budget_s: float) -> str:
    from semantic.service import Service

    kinds: list[tuple[str, Callable[[Any], Callable[[], Any]]]] = [
        (name, _compile_of(q)) for name, q in queries().items()
    ]
    request = feature_request(model)
    kinds.append((FEATURE_KIND, lambda s: (lambda: s.compile_features(request))))

    Service(model, None).compile(queries()["simple"])  # first use in the process: imports, sqlglot warm-up
    rows = []
    for name, make in kinds:
        firsts = []
        for _ in range(fresh):
            service = Service(model, None)
            elapsed, _ = timed(make(service))
            firsts.append(elapsed)
        service = Service(model, None)
        call = make(service)
        call()
        again: list[int] = []
        deadline = time.perf_counter() + budget_s
        while len(again) < repeated and (len(again) < 20 or time.perf_counter() < deadline):
            elapsed, _ = timed(call)
            again.append(elapsed)
        first, rep = statistics.median(firsts), statistics.median(again)
        rows.append([name, ms(first), ms(rep), f"{first / rep:,.0f}x", f"{len(firsts)}/{len(again)}"])
    return table(["query kind", "first compile ms", "repeated compile ms", "speed-up", "n first/repeated"], rows)


# -- 2. execution ------------------------------------------------------------------------------------------------------

def bench_execution(service: Any, repeat: int) -> tuple[str, list[str]]:
    from semantic.sql.render import render

    qs = queries()
    rows, notes = [], []
    for name, hand in HAND.items():
        compiled = service.compile(qs[VARIANT_OF.get(name, name)])
        run = service.warehouse.run
        generated_rows = run(compiled.sql).rows  # warm-up both, and compare their answers
        hand_rows = run(hand).rows
        same = same_rows(generated_rows, hand_rows)
        gen_ns, hand_ns = [], []
        for i in range(repeat):
            order = [(compiled.sql, gen_ns), (hand, hand_ns)]
            for sql, into in order if i % 2 == 0 else reversed(order):
                elapsed, _ = timed(functools.partial(run, sql))
                into.append(elapsed)
        g, h = statistics.median(gen_ns), statistics.median(hand_ns)
        ratio = g / h
        rows.append([name, str(len(generated_rows)), ms(g), ms(h), f"{ratio:.2f}", "same" if same else "DIFFERENT"])
        if (ratio > 1.5 and name not in VARIANT_OF) or not same:
            notes.append(f"--- {name}: generated/hand = {ratio:.2f}, rows {'same' if same else 'DIFFERENT'}\n"
                         f"generated:\n{render(compiled.tree, compiled.dialect, pretty=True)}\n"
                         f"hand-written:{hand}\n")
    text = table(["query kind", "rows", "generated ms", "hand ms", "gen/hand", "result"], rows)

    # A feature lookup has no hand-written twin here; its compile (no plan cache) next to its run, for scale.
    request = feature_request(service.model)
    sql, _ = service.compile_features(request)
    service.warehouse.run(sql)
    compile_ns, run_ns = [], []
    for _ in range(repeat):
        compile_ns.append(timed(lambda: service.compile_features(request))[0])
        run_ns.append(timed(lambda: service.warehouse.run(sql))[0])
    c, r = statistics.median(compile_ns), statistics.median(run_ns)
    text += "\n\n" + table(["feature lookup", "compile ms", "run ms", "compile share"],
                            [[FEATURE_KIND, ms(c), ms(r), f"{c / (c + r):.0%}"]])
    return text, notes


# -- 3. GraphQL over HTTP ----------------------------------------------------------------------------------------------

def bench_http(service: Any, hits: int, misses: int) -> str:
    import httpx
    import uvicorn

    from api.app import create_app
    from semantic.query import Order, SemanticQuery

    # proto=IPPROTO_TCP matters: asyncio sets TCP_NODELAY only on accepted sockets whose proto is IPPROTO_TCP, and a
    # socket made with proto 0 would add a 40 ms Nagle/delayed-ACK stall to every keep-alive request.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # a free port, held from here on: no race with other processes
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(service), host="127.0.0.1", port=port, log_level="warning",
                            access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)

    url = f"http://127.0.0.1:{port}/graphql"
    payload = {"query": DASHBOARD}
    rows = []
    try:
        with httpx.Client(timeout=60) as client:
            def post() -> int:
                elapsed, response = timed(lambda: client.post(url, json=payload))
                body = response.json()
                if response.status_code != 200 or body.get("errors") or not body["data"]["order"]:
                    raise RuntimeError(f"unexpected response {response.status_code}: {str(body)[:300]}")
                return elapsed

            for _ in range(20):  # warm-up: connection, parser and validation caches, plan cache, result cache
                post()
            hit = [post() for _ in range(hits)]
            # In-process reference for the same query: the service path alone, without HTTP and GraphQL.
            q = SemanticQuery(metrics=("order.revenue", "order.order_count"), dimensions=("customer.region",),
                              order_by=(Order("order.revenue", True),), limit=10)
            service.query(q)
            local_hit = [timed(lambda: service.query(q))[0] for _ in range(hits)]
            miss, local_miss = [], []
            for _ in range(misses):  # alternated, so both see the same machine load
                service.cache.clear()
                miss.append(post())
                service.cache.clear()
                local_miss.append(timed(lambda: service.query(q))[0])
    finally:
        server.should_exit = True
        thread.join(timeout=20)

    for label, values in (("HTTP GraphQL, result cache hit", hit), ("HTTP GraphQL, result cache miss", miss),
                          ("in-process service.query, hit", local_hit),
                          ("in-process service.query, miss", local_miss)):
        rows.append([label, str(len(values)), ms(percentile(values, 50)), ms(percentile(values, 99)),
                     ms(max(values))])
    return table(["request", "n", "p50 ms", "p99 ms", "max ms"], rows)


# -- main --------------------------------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Benchmarks of the semantic layer on the shop example.")
    parser.add_argument("--orders", type=int, default=1_000_000, help="orders in the data set (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=9, help="runs of each SQL text in part 2 (default 9)")
    parser.add_argument("--fresh", type=int, default=20, help="fresh services per kind for first compile")
    parser.add_argument("--calls", type=int, default=2000, help="calls per kind for repeated compile")
    parser.add_argument("--hits", type=int, default=500, help="HTTP requests with the result cache hit")
    parser.add_argument("--misses", type=int, default=30, help="HTTP requests with the result cache missed")
    args = parser.parse_args(argv)
    started = time.perf_counter()

    from examples.shop.generate import generate
    from semantic.execute import SqlWarehouse
    from semantic.loader import load
    from semantic.service import Service

    print("# machine")
    print(machine())
    print()

    path = DATA / f"shop-{args.orders}.duckdb"
    if path.exists():
        print(f"data: {path.relative_to(ROOT)} (reused)")
    else:
        elapsed, _ = timed(lambda: generate(path, orders=args.orders))
        print(f"data: {path.relative_to(ROOT)} (generated in {elapsed / 1e9:.1f} s)")
    import duckdb

    with duckdb.connect(str(path), read_only=True) as con:
        counts = {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                  for t in ("customers", "orders", "order_items", "page_views")}
    print("      " + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    print()

    model = load(MODEL)
    print("# 1. compile time per query kind (ms, median)")
    print("first = fresh Service per call (plan cache cold); repeated = same Service (plan cache hit);")
    print("features have no plan cache, so their repeated compile is a full compile (capped at ~3 s of calls)")
    print(bench_compile(model, args.fresh, args.calls, budget_s=3.0))
    print()

    service = Service(model, SqlWarehouse(f"duckdb:///{path}"))
    print(f"# 2. execution on DuckDB, generated SQL vs hand-written (ms, median of {args.repeat} alternating runs, "
          f"no result cache)")
    text, notes = bench_execution(service, args.repeat)
    print(text)
    for note in notes:
        print()
        print(note)
    print()

    print("# 3. GraphQL over HTTP (uvicorn on 127.0.0.1, httpx keep-alive client, one request at a time)")
    print(f"query: {DASHBOARD}")
    print(bench_http(service, args.hits, args.misses))
    print()
    print(f"total {time.perf_counter() - started:.0f} s")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
