"""The example suite on Spark Connect beside DuckDB: the same model, the same data, medians side by side.

    python -m bench.spark [--orders 100000] [--repeat 5] [--url sc://host:port]

Without `--url`, a local Spark Connect server (2 cores, from the pyspark package) is started on 127.0.0.1 and the
example data is copied into it from the DuckDB file as Arrow; it is stopped at the end. Each query kind of
`bench.run.queries()` runs `--repeat` times on each warehouse (no result cache), alternately; the rows are compared
(numbers to 1e-6 relative). Spark pays a fixed cost per statement (planning, scheduling, the gRPC round trip)
that DuckDB, in process, does not, so at these sizes the ratio measures that cost more than scanning speed.
"""

from __future__ import annotations

import argparse
import math
import statistics
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench.run import MODEL, TABLES, data_file, machine, queries, table
from semantic.execute import SqlWarehouse, Warehouse
from semantic.loader import load
from semantic.service import Service
from semantic.warehouses import connect


def _cell(value: Any) -> Any:
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return value


def same(a: tuple[tuple[Any, ...], ...], b: tuple[tuple[Any, ...], ...]) -> bool:
    def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple((v is None, str(v)) for v in row)

    rows_a = sorted((tuple(_cell(v) for v in r) for r in a), key=key)
    rows_b = sorted((tuple(_cell(v) for v in r) for r in b), key=key)
    return len(rows_a) == len(rows_b) and all(
        (math.isclose(x, y, rel_tol=1e-6, abs_tol=1e-6) if isinstance(x, float) and isinstance(y, float) else x == y)
        for ra, rb in zip(rows_a, rows_b, strict=True) for x, y in zip(ra, rb, strict=True))


def median_ms(warehouse: Warehouse, sql: str, repeat: int) -> tuple[float, Any]:
    times, rows = [], None
    for _ in range(repeat):
        started = time.perf_counter_ns()
        rows = warehouse.run(sql).rows
        times.append((time.perf_counter_ns() - started) / 1e6)
    return statistics.median(times), rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--url", help="an existing Spark Connect server holding the example tables")
    args = parser.parse_args()
    path, how = data_file(args.orders)
    model = load(MODEL)
    with ExitStack() as stack:
        url = args.url
        if url is None:
            from tests.spark_server import load_tables, spark_connect_server

            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-spark-")))
            started = time.perf_counter()
            url = stack.enter_context(spark_connect_server(work))
            load_tables(url, path, TABLES)
            setup = f"local server started and loaded in {time.perf_counter() - started:.0f} s"
        else:
            setup = f"server {url}"
        duck = SqlWarehouse(f"duckdb:///{path}", read_only=True, timeout=None)
        spark = connect(url, timeout=None)
        stack.callback(duck.close)
        stack.callback(spark.close)
        rows, ratios, wrong = [], [], []
        for kind, query in queries().items():
            sql_duck = Service(model, duck).compile(query).run_sql
            sql_spark = Service(model, spark).compile(query).run_sql
            median_ms(spark, sql_spark, 1)  # warm: Spark compiles its plan and caches file listings once
            d, rows_d = median_ms(duck, sql_duck, args.repeat)
            s, rows_s = median_ms(spark, sql_spark, args.repeat)
            ok = same(rows_d, rows_s)
            wrong += [] if ok else [kind]
            ratios.append(s / d)
            rows.append([kind, f"{d:.1f}", f"{s:.1f}", f"{s / d:.1f}x", "same" if ok else "DIFFERENT"])
    print(f"# Example suite: Spark Connect vs DuckDB ({args.orders} orders, {how}; {setup})\n")
    print(machine())
    print(table(["kind", "DuckDB ms", "Spark ms", "Spark/DuckDB", "rows"], rows, right={1, 2, 3}))
    print(f"\ngeometric mean Spark/DuckDB: {math.exp(statistics.fmean(math.log(r) for r in ratios)):.1f}x; "
          f"rows {'the same for every kind' if not wrong else 'DIFFERENT for ' + ', '.join(wrong)}")


if __name__ == "__main__":
    main()
