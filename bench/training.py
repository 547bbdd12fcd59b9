"""Training sets on the 1M-order shop example: `Service.training_set` against hand-written DuckDB queries.

    python -m bench.training [--orders 1000000] [--sizes 10000,100000,1000000] [--repeat 3]

Spines of customer keys at random times in the data's two years (seeded), 13 features of `customer` of four kinds:
metrics (order counts and revenue over 30 days, 90 days and all time, page-view counts over 7 days), latest values
(the daily statistics within 2 days, each row known from its created time; the last order's amount, status,
channel and time), two dimensions and a derived ratio.

Each measurement runs in its own process: build the spine, open the warehouse (model loaded, connection made), run
once to warm up, run again timed, then read the process's peak RSS (VmHWM: the high-water mark of the whole
process, Python, the spine, DuckDB and the result; `resource.getrusage` would report the parent's peak, which
Linux carries over to children). Methods, alternated, `--repeat` times each: `ours` (`Service.training_set`),
`hand` (one hand-written statement: per-spine-row aggregates over a range join, an ASOF join for the latest
statistics) and `hand-asof` (the metrics as running totals per customer, read by two ASOF lookups per window).
Before timing, the three answers are compared value by value for each size, spine columns included (floats within
1e-9 relative): each method ends with the same table, the spine in its order with the features appended. The
ratio ours/hand is the median of the ratios of back-to-back runs: on a shared machine both move with its load.

The data file is bench/data/shop-<orders>.duckdb (seed 7), built on first use and reused afterwards, opened
read-only.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).resolve().parent / "data"
MODEL = ROOT / "examples" / "shop" / "model.yaml"
START, END = np.datetime64("2023-01-01T00:00:00", "s"), np.datetime64("2024-12-31T23:59:59", "s")
FEATURES = ["orders_last_30d", "lifetime_revenue", "revenue_last_90d", "views_last_7d", "region", "segment",
            "revenue_per_order_30d", "orders_7d", "revenue_7d", "last_order_amount", "last_order_status",
            "last_order_channel", "last_order_at"]
METHODS = ("ours", "hand", "hand-asof")
POSTGRES = "ours-postgres"  # `--warehouse postgres`: Service.training_set on a PostgreSQL copy of the data

# The latest daily statistics known at t: each row is known from greatest(event, created); a running ARG_MAX
# keeps, per customer, the best row known so far (greatest event time, then created time).
LATEST = """
    latest AS (
        SELECT customer_id, greatest(event_timestamp, created_timestamp) AS known_from,
               arg_max({'e': event_timestamp, 'o': orders_7d, 'r': revenue_7d},
                       {'e': event_timestamp, 'c': created_timestamp})
                   OVER (PARTITION BY customer_id ORDER BY greatest(event_timestamp, created_timestamp)) AS best
        FROM customer_daily_stats),
    last_orders AS (  -- orders placed at the same second: the greatest order_id is the last one
        SELECT customer_id, ordered_at, o.amount, o.status, o.channel
        FROM (SELECT customer_id, ordered_at, arg_max({'amount': amount, 'status': status, 'channel': channel},
                                                      order_id) AS o
              FROM orders GROUP BY customer_id, ordered_at))"""
SELECT = """
    SELECT s.customer_id, s.event_timestamp,
           CASE WHEN c.signed_up_at <= s.event_timestamp THEN coalesce(o.orders_30d, 0) END AS orders_last_30d,
           CAST(CASE WHEN c.customer_id IS NOT NULL THEN o.revenue END AS DOUBLE) AS lifetime_revenue,
           CAST(CASE WHEN c.customer_id IS NOT NULL THEN o.revenue_90d END AS DOUBLE) AS revenue_last_90d,
           CASE WHEN c.signed_up_at <= s.event_timestamp THEN coalesce(v.views_7d, 0) END AS views_last_7d,
           CASE WHEN c.signed_up_at <= s.event_timestamp THEN c.region END AS region,
           CASE WHEN c.signed_up_at <= s.event_timestamp THEN c.segment END AS segment,
           CAST(CASE WHEN c.customer_id IS NOT NULL THEN o.revenue_90d END AS DOUBLE)
               / nullif(CASE WHEN c.signed_up_at <= s.event_timestamp THEN coalesce(o.orders_30d, 0) END, 0)
               AS revenue_per_order_30d,
           CAST(CASE WHEN c.customer_id IS NOT NULL AND l.best.e >= s.event_timestamp - INTERVAL 2 DAY
                     THEN l.best.o END AS BIGINT) AS orders_7d,
           CAST(CASE WHEN c.customer_id IS NOT NULL AND l.best.e >= s.event_timestamp - INTERVAL 2 DAY
                     THEN l.best.r END AS DOUBLE) AS revenue_7d,
           CAST(CASE WHEN c.customer_id IS NOT NULL THEN lo.amount END AS DOUBLE) AS last_order_amount,
           CASE WHEN c.customer_id IS NOT NULL THEN lo.status END AS last_order_status,
           CASE WHEN c.customer_id IS NOT NULL THEN lo.channel END AS last_order_channel,
           CASE WHEN c.customer_id IS NOT NULL THEN lo.ordered_at END AS last_order_at
    FROM spine s
    LEFT JOIN customers c ON c.customer_id = s.customer_id
    ASOF LEFT JOIN latest l ON l.customer_id = s.customer_id AND s.event_timestamp >= l.known_from
    ASOF LEFT JOIN last_orders lo ON lo.customer_id = s.customer_id AND s.event_timestamp >= lo.ordered_at
    LEFT JOIN order_metrics o ON o.row_id = s.row_id
    LEFT JOIN view_metrics v ON v.row_id = s.row_id
    ORDER BY s.row_id"""

# Aggregates per spine row over the customer's rows up to t: one range join per source.
HAND = f"""
    WITH order_metrics AS (
        SELECT s.row_id,
               count(*) FILTER (WHERE o.ordered_at > s.event_timestamp - INTERVAL 30 DAY) AS orders_30d,
               sum(o.amount) FILTER (WHERE o.status <> 'cancelled') AS revenue,
               sum(o.amount) FILTER (WHERE o.status <> 'cancelled'
                                       AND o.ordered_at > s.event_timestamp - INTERVAL 90 DAY) AS revenue_90d
        FROM spine s JOIN orders o ON o.customer_id = s.customer_id AND o.ordered_at <= s.event_timestamp
        GROUP BY s.row_id),
    view_metrics AS (
        SELECT s.row_id, count(*) AS views_7d
        FROM spine s JOIN page_views v ON v.customer_id = s.customer_id AND v.viewed_at <= s.event_timestamp
                                       AND v.viewed_at > s.event_timestamp - INTERVAL 7 DAY
        GROUP BY s.row_id),
    {LATEST}
    {SELECT}"""

# The same, with the metrics as running totals per customer read at t and at t - window by ASOF joins (ties on
# time share one running total: the default RANGE frame includes peers). A sum over a window is null when the
# window holds no kept order, as SUM over no rows is.
HAND_ASOF = f"""
    WITH running_orders AS (
        SELECT customer_id, ordered_at,
               count(*) OVER w AS n,
               sum(CASE WHEN status <> 'cancelled' THEN amount END) OVER w AS revenue,
               count(CASE WHEN status <> 'cancelled' THEN amount END) OVER w AS kept
        FROM orders WINDOW w AS (PARTITION BY customer_id ORDER BY ordered_at)),
    running_views AS (
        SELECT customer_id, viewed_at, count(*) OVER (PARTITION BY customer_id ORDER BY viewed_at) AS n
        FROM page_views WHERE customer_id IS NOT NULL),
    order_metrics AS (
        SELECT s.row_id,
               a.n - coalesce(b.n, 0) AS orders_30d,
               CASE WHEN a.kept > 0 THEN a.revenue END AS revenue,
               CASE WHEN a.kept - coalesce(c.kept, 0) > 0 THEN a.revenue - coalesce(c.revenue, 0) END AS revenue_90d
        FROM spine s
        ASOF JOIN running_orders a ON a.customer_id = s.customer_id AND s.event_timestamp >= a.ordered_at
        ASOF LEFT JOIN running_orders b
            ON b.customer_id = s.customer_id AND s.event_timestamp - INTERVAL 30 DAY >= b.ordered_at
        ASOF LEFT JOIN running_orders c
            ON c.customer_id = s.customer_id AND s.event_timestamp - INTERVAL 90 DAY >= c.ordered_at),
    view_metrics AS (
        SELECT s.row_id, a.n - coalesce(b.n, 0) AS views_7d
        FROM spine s
        ASOF JOIN running_views a ON a.customer_id = s.customer_id AND s.event_timestamp >= a.viewed_at
        ASOF LEFT JOIN running_views b
            ON b.customer_id = s.customer_id AND s.event_timestamp - INTERVAL 7 DAY >= b.viewed_at),
    {LATEST}
    {SELECT}"""


def spine(size: int, customers: int) -> pa.Table:
    rng = np.random.default_rng(size)
    seconds = rng.integers(0, int((END - START).astype(np.int64)) + 1, size)
    return pa.table({"customer_id": pa.array(rng.integers(1, customers + 1, size), pa.int64()),
                     "event_timestamp": pa.array((START + seconds.astype("timedelta64[s]")).astype("datetime64[us]"))})


def runner(method: str, path: Path) -> tuple[Callable[[pa.Table], pa.Table], Callable[[], None]]:
    """A function answering a spine with `method` over a connection opened once (not part of the timing), and a
    function closing that connection."""
    if method in ("ours", POSTGRES):
        from bench.postgres_data import postgres_copy
        from semantic.execute import SqlWarehouse
        from semantic.loader import load
        from semantic.service import Service

        url = postgres_copy(path) if method == POSTGRES else f"duckdb:///{path}"
        warehouse = SqlWarehouse(url, read_only=True, timeout=None)
        service = Service(load(MODEL), warehouse)
        return (lambda table: service.training_set("customer", table, FEATURES)), warehouse.close
    con = duckdb.connect(str(path), read_only=True)
    sql = HAND if method == "hand" else HAND_ASOF

    def hand(table: pa.Table) -> pa.Table:
        con.register("spine", table.append_column("row_id", pa.array(np.arange(table.num_rows, dtype=np.int64))))
        try:
            return con.sql(sql).to_arrow_table()
        finally:
            con.unregister("spine")

    return hand, con.close


def answer_with(method: str, path: Path, table: pa.Table) -> pa.Table:
    answer, close = runner(method, path)
    try:
        return answer(table)
    finally:
        close()


def measure(method: str, path: Path, size: int, customers: int) -> dict[str, float]:
    """In a fresh process: open the warehouse, warm up, then one timed run; the process's peak RSS."""
    table = spine(size, customers)
    answer, _ = runner(method, path)
    answer(table)
    started = time.perf_counter()
    result = answer(table)
    elapsed = time.perf_counter() - started
    if result.num_rows != size:
        raise SystemExit(f"{method}: {result.num_rows} rows for a spine of {size}")
    return {"seconds": elapsed, "peak_mb": peak_rss_mb()}


def peak_rss_mb() -> float:
    """The process's RSS high-water mark. Linux keeps `getrusage`'s ru_maxrss across fork and exec, so a child of
    a large parent would report the parent's peak; VmHWM belongs to the process's own address space."""
    status = Path("/proc/self/status")
    if status.exists():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kilobytes on Linux


def differences(a: pa.Table, b: pa.Table) -> list[str]:
    """Columns whose values differ, row by row (nulls equal; floats within 1e-9 relative): the spine's key and time,
    so both answers hold the same rows in the same order, and every feature."""
    found = []
    for name in ("customer_id", "event_timestamp", *FEATURES):
        x, y = a.column(name), b.column(name)
        if not pc.equal(pc.is_null(x), pc.is_null(y)).to_numpy(zero_copy_only=False).all():
            found.append(name)
        elif pa.types.is_floating(x.type):
            xs, ys = (pc.drop_null(c).to_numpy() for c in (x, y))
            if not np.allclose(xs, ys, rtol=1e-9, atol=1e-9):
                found.append(name)
        elif not x.cast(y.type).equals(y):
            found.append(name)
    return found


def in_subprocess(method: str, path: Path, size: int, customers: int) -> dict[str, float]:
    out = subprocess.run([sys.executable, "-m", "bench.training", "--measure", method, "--size", str(size),
                          "--data", str(path), "--customers", str(customers)], cwd=ROOT, capture_output=True,
                         text=True, check=False)
    if out.returncode != 0:
        raise SystemExit(f"{method} at {size:,} rows failed:\n{out.stderr}")
    measured: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return measured


def table_text(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]
    lines = ["  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths,
                                                                                           strict=True))),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths,
                                                                                          strict=True)))
              for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--warehouse", choices=("duckdb", "postgres"), default="duckdb",
                        help="postgres: ours on PostgreSQL (a copy of the data) beside ours on DuckDB")
    parser.add_argument("--measure", choices=(*METHODS, POSTGRES), help=argparse.SUPPRESS)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--customers", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.measure:
        print(json.dumps(measure(args.measure, args.data, args.size, args.customers)))
        return

    from examples.shop.generate import generate

    path = DATA / f"shop-{args.orders}.duckdb"
    reused = path.exists()
    if not reused:
        generate(path, orders=args.orders)
    with duckdb.connect(str(path), read_only=True) as con:
        counts = {t: int(con.execute(f"SELECT count(*) FROM {t}").fetchall()[0][0])
                  for t in ("customers", "orders", "page_views", "customer_daily_stats")}
    print(f"python {platform.python_version()}, duckdb {duckdb.__version__}, pyarrow {pa.__version__}, "
          f"{os.cpu_count()} cores, load {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"data: {path.relative_to(ROOT)} ({'reused' if reused else 'built'}): "
          + ", ".join(f"{t} {n:,}" for t, n in counts.items()))
    print(f"features: {', '.join(FEATURES)}\n")

    sizes = [int(s) for s in args.sizes.split(",")]
    if args.warehouse == "postgres":
        postgres_table(path, sizes, args.repeat, counts["customers"])
        return
    rows = []
    for size in sizes:
        table = spine(size, counts["customers"])
        answers = {m: answer_with(m, path, table) for m in METHODS}
        same = {m: "same" if not (d := differences(answers["ours"], answers[m])) else f"DIFFERENT: {', '.join(d)}"
                for m in METHODS[1:]}
        del answers, table
        runs: dict[str, list[dict[str, float]]] = {m: [] for m in METHODS}
        for _ in range(args.repeat):
            for method in METHODS:
                runs[method].append(in_subprocess(method, path, size, counts["customers"]))
        seconds = {m: statistics.median(r["seconds"] for r in runs[m]) for m in METHODS}
        peak = {m: max(r["peak_mb"] for r in runs[m]) for m in METHODS}
        # The machine's load moves both methods together; a ratio of back-to-back runs is steadier than a ratio
        # of medians.
        ratio = statistics.median(o["seconds"] / h["seconds"] for o, h in zip(runs["ours"], runs["hand"],
                                                                                strict=True))
        rows.append([f"{size:,}", f"{seconds['ours']:.3f}", f"{seconds['hand']:.3f}", f"{ratio:.2f}",
                     f"{seconds['hand-asof']:.3f}",
                     f"{peak['ours']:.0f}", f"{peak['hand']:.0f}", f"{peak['hand-asof']:.0f}",
                     same["hand"], same["hand-asof"]])
    print(f"time: median of {args.repeat} timed runs, each after a warm-up in a fresh process; ours/hand: median of "
          f"the {args.repeat} back-to-back ratios; peak: the largest RSS high-water mark of those processes")
    print(table_text(["spine rows", "ours s", "hand s", "ours/hand", "hand-asof s", "ours MB", "hand MB",
                      "hand-asof MB", "ours vs hand", "ours vs hand-asof"], rows))


def postgres_table(path: Path, sizes: list[int], repeat: int, customers: int) -> None:
    """Ours on PostgreSQL beside ours on DuckDB, the same spines, the answers compared first."""
    from bench.postgres_data import postgres_copy

    started = time.perf_counter()
    postgres_copy(path)
    print(f"PostgreSQL copy ready in {time.perf_counter() - started:.0f} s\n")
    rows = []
    for size in sizes:
        table = spine(size, customers)
        same = differences(answer_with("ours", path, table), answer_with(POSTGRES, path, table))
        runs = [(in_subprocess("ours", path, size, customers)["seconds"],
                 in_subprocess(POSTGRES, path, size, customers)["seconds"]) for _ in range(repeat)]
        ratio = statistics.median(p / d for d, p in runs)
        rows.append([f"{size:,}", f"{statistics.median(d for d, _ in runs):.3f}",
                     f"{statistics.median(p for _, p in runs):.3f}", f"{ratio:.2f}",
                     "same" if not same else f"DIFFERENT: {', '.join(same)}"])
    print(f"time: median of {repeat} timed runs, each after a warm-up in a fresh process; postgres/duckdb: median of "
          f"the back-to-back ratios (target <= 1.5)")
    print(table_text(["spine rows", "duckdb s", "postgres s", "postgres/duckdb", "answers"], rows))


if __name__ == "__main__":
    main()
