"""`connect(url)`: each URL to its warehouse, and a missing driver named with the package to install."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from semantic.errors import WarehouseError, WarehouseUnavailableError
from semantic.execute import SqlWarehouse
from semantic.warehouses import DRIVERS, connect


@pytest.mark.parametrize("url", ["trino://user@localhost:8080/hive", "snowflake://user:secret@account/db",
                                 "bigquery://project/dataset", "databricks://token:secret@host?http_path=/sql"])
def test_missing_driver_names_its_package(url: str) -> None:
    backend = url.split(":", 1)[0]
    module, package = DRIVERS[backend]
    try:
        installed = importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        installed = False
    if installed:
        pytest.skip(f"{module} is installed here")
    with pytest.raises(WarehouseUnavailableError, match=f"pip install {package}") as caught:
        connect(url)
    assert "secret" not in caught.value.message


def test_duckdb_and_bad_urls(duckdb_path: Path) -> None:
    warehouse = connect(f"duckdb:///{duckdb_path}", read_only=True)
    try:
        assert isinstance(warehouse, SqlWarehouse) and warehouse.dialect == "duckdb"
        assert warehouse.run("SELECT COUNT(*) AS n FROM orders").rows[0][0] > 0
    finally:
        warehouse.close()
    with pytest.raises(WarehouseError, match="not a warehouse URL"):
        connect("no url at all")
