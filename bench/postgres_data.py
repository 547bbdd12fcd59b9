"""The example data in PostgreSQL, for benchmarks: a database per data file, filled once from the DuckDB file as
Arrow by ADBC's bulk ingest (binary COPY), with the keys and the time columns indexed and the tables analysed."""

from __future__ import annotations

from pathlib import Path

import duckdb

SERVER = "postgresql://postgres@127.0.0.1:5432"
TABLES = ("customers", "products", "orders", "order_items", "page_views", "customer_daily_stats",
          "inventory_snapshots")
INDEXES = ("orders (customer_id, ordered_at)", "page_views (customer_id, viewed_at)",
           "customer_daily_stats (customer_id, event_timestamp)", "customers (customer_id)")




def postgres_copy(path: Path) -> str:
    """The URL of a PostgreSQL database holding `path`'s tables (made on first use, reused after)."""
    import adbc_driver_postgresql.dbapi as pg

    name = "bench_" + path.stem.replace("-", "_")
    with pg.connect(f"{SERVER}/postgres", autocommit=True) as admin, admin.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM pg_database WHERE datname = '{name}'")
        exists = cursor.fetchall()[0][0] == 1
        if not exists:
            cursor.execute(f"CREATE DATABASE {name}")
    url = f"{SERVER}/{name}"
    if exists:
        return url
    with duckdb.connect(str(path), read_only=True) as source, pg.connect(url) as target:
        with target.cursor() as cursor:
            present = {t for (t,) in source.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            for table in (t for t in TABLES if t in present):
                cursor.adbc_ingest(table, source.sql(f"SELECT * FROM {table}").to_arrow_table(), mode="create")
            for index in INDEXES:
                cursor.execute(f"CREATE INDEX ON {index}")
        target.commit()
    with pg.connect(url, autocommit=True) as target, target.cursor() as cursor:
        cursor.execute("ANALYZE")
    return url
