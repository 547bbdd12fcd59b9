"""`connect(url)`: the warehouse a URL names. `sc://host:port` is Spark Connect; every other URL is SQLAlchemy's
(duckdb, postgresql, trino, snowflake, bigquery, databricks), its driver checked first so a missing one is named
with the package that brings it."""

from __future__ import annotations

import importlib.util

import sqlalchemy as sa

from semantic.errors import WarehouseError, WarehouseUnavailableError
from semantic.execute import SqlWarehouse, Warehouse

# The SQLAlchemy dialects we render SQL for and do not install: the module each needs, and its package.
DRIVERS = {"trino": ("trino", "trino"), "snowflake": ("snowflake.sqlalchemy", "snowflake-sqlalchemy"),
           "bigquery": ("sqlalchemy_bigquery", "sqlalchemy-bigquery"),
           "databricks": ("databricks.sqlalchemy", "databricks-sqlalchemy")}


def connect(url: str, *, read_only: bool = False, timeout: float | None = 60.0) -> Warehouse:
    if url.startswith("sc://"):
        from semantic.spark import SparkWarehouse

        return SparkWarehouse(url, timeout=timeout)
    try:
        backend = sa.make_url(url).get_backend_name()
    except sa.exc.ArgumentError:
        raise WarehouseError(f"{url!r} is not a warehouse URL; use duckdb:///path.duckdb, "
                             f"postgresql://user@host/db, sc://host:port or a SQLAlchemy URL") from None
    if backend in DRIVERS:
        module, package = DRIVERS[backend]
        if not _importable(module):
            raise WarehouseUnavailableError(f"the {backend} driver is not installed: pip install {package}")
    return SqlWarehouse(url, read_only=read_only, timeout=timeout)


def _importable(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False
