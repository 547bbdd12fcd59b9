"""The warehouse seam: a statement past the time limit is cancelled with TIMEOUT, and the pool stays usable."""

from __future__ import annotations

import pytest

from semantic.errors import WarehouseError, WarehouseTimeoutError
from semantic.execute import SqlWarehouse

SLOW = {"duckdb": "SELECT COUNT(*) FROM range(100000000000) a",
        "postgres": "SELECT pg_sleep(5)"}


def test_a_slow_statement_times_out(warehouse_url: str) -> None:
    warehouse = SqlWarehouse(warehouse_url, timeout=0.3)
    try:
        with pytest.raises(WarehouseTimeoutError, match=r"0\.3 s limit") as error:
            warehouse.run(SLOW[warehouse.dialect])
        assert error.value.code == "TIMEOUT"
        assert warehouse.run("SELECT 1 AS one").rows == ((1,),)  # the connection is fine afterwards
    finally:
        warehouse.close()


def test_a_refused_statement_is_a_warehouse_error(warehouse_url: str) -> None:
    warehouse = SqlWarehouse(warehouse_url)
    try:
        with pytest.raises(WarehouseError, match="refused") as error:
            warehouse.run("SELECT * FROM no_such_table")
        assert not isinstance(error.value, WarehouseTimeoutError)
        assert warehouse.run("SELECT 2 AS two").rows == ((2,),)
    finally:
        warehouse.close()
