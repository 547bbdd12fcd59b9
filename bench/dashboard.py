"""A dashboard workload: N panels x M users, filters and grains changing as people click.

Run: python -m bench.dashboard [--orders 100000] [--users 12] [--clicks 12] [--threads 4] [--seed 1]

Each user opens the dashboard (every panel at its default view: days, broken down by its filter dimensions), then
clicks: a grain (day, week, month, quarter), a region, a channel, a date range, a breakdown dropped; every click
re-asks every panel. The same seeded clicks run three times against one DuckDB file, each with a fresh service:

- off: no result cache, every request is a warehouse statement (the warehouse's own answers);
- exact: the cache answers only the very same question;
- rollup: the cache also answers a question that a cached finer result implies.

It prints the warehouse statements of each run and p50/p99 request latency, and checks that every answer of the
cached runs equals the warehouse's answer (floats to 1e-9 relative).
"""

from __future__ import annotations

import argparse
import math
import random
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from bench.run import machine, percentile, table
from examples.shop.generate import generate
from semantic.cache import ResultCache
from semantic.execute import SqlWarehouse, Table
from semantic.loader import load
from semantic.query import Filter, Order, SemanticQuery
from semantic.service import Service

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "bench" / "data"
GRAINS = ("day", "week", "month", "quarter")
REGIONS = (None, "EU", "NA", "APAC", "LATAM")
CHANNELS = (None, "web", "mobile", "store")
RANGES = (None, "2024-01-01", "2024-07-01", "2024-10-01")  # from this month on


@dataclass(frozen=True)
class Panel:
    name: str
    metrics: tuple[str, ...]
    time: str | None  # the time dimension the grain applies to
    breakdown: tuple[str, ...]  # dimensions shown until the user collapses them
    filters: tuple[str, ...]  # which of region / channel / range this panel obeys
    order: tuple[Order, ...] = ()
    limit: int | None = None


PANELS = (
    Panel("revenue over time", ("order.revenue", "order.order_count", "order.average_order_value"),
          "order.ordered_at", ("customer.region", "order.channel"), ("region", "channel", "range")),
    Panel("order size", ("order.average_amount", "order.largest_order", "order.smallest_order"),
          "order.ordered_at", ("customer.region", "order.channel"), ("region", "channel", "range")),
    Panel("orders by status", ("order.order_count", "order.gross_amount"), "order.ordered_at",
          ("order.status", "customer.region"), ("region", "range")),
    Panel("units by category", ("order_item.units", "order_item.item_revenue"), "order.ordered_at",
          ("product.category",), ("range",)),
    Panel("page views", ("page_view.views",), "page_view.viewed_at", ("page_view.page",), ("range",)),
    Panel("top regions", ("order.revenue",), None, ("customer.region",), ("channel", "range"),
          (Order("order.revenue", True),), 3),
)


@dataclass
class State:
    grain: str = "day"
    region: str | None = None
    channel: str | None = None
    since: str | None = None
    collapsed: bool = False  # breakdowns dropped to their first dimension

    def click(self, rng: random.Random) -> None:
        control = rng.choice(("grain", "grain", "region", "channel", "range", "collapse"))
        if control == "grain":
            self.grain = rng.choice(GRAINS)
        elif control == "region":
            self.region = rng.choice(REGIONS)
        elif control == "channel":
            self.channel = rng.choice(CHANNELS)
        elif control == "range":
            self.since = rng.choice(RANGES)
        else:
            self.collapsed = not self.collapsed


def ask(panel: Panel, state: State) -> SemanticQuery:
    dims = list(panel.breakdown[:1] if state.collapsed else panel.breakdown)
    if panel.time is not None:
        dims.insert(0, f"{panel.time}:{state.grain}")
    conditions = []
    if "region" in panel.filters and state.region:
        conditions.append(f"customer.region = '{state.region}'")
    if "channel" in panel.filters and state.channel:
        conditions.append(f"order.channel = '{state.channel}'")
    if "range" in panel.filters and state.since:
        axis = panel.time or "order.ordered_at"
        conditions.append(f"{axis}:month >= '{state.since}'")
    where = Filter.parse(" and ".join(conditions)) if conditions else None
    return SemanticQuery(panel.metrics, tuple(dims), where, panel.order, panel.limit)


def sessions(users: int, clicks: int, seed: int) -> list[list[SemanticQuery]]:
    """Each user's requests in order: the dashboard opened, then every panel again after each click."""
    rng = random.Random(seed)  # noqa: S311 - a seeded, repeatable workload, not a secret
    out = []
    for _ in range(users):
        state = State()
        asked = [ask(p, state) for p in PANELS]
        for _ in range(clicks):
            state.click(rng)
            asked += [ask(p, state) for p in PANELS]
        out.append(asked)
    return out


class CountingWarehouse:
    """The real warehouse, counting the statements sent to it."""

    def __init__(self, inner: SqlWarehouse) -> None:
        self.inner, self.identity, self.dialect = inner, inner.identity, inner.dialect
        self.statements = 0
        self._lock = threading.Lock()

    def _count(self) -> None:
        with self._lock:
            self.statements += 1

    def run(self, sql: str) -> Table:
        self._count()
        return self.inner.run(sql)

    def arrow(self, sql: str) -> pa.Table:
        self._count()
        return self.inner.arrow(sql)

    def arrow_with(self, sql: str, tables: Mapping[str, pa.Table]) -> pa.Table:
        self._count()
        return self.inner.arrow_with(sql, tables)

    def close(self) -> None:
        pass


@dataclass
class Run:
    mode: str
    statements: int = 0
    latencies: list[float] = field(default_factory=list)
    answers: dict[SemanticQuery, tuple[tuple[Any, ...], ...]] = field(default_factory=dict)
    sources: dict[str, int] = field(default_factory=dict)


def play(mode: str, warehouse: SqlWarehouse, model_path: Path, work: list[list[SemanticQuery]],
         threads: int) -> Run:
    counting = CountingWarehouse(warehouse)
    cache = ResultCache(enabled=mode != "off")
    service = Service(load(model_path), counting, cache, rollups=mode == "rollup")
    run = Run(mode)
    lock = threading.Lock()

    def user(requests: list[SemanticQuery]) -> None:
        for query in requests:
            started = time.perf_counter()
            result = service.query(query)
            elapsed = time.perf_counter() - started
            with lock:
                run.latencies.append(elapsed)
                run.answers.setdefault(query, result.rows)
                run.sources[result.cache_source.value] = run.sources.get(result.cache_source.value, 0) + 1

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(user, work))
    run.statements = counting.statements
    return run


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, "" if v is None else str(v)) for v in row)


def same(query: SemanticQuery, got: tuple[tuple[Any, ...], ...], want: tuple[tuple[Any, ...], ...]) -> bool:
    if not query.order_by:
        got, want = tuple(sorted(got, key=_key)), tuple(sorted(want, key=_key))
    if len(got) != len(want):
        return False
    for g_row, w_row in zip(got, want, strict=True):
        for g, w in zip(g_row, w_row, strict=True):
            if isinstance(g, float) or isinstance(w, float):
                if g is None or w is None or not math.isclose(g, w, rel_tol=1e-9, abs_tol=1e-9):
                    return False
            elif g != w or type(g) is not type(w):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=12)
    parser.add_argument("--clicks", type=int, default=12)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"shop-{args.orders}.duckdb"
    if not path.exists():
        generate(path, orders=args.orders)
    work = sessions(args.users, args.clicks, args.seed)
    requests = sum(len(w) for w in work)
    distinct = len({q for w in work for q in w})
    print(machine())
    print(f"{len(PANELS)} panels x {args.users} users x {args.clicks + 1} views: {requests} requests, "
          f"{distinct} distinct questions; {args.orders} orders; {args.threads} threads\n")
    warehouse = SqlWarehouse(f"duckdb:///{path}", read_only=True)
    runs = [play(mode, warehouse, ROOT / "examples" / "shop", work, args.threads)
            for mode in ("off", "exact", "rollup")]
    warehouse.close()
    truth = runs[0].answers
    rows = []
    wrong = 0
    for run in runs:
        bad = sum(not same(q, a, truth[q]) for q, a in run.answers.items())
        wrong += bad
        p50, p99 = percentile(run.latencies, 50) * 1e3, percentile(run.latencies, 99) * 1e3
        sources = " ".join(f"{k.lower()} {v}" for k, v in sorted(run.sources.items()))
        rows.append([run.mode, str(run.statements), f"{p50:.2f}", f"{p99:.2f}",
                     "-" if run.mode == "off" else f"{bad}/{len(run.answers)}", sources])
    print(table(["cache", "warehouse statements", "p50 ms", "p99 ms", "answers unequal", "answered by"], rows,
                right={1, 2, 3, 4}))
    exact, rolled = runs[1].statements, runs[2].statements
    print(f"\nstatements, exact-match / roll-ups: {exact / max(rolled, 1):.1f}x fewer with roll-ups "
          f"({exact} vs {rolled}); every answer equal to the warehouse's: {'yes' if wrong == 0 else 'NO'}")
    if wrong:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
