"""Running SQL on a warehouse through pooled SQLAlchemy engines.

The seam is the `Warehouse` Protocol; `SqlWarehouse` is its one implementation. Statements go to the driver's own
cursor (never through a parameter-interpolating layer, so a `%` inside a literal stays a `%`). DuckDB answers as
Arrow, its fast path; other drivers answer as rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.pool import QueuePool

from semantic.errors import WarehouseError, WarehouseUnavailableError


@dataclass(frozen=True)
class Table:
    """A result: column names and rows of plain Python values (Decimal becomes float)."""

    names: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def column(self, name: str) -> list[Any]:
        index = self.names.index(name)
        return [row[index] for row in self.rows]


class Warehouse(Protocol):
    identity: str  # what a cache key needs to tell warehouses apart: the URL without its password
    dialect: str  # sqlglot dialect name

    def run(self, sql: str) -> Table: ...

    def arrow(self, sql: str) -> pa.Table: ...

    def close(self) -> None: ...


def _plain(value: Any) -> Any:
    """Decimals become Python numbers: whole ones (DuckDB's HUGEINT sums, NUMERIC(38,0)) ints, others floats."""
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent >= 0 else float(value)  # type: ignore[operator]
    return value


_DIALECTS = {"duckdb": "duckdb", "postgresql": "postgres", "postgres": "postgres", "snowflake": "snowflake",
             "bigquery": "bigquery", "trino": "trino", "databricks": "spark", "spark": "spark"}


class SqlWarehouse:
    """A SQLAlchemy engine with a connection pool; DuckDB files open read-write in this process only."""

    def __init__(self, url: str, *, pool_size: int = 4, read_only: bool = False) -> None:
        parsed = sa.make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we install
        backend = parsed.get_backend_name()
        if backend not in _DIALECTS:
            raise WarehouseError(f"unsupported warehouse URL {parsed.render_as_string(hide_password=True)!r}; "
                                 f"use duckdb:///path.duckdb or postgresql://user@host/db")
        self.dialect = _DIALECTS[backend]
        self.identity = parsed.render_as_string(hide_password=True)
        kwargs: dict[str, Any] = {"poolclass": QueuePool, "pool_size": pool_size, "max_overflow": pool_size,
                                  "pool_pre_ping": self.dialect != "duckdb"}
        if self.dialect == "duckdb":
            database = parsed.database or ":memory:"
            if database != ":memory:" and not Path(database).exists():
                raise WarehouseUnavailableError(f"DuckDB file {database} does not exist")
            kwargs["connect_args"] = {"read_only": read_only, "config": {"autoinstall_known_extensions": False}}
        self.engine = sa.create_engine(parsed, **kwargs)

    def _raw(self) -> Any:
        try:
            return self.engine.raw_connection()
        except sa.exc.SQLAlchemyError as error:
            raise WarehouseUnavailableError(f"cannot connect to {self.identity}: {_first_line(error)}") from None

    def arrow(self, sql: str) -> pa.Table:
        if self.dialect != "duckdb":
            table = self.run(sql)
            return pa.Table.from_pylist([dict(zip(table.names, row, strict=True)) for row in table.rows])
        raw = self._raw()
        try:
            return raw.driver_connection.sql(sql).to_arrow_table()
        except Exception as error:  # noqa: BLE001 - every driver error becomes a WarehouseError
            raise WarehouseError(f"the warehouse refused the query: {_first_line(error)}") from None
        finally:
            raw.close()

    def run(self, sql: str) -> Table:
        if self.dialect == "duckdb":
            arrow = self.arrow(sql)
            columns = [[_plain(v) for v in col.to_pylist()] for col in arrow.columns]
            return Table(tuple(arrow.column_names), tuple(zip(*columns, strict=True)) if columns else ())
        raw = self._raw()
        try:
            cursor = raw.driver_connection.cursor()
            cursor.execute(sql)
            names = tuple(d[0] for d in cursor.description or ())
            rows = tuple(tuple(_plain(v) for v in row) for row in cursor.fetchall())
            raw.driver_connection.rollback()  # read-only work; leave no transaction open in the pool
            return Table(names, rows)
        except Exception as error:  # noqa: BLE001 - every driver error becomes a WarehouseError
            try:
                raw.driver_connection.rollback()
            except Exception:  # noqa: BLE001, S110 - the connection is discarded below anyway
                pass
            raise WarehouseError(f"the warehouse refused the query: {_first_line(error)}") from None
        finally:
            raw.close()

    def close(self) -> None:
        self.engine.dispose()


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
