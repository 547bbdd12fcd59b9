"""Shapes of the optional chain (order items -> order -> customer, every join LEFT) side by side on DuckDB.

    python -m bench.chains [--orders 1000000] [--repeat 15]

The `optional chain (LEFT JOINs)` kind of `bench.run` (`line.units` by `customer.region`): the generated SQL without
an integrity verdict and as served (the guard found every item's order, so the chain is inner with the orphans
gated in, `semantic.sql.joins.gate_orphans`), the analyst's inner-join query (`HAND`, right on this data only
because every item has its order) and SQL shapes that keep every item row whatever the data, each checked against
the analyst's answer first, then run alternately `--repeat` times on one connection; medians and the ratio to the
analyst's query.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Any

import duckdb

from bench.run import HAND, MODEL, data_file, queries, table

KIND = "optional chain (LEFT JOINs)"

# The orphan branch runs only when some item did not find its order: the count and the answer come from one
# statement, so from one snapshot of the data.
GATE = "(SELECT count(*) FROM order_items) <> (SELECT count(*) FROM j)"
GATED = f"""
    WITH j AS MATERIALIZED (
        SELECT c.region, i.quantity FROM order_items i JOIN orders o ON o.order_id = i.order_id
        LEFT JOIN customers c ON c.customer_id = o.customer_id),
    orphans AS (
        SELECT NULL AS region, i.quantity FROM order_items i
        WHERE {GATE} AND NOT EXISTS (SELECT 1 FROM orders o WHERE {GATE} AND o.order_id = i.order_id))
    SELECT region, SUM(quantity) AS units FROM (SELECT * FROM j UNION ALL SELECT * FROM orphans) GROUP BY 1"""
UNIQUE = "(SELECT count(*) FROM orders) <> (SELECT count(DISTINCT order_id) FROM orders)"
SHAPES = {
    "items' distinct order_ids first, then JOIN ... IS NOT DISTINCT FROM": """
        WITH k AS (SELECT DISTINCT order_id FROM order_items),
        d AS (SELECT k.order_id, c.region FROM k LEFT JOIN orders o ON o.order_id = k.order_id
              LEFT JOIN customers c ON c.customer_id = o.customer_id)
        SELECT d.region, SUM(i.quantity) AS units
        FROM order_items i JOIN d ON d.order_id IS NOT DISTINCT FROM i.order_id GROUP BY 1""",
    "orders that have items (IN), then the LEFT join": """
        WITH d AS (SELECT o.order_id, c.region FROM orders o LEFT JOIN customers c ON c.customer_id = o.customer_id
                   WHERE o.order_id IN (SELECT order_id FROM order_items))
        SELECT d.region, SUM(i.quantity) AS units FROM order_items i LEFT JOIN d ON d.order_id = i.order_id
        GROUP BY 1""",
    "inner chain UNION ALL orphans (NOT EXISTS), always": GATED.replace(f"WHERE {GATE} AND", "WHERE"),
    "the same, orphans gated by a count in the statement": GATED,
    "gated, the gate also checks orders.order_id unique": GATED.replace(GATE, f"({GATE} OR {UNIQUE})"),
}


def rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[tuple[Any, float]]:
    return sorted(((r, float(u)) for r, u in con.sql(sql).fetchall()), key=str)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    from semantic.execute import SqlWarehouse
    from semantic.integrity import KeyGuard
    from semantic.loader import load
    from semantic.service import Service

    path, how = data_file(args.orders)
    model = load(MODEL)
    generated = Service(model, None).compile(queries()[KIND], "duckdb").sql
    warehouse = SqlWarehouse(f"duckdb:///{path}", read_only=True)
    served = Service(model, warehouse, integrity=KeyGuard(warehouse)).compile(queries()[KIND]).sql
    warehouse.close()
    variants = {"generated, unchecked (flat LEFT JOIN chain)": generated,
                "generated, as served (checked: inner chain, gated orphans)": served,
                "hand (the analyst's inner join)": HAND[KIND], **SHAPES}
    con = duckdb.connect(str(path), read_only=True)
    expected = rows(con, HAND[KIND])
    same = {name: rows(con, sql) == expected for name, sql in variants.items()}
    times: dict[str, list[float]] = {name: [] for name in variants}
    start = os.getloadavg()
    for _ in range(args.repeat):
        for name, sql in variants.items():
            began = time.perf_counter()
            con.sql(sql).fetchall()
            times[name].append(time.perf_counter() - began)
    hand = statistics.median(times["hand (the analyst's inner join)"])
    print(f"data: {path.name} ({how}); load {' '.join(f'{x:.2f}' for x in start)} at the start, "
          f"{' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end; median of {args.repeat} alternated runs\n")
    print(table(["shape", "ms", "ratio to hand", "rows"],
                [[name, f"{statistics.median(t) * 1000:.1f}", f"{statistics.median(t) / hand:.2f}",
                  "same" if same[name] else "DIFFERENT"] for name, t in times.items()]))


if __name__ == "__main__":
    main()
