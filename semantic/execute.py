"""Running SQL on a warehouse through pooled SQLAlchemy engines.

The seam is the `Warehouse` Protocol; `SqlWarehouse` is its one implementation. Statements go to the driver's own
cursor (never through a parameter-interpolating layer, so a `%` inside a literal stays a `%`). DuckDB answers as
Arrow, its fast path; other drivers answer as rows.
"""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import pyarrow as pa
import pyarrow.csv as pa_csv
import sqlalchemy as sa
from sqlalchemy.pool import QueuePool
from sqlglot import exp

from semantic.errors import WarehouseError, WarehouseTimeoutError, WarehouseUnavailableError


@dataclass(frozen=True)
class Table:
    """A result: column names and rows of plain Python values (Decimal becomes float)."""

    names: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def column(self, name: str) -> list[Any]:
        index = self.names.index(name)
        return [row[index] for row in self.rows]

    @classmethod
    def of(cls, arrow: pa.Table) -> Table:
        """An Arrow table's rows as plain Python values; decimal columns are converted whole (a cast per column,
        not a Python call per value: cached answers are converted on every hit)."""
        columns = [_plain_column(col) for col in arrow.columns]
        return cls(tuple(arrow.column_names), tuple(zip(*columns, strict=True)) if columns else ())


class Warehouse(Protocol):
    identity: str  # what a cache key needs to tell warehouses apart: the URL without its password
    dialect: str  # sqlglot dialect name

    def run(self, sql: str) -> Table: ...

    def arrow(self, sql: str) -> pa.Table: ...

    def arrow_with(self, sql: str, tables: Mapping[str, pa.Table]) -> pa.Table:
        """Run one statement that reads `tables`, each visible under its name for this statement only."""
        ...

    def close(self) -> None: ...


def _plain(value: Any) -> Any:
    """Decimals become Python numbers: whole ones (DuckDB's HUGEINT sums, NUMERIC(38,0)) ints, others floats."""
    if isinstance(value, Decimal):
        return int(value) if value.as_tuple().exponent >= 0 else float(value)  # type: ignore[operator]
    return value


def _plain_column(column: pa.ChunkedArray) -> list[Any]:
    """A column as Python values, decimals as `_plain` makes them: whole ones ints, others floats."""
    kind = column.type
    if pa.types.is_decimal(kind):
        if kind.scale > 0:
            return column.cast(pa.float64()).to_pylist()  # type: ignore[no-any-return]
        if kind.precision <= 18:
            return column.cast(pa.int64()).to_pylist()  # type: ignore[no-any-return]
        return [_plain(v) for v in column.to_pylist()]  # past int64: Python ints
    return column.to_pylist()  # type: ignore[no-any-return]


def _array(values: list[Any]) -> pa.Array:
    """A column of driver values; decimals that Arrow cannot hold exactly (precision past 76) become numbers."""
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([_plain(v) for v in values])


_DIALECTS = {"duckdb": "duckdb", "postgresql": "postgres", "postgres": "postgres", "snowflake": "snowflake",
             "bigquery": "bigquery", "trino": "trino", "databricks": "spark", "spark": "spark"}


class SqlWarehouse:
    """A SQLAlchemy engine with a connection pool; DuckDB files open read-write in this process only."""

    def __init__(self, url: str, *, pool_size: int = 4, read_only: bool = False, timeout: float | None = 60.0
                 ) -> None:
        self.timeout = timeout  # seconds a statement may run before it is cancelled (TIMEOUT); None: no limit
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
            # The session's zone is UTC whatever the process's TZ (docs/time.md); the SQL names its zones anyway.
            kwargs["connect_args"] = {"read_only": read_only,
                                      "config": {"autoinstall_known_extensions": False, "TimeZone": "UTC"}}
        elif self.dialect == "postgres":  # the server cancels a statement past the limit
            limit = f" -c statement_timeout={int(timeout * 1000)}" if timeout else ""
            kwargs["connect_args"] = {"options": f"-c TimeZone=UTC{limit}"}
        self.engine = sa.create_engine(parsed, **kwargs)

    def _raw(self) -> Any:
        try:
            raw = self.engine.raw_connection()
        except Exception as error:  # noqa: BLE001 - the pool lets the driver's own errors through unwrapped
            raise WarehouseUnavailableError(f"cannot connect to {self.identity}: {_first_line(error)}") from None
        return raw

    @contextmanager
    def _deadline(self, connection: Any) -> Iterator[None]:
        """DuckDB has no statement timeout: a timer interrupts the connection when the limit passes. Either way a
        cancelled statement becomes a TIMEOUT error, any other failure a WarehouseError."""
        timer = None
        if self.dialect == "duckdb" and self.timeout:
            timer = threading.Timer(self.timeout, connection.interrupt)
            timer.start()
        try:
            yield
        except WarehouseError:
            raise
        except Exception as error:  # noqa: BLE001 - every driver error becomes a WarehouseError
            fired = timer is not None and not timer.is_alive()
            if fired or type(error).__name__ in ("QueryCanceled", "InterruptException"):
                raise WarehouseTimeoutError(f"the query ran longer than the {self.timeout:g} s limit and was "
                                            f"cancelled; narrow it (a filter, fewer dimensions) or raise the "
                                            f"limit") from None
            raise WarehouseError(f"the warehouse refused the query: {_first_line(error)}") from None
        finally:
            if timer is not None:
                timer.cancel()

    def arrow(self, sql: str) -> pa.Table:
        if self.dialect != "duckdb":
            # By columns, so an empty answer keeps its column names; Decimals stay decimals, so sums of them
            # re-aggregate exactly.
            names, rows = self._fetch(sql)
            return pa.table({name: _array([row[i] for row in rows]) for i, name in enumerate(names)})
        raw = self._raw()
        try:
            with self._deadline(raw.driver_connection):
                return raw.driver_connection.sql(sql).to_arrow_table()
        finally:
            raw.close()

    def arrow_with(self, sql: str, tables: Mapping[str, pa.Table]) -> pa.Table:
        """`tables` reach the warehouse as tables, never as literals: DuckDB scans the Arrow data where it lies
        (`register`); PostgreSQL gets TEMP tables filled by COPY, in the statement's own transaction, which the
        rollback at the end drops. All on one connection checkout."""
        raw = self._raw()
        connection = raw.driver_connection
        try:
            with self._deadline(connection):
                if self.dialect == "duckdb":
                    try:
                        for name, table in tables.items():
                            connection.register(name, table)
                        return connection.sql(sql).to_arrow_table()
                    finally:
                        for name in tables:
                            connection.unregister(name)
                cursor = connection.cursor()
                for name, table in tables.items():
                    _copy_in(cursor, name, table, self.dialect)
                cursor.execute(sql)
                return _arrow_of(cursor)
        finally:
            if self.dialect != "duckdb":
                try:
                    connection.rollback()  # drops the TEMP tables; leaves no transaction open in the pool
                except Exception:  # noqa: BLE001, S110 - the connection is discarded below anyway
                    pass
            raw.close()

    def run(self, sql: str) -> Table:
        if self.dialect == "duckdb":
            return Table.of(self.arrow(sql))
        names, rows = self._fetch(sql)
        return Table(names, tuple(tuple(_plain(v) for v in row) for row in rows))

    def _fetch(self, sql: str) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        """Column names and rows as the driver gives them (Decimals kept)."""
        raw = self._raw()
        try:
            with self._deadline(raw.driver_connection):
                cursor = raw.driver_connection.cursor()
                cursor.execute(sql)
                return tuple(d[0] for d in cursor.description or ()), cursor.fetchall()
        finally:
            try:
                raw.driver_connection.rollback()  # read-only work; leave no transaction open in the pool
            except Exception:  # noqa: BLE001, S110 - a broken connection is discarded by the pool anyway
                pass
            raw.close()

    def close(self) -> None:
        self.engine.dispose()


_SQL_TYPES = ((pa.types.is_boolean, exp.DataType.Type.BOOLEAN), (pa.types.is_integer, exp.DataType.Type.BIGINT),
              (pa.types.is_floating, exp.DataType.Type.DOUBLE), (pa.types.is_decimal, exp.DataType.Type.DECIMAL),
              (pa.types.is_timestamp, exp.DataType.Type.TIMESTAMP), (pa.types.is_date, exp.DataType.Type.DATE),
              (pa.types.is_string, exp.DataType.Type.TEXT), (pa.types.is_large_string, exp.DataType.Type.TEXT))


def _sql_type(kind: pa.DataType) -> exp.DataType:
    for test, sql_type in _SQL_TYPES:
        if test(kind):
            return exp.DataType.build(sql_type)
    raise WarehouseError(f"cannot send an Arrow column of type {kind} to the warehouse")


def _copy_in(cursor: Any, name: str, table: pa.Table, dialect: str) -> None:
    """CREATE TEMPORARY TABLE with the Arrow table's columns, then COPY its rows in as CSV (nulls unquoted)."""
    columns = [exp.ColumnDef(this=exp.to_identifier(f.name, quoted=True), kind=_sql_type(f.type))
               for f in table.schema]
    target = exp.Table(this=exp.to_identifier(name, quoted=True))
    create = exp.Create(this=exp.Schema(this=target, expressions=columns), kind="TABLE",
                        properties=exp.Properties(expressions=[exp.TemporaryProperty()]))
    cursor.execute(create.sql(dialect=dialect))
    copy = exp.Copy(this=exp.Schema(this=target.copy(), expressions=[c.this.copy() for c in columns]), kind=True,
                    files=[exp.var("STDIN")], params=[exp.CopyParameter(this=exp.var("FORMAT"),
                                                                          expression=exp.var("csv"))])
    data = io.BytesIO()
    pa_csv.write_csv(table, data, pa_csv.WriteOptions(include_header=False))
    with cursor.copy(copy.sql(dialect=dialect)) as stream:
        stream.write(data.getbuffer())
    cursor.execute(exp.Analyze(tables=[target.copy()]).sql(dialect=dialect))  # a TEMP table has no statistics


def _arrow_of(cursor: Any) -> pa.Table:
    """A cursor's rows as Arrow columns; each column's type is inferred from its values (all-null: type null)."""
    names = [d[0] for d in cursor.description or ()]
    rows = cursor.fetchall()
    columns = list(zip(*rows, strict=True)) if rows else [() for _ in names]
    return pa.table({name: pa.array(values) for name, values in zip(names, columns, strict=True)})


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
