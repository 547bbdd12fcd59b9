"""Seeded, deterministic generator of a realistic e-commerce dataset in DuckDB.

Tables: customers, products, orders, order_items, page_views and a point-in-time feature table
customer_daily_stats. Everything is drawn from one ``numpy.random.default_rng(seed)`` in a fixed order, so the
same (seed, orders) always yields identical table contents. Timestamps are naive (meaning UTC), second precision,
within 2023-01-01 00:00:00 .. 2024-12-31 23:59:59.

    python -m examples.shop.generate [--orders N] [--seed S] [--out PATH]
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

VERSION = 2  # bump when the tables change, so `ensure` rebuilds files made by an older generator
DEFAULT_OUT = Path(__file__).with_name("shop.duckdb")
DAY = 86_400
START = int(np.datetime64("2023-01-01T00:00:00", "s").astype(np.int64))
END = int(np.datetime64("2024-12-31T23:59:59", "s").astype(np.int64))
FEB29 = int(np.datetime64("2024-02-29T00:00:00", "s").astype(np.int64))
MONTH_ENDS = (np.arange("2023-01", "2025-01", dtype="datetime64[M]") + 1).astype("datetime64[s]").astype(np.int64) - 1

REGIONS, REGION_P = ["NA", "EU", "APAC", "LATAM"], [0.38, 0.32, 0.2, 0.1]
SEGMENTS, SEGMENT_P = ["consumer", "smb", "enterprise"], [0.7, 0.2, 0.1]
STATUSES, STATUS_P = ["completed", "shipped", "cancelled", "returned"], [0.75, 0.1, 0.1, 0.05]
CHANNELS, CHANNEL_P = ["web", "mobile", "store"], [0.5, 0.35, 0.15]
PAGES, PAGE_P = ["home", "search", "product", "cart", "checkout"], [0.25, 0.2, 0.4, 0.1, 0.05]
# Relative traffic per hour of day (UTC): quiet nights, evening peak.
HOUR_W = np.array([2, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 8, 8, 7, 7, 7, 8, 9, 10, 11, 11, 9, 6, 4], float)
FIRST = [
    "Ada", "Ben", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kofi", "Lena",
    "Mateo", "Nina", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tariq", "Uma", "Victor", "Wen", "Yara",
    "Zoe",
]
LAST = [
    "Smith", "Garcia", "Mueller", "Tanaka", "Rossi", "Silva", "Novak", "Kim", "Okafor", "Jensen", "Dubois",
    "Kowalski", "Haddad", "Chen", "Larsen", "Moreau", "Costa", "Ivanova", "Patel", "Brown",
]
ADJECTIVES = ["Classic", "Deluxe", "Eco", "Compact", "Premium", "Everyday", "Vintage", "Smart"]
# category: (share of catalogue, median price, nouns)
CATEGORIES: dict[str, tuple[float, float, list[str]]] = {
    "books": (0.2, 15, ["Novel", "Cookbook", "Atlas", "Biography"]),
    "electronics": (0.15, 120, ["Headphones", "Charger", "Speaker", "Monitor"]),
    "home": (0.15, 40, ["Lamp", "Rug", "Kettle", "Blanket"]),
    "clothing": (0.15, 35, ["Jacket", "Sneakers", "Scarf", "Hoodie"]),
    "toys": (0.1, 25, ["Puzzle", "Robot", "Kite", "Blocks"]),
    "sports": (0.1, 60, ["Yoga Mat", "Racket", "Helmet", "Tent"]),
    "beauty": (0.08, 20, ["Serum", "Lipstick", "Shampoo", "Perfume"]),
    "grocery": (0.07, 8, ["Coffee", "Tea", "Olive Oil", "Honey"]),
}
N_PRODUCTS = 500
INT, TS, STR = "INTEGER", "TIMESTAMP", "VARCHAR"
DBL = "DECIMAL(12, 2)"  # money in cents: exact, so sums are the same whatever the summation order


def _labels(values: list[str], idx: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
    """Category indices -> string array; dictionary decoding keeps it vectorized."""
    indices = pa.array(idx.astype(np.int32), mask=null)
    return pa.DictionaryArray.from_arrays(indices, pa.array(values)).dictionary_decode()


def _pick(rng: np.random.Generator, values: list[str], p: list[float], n: int) -> pa.Array:
    return _labels(values, rng.choice(len(values), size=n, p=p))


def _ts(seconds: np.ndarray) -> pa.Array:
    return pa.array(seconds.astype("datetime64[s]"))


def _after(rng: np.random.Generator, lo: np.ndarray) -> np.ndarray:
    """A random second in (lo, END] per element, reshaped to a realistic hour-of-day profile."""
    t = lo + 1 + np.floor(rng.random(len(lo)) * (END - lo)).astype(np.int64)
    tod = rng.choice(24, size=len(lo), p=HOUR_W / HOUR_W.sum()) * 3600 + rng.integers(0, 3600, len(lo))
    cand = t - (t - START) % DAY + tod
    # Keep the plain draw where reshaping breaks a bound.
    kept: np.ndarray = np.where((cand > lo) & (cand <= END), cand, t)
    return kept


def _write(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table, types: dict[str, str], key: str) -> None:
    """CTAS with explicit column types, ordered by the key so the stored row order is deterministic too."""
    con.register("_src", table)
    cols = ", ".join(f"CAST({c} AS {t}) AS {c}" for c, t in types.items())
    con.execute(f"CREATE TABLE {name} AS SELECT {cols} FROM _src ORDER BY {key}")
    con.unregister("_src")


def _build(con: duckdb.DuckDBPyConnection, n_orders: int, seed: int) -> None:
    rng = np.random.default_rng(seed)

    # customers: ids follow sign-up order. ~30% are the pre-existing base (re-registered in the first 60 days)
    # so 2023 has real volume; the rest sign up evenly, which gives steady order growth over the two years.
    n_cust = max(100, n_orders // 10)
    base = rng.random(n_cust) < 0.3
    spread = np.where(base, rng.random(n_cust) * 60 * DAY, rng.random(n_cust) * (END - START - DAY))
    signup = np.sort(START + spread.astype(np.int64))
    ids = np.arange(1, n_cust + 1)
    first = pa.array(np.array(FIRST)[rng.integers(0, len(FIRST), n_cust)])
    last = pa.array(np.array(LAST)[rng.integers(0, len(LAST), n_cust)])
    email = pc.binary_join_element_wise(  # the id suffix keeps emails unique
        pc.utf8_lower(first), ".", pc.utf8_lower(last), pc.cast(pa.array(ids), pa.string()), "@example.com", "")
    customers = pa.table({
        "customer_id": ids, "name": pc.binary_join_element_wise(first, last, " "), "email": email,
        "region": _labels(REGIONS, rng.choice(4, size=n_cust, p=REGION_P), rng.random(n_cust) < 0.02),
        "segment": _pick(rng, SEGMENTS, SEGMENT_P, n_cust), "signed_up_at": _ts(signup),
    })

    # products: category-dependent log-normal prices, kept in integer cents so order totals are exact.
    cats = list(CATEGORIES)
    cat_idx = np.sort(rng.choice(len(cats), size=N_PRODUCTS, p=[CATEGORIES[c][0] for c in cats]))
    median = np.array([CATEGORIES[c][1] for c in cats])[cat_idx]
    price_cents = np.clip(np.round(np.exp(rng.normal(np.log(median), 0.5)) * 100), 200, 50_000).astype(np.int64)
    adj, noun = rng.integers(0, len(ADJECTIVES), N_PRODUCTS), rng.integers(0, 4, N_PRODUCTS)
    names = [f"{ADJECTIVES[a]} {CATEGORIES[cats[c]][2][k]} {i + 1}"
             for i, (a, c, k) in enumerate(zip(adj, cat_idx, noun, strict=False))]
    products = pa.table({"product_id": np.arange(1, N_PRODUCTS + 1), "name": names,
                         "category": _labels(cats, cat_idx), "price": price_cents / 100})
    popularity = 1.0 / rng.permutation(np.arange(1, N_PRODUCTS + 1)) ** 0.8  # Zipf-like best sellers
    popularity /= popularity.sum()

    # orders: heavy-tailed activity times tenure, so every customer orders at a steady personal rate.
    activity = rng.lognormal(0.0, 0.9, n_cust) * (END - signup)
    activity /= activity.sum()
    n_orphan = max(1, round(n_orders * 0.005)) if n_orders > 1 else 0
    n_normal = n_orders - n_orphan
    cust = rng.choice(n_cust, size=n_normal, p=activity)
    ordered = _after(rng, signup[cust])
    # Edge timestamps (leap day, exact midnight, month-end 23:59:59), each handed to a customer signed up by then.
    k = max(5, n_orders // 10_000), max(10, n_orders // 1_000), max(10, n_orders // 1_000)
    edge_ts = np.concatenate([FEB29 + rng.integers(0, DAY, k[0]),
                              START + rng.integers(1, (END - START) // DAY, k[1]) * DAY,
                              rng.choice(MONTH_ENDS, k[2])])[:n_normal]
    eligible = np.searchsorted(signup, edge_ts, side="left")  # ids are sorted by signup: first `eligible` qualify
    slot = rng.choice(n_normal, size=len(edge_ts), replace=False)
    ok = eligible > 0
    cust[slot[ok]] = np.floor(rng.random(len(edge_ts)) * eligible).astype(np.int64)[ok]
    ordered[slot[ok]] = edge_ts[ok]
    # Orphans point past the last customer id, to exercise LEFT JOINs.
    order_cust = np.concatenate([cust + 1, n_cust + rng.integers(1, 1_000, n_orphan)])
    ordered = np.concatenate([ordered, _after(rng, np.full(n_orphan, START - 1))])
    by_time = np.argsort(ordered, kind="stable")  # order ids increase with time, like a real sequence
    order_cust, ordered = order_cust[by_time], ordered[by_time]

    # order_items: 1-4 lines per order, popularity-weighted products, no product twice in one order.
    item_order = np.repeat(np.arange(n_orders), rng.choice(4, size=n_orders, p=[0.5, 0.25, 0.15, 0.1]) + 1)
    prod = rng.choice(N_PRODUCTS, size=len(item_order), p=popularity)
    while True:  # a few vectorized passes: bump a repeated (order, product) line to the next product
        srt = np.lexsort((prod, item_order))
        dup = np.zeros(len(prod), bool)
        dup[srt[1:]] = (item_order[srt[1:]] == item_order[srt[:-1]]) & (prod[srt[1:]] == prod[srt[:-1]])
        if not dup.any():
            break
        prod[dup] = (prod[dup] + 1) % N_PRODUCTS
    qty = rng.choice(5, size=len(prod), p=[0.6, 0.2, 0.1, 0.06, 0.04]) + 1
    discount = np.where(rng.random(len(prod)) < 0.15, rng.choice([0.1, 0.15, 0.2, 0.3], len(prod)), 0.0)
    unit_cents = np.round(price_cents[prod] * (1 - discount)).astype(np.int64)
    amount_cents = np.bincount(item_order, weights=qty * unit_cents, minlength=n_orders)  # exact below 2**53
    orders = pa.table({
        "order_id": np.arange(1, n_orders + 1), "customer_id": order_cust,
        "status": _pick(rng, STATUSES, STATUS_P, n_orders), "channel": _pick(rng, CHANNELS, CHANNEL_P, n_orders),
        "ordered_at": _ts(ordered), "amount": amount_cents / 100,
    })
    items = pa.table({"order_item_id": np.arange(1, len(prod) + 1), "order_id": item_order + 1,
                      "product_id": prod + 1, "quantity": qty, "unit_price": unit_cents / 100})

    # page_views: ~30% anonymous (anywhere in the range); known visitors browse after signing up.
    n_pv = 3 * n_orders
    anon = rng.random(n_pv) < 0.3
    viewer = rng.choice(n_cust, size=n_pv, p=activity)
    viewed = _after(rng, np.where(anon, START - 1, signup[viewer]))
    by_time = np.argsort(viewed, kind="stable")
    views = pa.table({
        "page_view_id": np.arange(1, n_pv + 1), "customer_id": pa.array(viewer[by_time] + 1, mask=anon[by_time]),
        "product_id": rng.choice(N_PRODUCTS, size=n_pv, p=popularity) + 1, "viewed_at": _ts(viewed[by_time]),
        "page": _pick(rng, PAGES, PAGE_P, n_pv),
    })

    _write(con, "customers", customers, dict(
        customer_id=INT, name=STR, email=STR, region=STR, segment=STR, signed_up_at=TS), "customer_id")
    _write(con, "products", products, dict(product_id=INT, name=STR, category=STR, price=DBL), "product_id")
    _write(con, "orders", orders, dict(
        order_id=INT, customer_id=INT, status=STR, channel=STR, ordered_at=TS, amount=DBL), "order_id")
    _write(con, "order_items", items, dict(
        order_item_id=INT, order_id=INT, product_id=INT, quantity=INT, unit_price=DBL), "order_item_id")
    _write(con, "page_views", views, dict(
        page_view_id=INT, customer_id=INT, product_id=INT, viewed_at=TS, page=STR), "page_view_id")

    # customer_daily_stats: for ~20% of customers, one row per day with an order; the 7 days are that day and
    # the 6 before. Revenue is summed in integer cents so thread scheduling cannot change the float result.
    con.register("_sampled", pa.table({"customer_id": ids[rng.random(n_cust) < 0.2]}))
    stats = con.sql("""
        WITH days AS (
            SELECT DISTINCT customer_id, CAST(date_trunc('day', ordered_at) AS TIMESTAMP) AS day
            FROM orders SEMI JOIN _sampled USING (customer_id))
        SELECT d.customer_id, d.day AS event_timestamp, count(o.order_id) AS orders_7d,
               coalesce(sum(CAST(round(o.amount * 100) AS BIGINT)), 0) / 100 AS revenue_7d
        FROM days d LEFT JOIN orders o
          ON o.customer_id = d.customer_id AND o.status <> 'cancelled'
         AND o.ordered_at >= d.day - INTERVAL 6 DAY AND o.ordered_at < d.day + INTERVAL 1 DAY
        GROUP BY d.customer_id, d.day ORDER BY d.customer_id, d.day""").to_arrow_table()
    con.unregister("_sampled")
    cid, n7, revenue = (stats[c].to_numpy() for c in ("customer_id", "orders_7d", "revenue_7d"))
    event = stats["event_timestamp"].to_numpy().astype("datetime64[s]").astype(np.int64)
    created = event + rng.integers(3_600, 30 * 3_600 + 1, len(event))  # features land 1-30 hours late
    # ~3% of rows are restated later, as if a late order arrived: one more order and a bit more revenue.
    again = np.flatnonzero(rng.random(len(event)) < 0.03)
    restated_at = created[again] + rng.integers(3_600, 7 * DAY, len(again))
    restated_revenue = (np.round(revenue[again] * 100) + rng.integers(500, 20_000, len(again))) / 100
    daily = pa.table({
        "customer_id": np.concatenate([cid, cid[again]]),
        "event_timestamp": _ts(np.concatenate([event, event[again]])),
        "created_timestamp": _ts(np.concatenate([created, restated_at])),
        "orders_7d": np.concatenate([n7, n7[again] + 1]),
        "revenue_7d": np.concatenate([revenue, restated_revenue]),
    })
    _write(con, "customer_daily_stats", daily, dict(
        customer_id=INT, event_timestamp=TS, created_timestamp=TS, orders_7d=INT, revenue_7d=DBL),
        "customer_id, event_timestamp, created_timestamp")

    # inventory_snapshots: stock on hand per product every Monday, a random walk; ~2% of snapshots are missing,
    # as when a count was skipped. Drawn last, so the tables above do not depend on it.
    mondays = np.arange(np.datetime64("2023-01-02"), np.datetime64("2025-01-01"), np.timedelta64(7, "D"))
    steps = rng.integers(-30, 31, (N_PRODUCTS, len(mondays)))
    steps[:, 0] = rng.integers(20, 201, N_PRODUCTS)
    on_hand = np.clip(np.cumsum(steps, axis=1), 0, None)
    kept = rng.random(on_hand.shape) >= 0.02
    product, week = np.nonzero(kept)
    inventory = pa.table({
        "product_id": (product + 1).astype(np.int32),
        "snapshot_date": pa.array(mondays[week].astype("datetime64[D]")),
        "on_hand": on_hand[product, week].astype(np.int32),
    })
    _write(con, "inventory_snapshots", inventory, dict(product_id=INT, snapshot_date="DATE", on_hand=INT),
           "product_id, snapshot_date")

    # Declared after loading (cheaper than checking while inserting); documents each table's grain.
    for table, key in [("customers", "customer_id"), ("products", "product_id"), ("orders", "order_id"),
                       ("order_items", "order_item_id"), ("page_views", "page_view_id")]:
        con.execute(f"ALTER TABLE {table} ADD PRIMARY KEY ({key})")


def _remove(path: Path) -> None:
    for p in (path, path.with_name(path.name + ".wal")):
        p.unlink(missing_ok=True)


def generate(path: str | Path, orders: int = 100_000, seed: int = 7) -> Path:
    """(Re)build the dataset at ``path``: built in a temp file, then renamed, so no reader sees a half-built file."""
    if orders < 1:
        raise ValueError(f"orders must be >= 1, got {orders}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.building")  # unique per build: concurrent builds OK
    try:
        with duckdb.connect(str(tmp)) as con:
            _build(con, orders, seed)
            con.execute("CREATE TABLE generator_info AS SELECT ? AS version, ? AS orders, ? AS seed",
                        [VERSION, orders, seed])
            con.execute("CHECKPOINT")  # fold the WAL into the file before the rename
        path.with_name(path.name + ".wal").unlink(missing_ok=True)  # a stale WAL would be replayed onto the new file
        os.replace(tmp, path)
    finally:
        _remove(tmp)  # after a crash: the partial file; after success: nothing left
    return path


def ensure(path: str | Path, orders: int = 100_000) -> Path:
    """Build the dataset (seed 7) unless ``path`` already holds it: the same generator version and size. A file
    from an older generator (missing tables the model now uses) is rebuilt."""
    path = Path(path)
    return path if _built(path) == (VERSION, orders) else generate(path, orders)


def _built(path: Path) -> tuple[int, int] | None:
    """(generator version, orders) of an existing file, None when missing, unreadable or from before versions."""
    if not path.exists():
        return None
    try:
        with duckdb.connect(str(path), read_only=True) as con:
            row = con.execute("SELECT version, orders FROM generator_info").fetchone()
    except duckdb.Error:
        return None
    return (int(row[0]), int(row[1])) if row else None


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    path = generate(args.out, args.orders, args.seed)
    elapsed = time.perf_counter() - started
    with duckdb.connect(str(path), read_only=True) as con:
        for (table,) in con.execute("SELECT table_name FROM duckdb_tables() ORDER BY table_name").fetchall():
            counted = con.execute(f"SELECT count(*) FROM {table}").fetchone()
            assert counted is not None  # count(*) always returns one row
            print(f"{table:>22}: {counted[0]:>10,}")
    print(f"wrote {path} in {elapsed:.1f}s")


if __name__ == "__main__":
    main()
