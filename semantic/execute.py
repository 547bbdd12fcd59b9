"""Running SQL on a warehouse through pooled SQLAlchemy engines.

The seam is the `Warehouse` Protocol; `SqlWarehouse` implements it over SQLAlchemy URLs (`semantic.spark` over Spark
Connect; `semantic.warehouses.connect` picks one). Statements go to the driver's own cursor (never through a
parameter-interpolating layer, so a `%` inside a literal stays a `%`). DuckDB answers as Arrow; PostgreSQL through
ADBC, Arrow end to end (spines in by binary COPY); other drivers answer as rows.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote, urlencode

import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa
from sqlalchemy.pool import QueuePool
from sqlglot import exp

from semantic import settings
from semantic.errors import (
    LimitError,
    WarehouseBusyError,
    WarehouseError,
    WarehouseTimeoutError,
    WarehouseUnavailableError,
)


@dataclass(frozen=True)
class Table:
    """A result: column names and rows of plain Python values (Decimal becomes float unless kept `exact`)."""

    names: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def column(self, name: str) -> list[Any]:
        index = self.names.index(name)
        return [row[index] for row in self.rows]

    @classmethod
    def of(cls, arrow: pa.Table, exact: bool | Sequence[bool] = False) -> Table:
        """An Arrow table's rows as plain Python values; decimal columns are converted whole (a cast per column,
        not a Python call per value: cached answers are converted on every hit), or with `exact` kept as
        `Decimal` (for consumers that type them exactly: GraphQL's `Decimal`): every column, or column by column
        (one flag each)."""
        flags = [exact] * arrow.num_columns if isinstance(exact, bool) else exact
        columns = [_plain_column(col, keep) for col, keep in zip(arrow.columns, flags, strict=True)]
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


def _plain_column(column: pa.ChunkedArray, exact: bool = False) -> list[Any]:
    """A column as Python values, decimals as `_plain` makes them: whole ones ints, others floats (`exact`:
    `Decimal`)."""
    kind = column.type
    if pa.types.is_decimal(kind):
        if kind.scale > 0 and exact:
            return column.to_pylist()  # type: ignore[no-any-return]
        if kind.scale > 0:
            # Through text: Arrow's direct decimal -> double cast is not correctly rounded (4949314.81 came
            # back 4949314.8100000005); parsing the decimal's digits is, and stays vectorised.
            return column.cast(pa.string()).cast(pa.float64()).to_pylist()  # type: ignore[no-any-return]
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
    """A SQLAlchemy engine with a connection pool. Sessions only read: DuckDB files open read-only with file access
    and configuration locked; PostgreSQL sessions default to read-only transactions with standard strings pinned.
    Pool size, pool wait, DuckDB's memory and threads come from `semantic.settings` unless given."""

    def __init__(self, url: str, *, pool_size: int | None = None, read_only: bool = True,
                 timeout: float | None = 60.0, pool_timeout: float | None = None) -> None:
        config = settings.current()
        self.timeout = timeout  # seconds a statement may run before it is cancelled (TIMEOUT); None: no limit
        self.pool_timeout = config.pool_timeout if pool_timeout is None else pool_timeout
        parsed = sa.make_url(url)
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # psycopg 3 is the driver we install
        backend = parsed.get_backend_name()
        if backend not in _DIALECTS:
            raise WarehouseError(f"unsupported warehouse URL scheme {parsed.drivername!r}; use "
                                 f"duckdb:///path.duckdb or postgresql://user@host/db")
        self.dialect = _DIALECTS[backend]
        self.identity = parsed.render_as_string(hide_password=True)
        self.work_mem = config.postgres_work_mem
        size = config.pool_size if pool_size is None else pool_size
        kwargs: dict[str, Any] = {"poolclass": QueuePool, "pool_size": size, "max_overflow": size,
                                  "pool_timeout": self.pool_timeout, "pool_pre_ping": self.dialect != "duckdb"}
        if self.dialect == "duckdb":
            database = parsed.database or ":memory:"
            if database != ":memory:" and not Path(database).exists():
                raise WarehouseUnavailableError("the DuckDB file does not exist",
                                                detail=f"DuckDB file {database} does not exist")
            kwargs["connect_args"] = {"read_only": read_only and database != ":memory:",
                                      "config": duckdb_config(config.duckdb_memory_limit, config.duckdb_threads)}
        elif self.dialect == "postgres":
            kwargs["connect_args"] = {"options": postgres_options(timeout), "connect_timeout": 10}
        self.engine = sa.create_engine(parsed, **kwargs)
        self._arrow_pool: QueuePool | None = None
        self._arrow_capacity = 2 * size  # pool_size kept open, as many again opened under load
        self._split_lock = threading.Lock()
        if self.dialect == "postgres":  # answers and spines through ADBC: Arrow end to end, binary COPY
            uri = _libpq_uri(parsed, timeout)
            self._arrow_pool = QueuePool(lambda: _adbc_connect(uri), pool_size=size, max_overflow=size,
                                         timeout=self.pool_timeout)
            sa.event.listen(self._arrow_pool, "connect", _mark_fresh)
            sa.event.listen(self._arrow_pool, "checkout", _ping)

    def _raw(self) -> Any:
        try:
            raw = self._arrow_pool.connect() if self._arrow_pool is not None else self.engine.raw_connection()
        except sa.exc.TimeoutError:
            raise WarehouseBusyError(f"every warehouse connection stayed busy for {self.pool_timeout:g} s; try "
                                     f"again shortly (pool_size and pool_timeout set how many and how long)"
                                     ) from None
        except Exception as error:  # noqa: BLE001 - the pool lets the driver's own errors through unwrapped
            raise WarehouseUnavailableError(f"cannot connect to the {self.dialect} warehouse; the server log has "
                                            f"the details", detail=_first_line(error)) from None
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
            cancelled = type(error).__name__ in ("QueryCanceled", "InterruptException") or "57014" in str(error)
            if fired or cancelled:
                raise WarehouseTimeoutError(f"the query ran longer than the {self.timeout:g} s limit and was "
                                            f"cancelled; narrow it (a filter, fewer dimensions) or raise the "
                                            f"limit") from None
            raise classify(error, self.dialect) from None
        finally:
            if timer is not None:
                timer.cancel()

    def arrow(self, sql: str) -> pa.Table:
        return self.arrow_with(sql, {})

    def arrow_with(self, sql: str, tables: Mapping[str, pa.Table]) -> pa.Table:
        """`tables` reach the warehouse as tables, never as literals: DuckDB scans the Arrow data where it lies
        (`register`); PostgreSQL gets TEMP tables filled by binary COPY (ADBC's bulk ingest), in the statement's
        own transaction, which the rollback at the end drops. All on one connection checkout."""
        return self.arrow_all([sql], tables)[0]

    def arrow_all(self, sqls: Sequence[str], tables: Mapping[str, pa.Table]) -> list[pa.Table]:
        """Statements reading `tables` (as `arrow_with`), one after another in one transaction: one snapshot of
        the data for all of them. On PostgreSQL a statement over a table marked `SPLIT_BY` may run in parts, on
        several connections at once (`_split`)."""
        if self._arrow_pool is not None and len(sqls) == 1 and _marked(tables):
            return [self._split(sqls[0], tables)]
        tables = {name: _unmarked(table) for name, table in tables.items()}
        raw = self._raw()
        connection = raw.driver_connection
        try:
            with self._discarding_lost(raw), self._deadline(connection):
                if self.dialect == "duckdb":
                    try:
                        for name, table in tables.items():
                            connection.register(name, table)
                        if len(sqls) == 1:
                            return [connection.sql(sqls[0]).to_arrow_table()]
                        connection.begin()
                        try:
                            return [connection.sql(sql).to_arrow_table() for sql in sqls]
                        finally:
                            connection.rollback()  # it only read
                    finally:
                        for name in tables:
                            connection.unregister(name)
                if self._arrow_pool is None:  # another SQLAlchemy driver: rows, by columns
                    if tables or len(sqls) != 1:
                        raise WarehouseError(f"sending tables to {self.dialect} is not supported")
                    cursor = connection.cursor()
                    cursor.execute(sqls[0])
                    names, rows = [d[0] for d in cursor.description or ()], cursor.fetchall()
                    return [pa.table({name: _array([row[i] for row in rows]) for i, name in enumerate(names)})]
                return [_decimals(answer) for answer in self._postgres(connection, sqls, tables)]
        finally:
            self._release(raw)

    def _postgres(self, connection: Any, sqls: Sequence[str], tables: Mapping[str, pa.Table],
                  begin: Sequence[str] = (), *, arrays: bool | None = None,
                  stop: threading.Event | None = None) -> list[pa.Table]:
        """The statements on an ADBC connection, in its current transaction (`begin` first): the tables in by
        binary COPY as TEMP tables, which the caller's rollback drops; answers as ADBC gives them. `arrays`: the
        statement reads per-key arrays (default: a table of `PREFIX_MIN_ROWS` rows or more). `stop`, once set,
        ends the work before its next statement (a sibling part failed)."""
        cursor = connection.cursor()

        def execute(statement: str) -> None:
            if stop is not None and stop.is_set():
                raise WarehouseError("stopped: another part of the statement failed")
            cursor.execute(statement)

        try:
            for statement in begin:
                execute(statement)
            if tables:  # the TEMP tables are this layer's own writes: the transaction turns read-only
                execute("SET TRANSACTION READ WRITE")  # (allowed mid-transaction) once they are in
            for name, table in tables.items():
                cursor.adbc_ingest(name, table, mode="create", temporary=True)
                execute(exp.Analyze(tables=[exp.to_table(name, quoted=True)]).sql("postgres"))
            if tables:  # a training set: settings for its statement only (SET LOCAL, as set_config's true)
                execute(_TRAINING_SETTINGS.format(work_mem=exp.Literal.string(self.work_mem).sql("postgres")))
                if arrays if arrays is not None else max(t.num_rows for t in tables.values()) >= PREFIX_MIN_ROWS:
                    execute(_ARRAYS_SETTINGS)
                execute("SET transaction_read_only = on")
            answers = []
            for sql in sqls:  # ADBC runs them in one transaction, which the caller's rollback ends
                execute(sql)
                answers.append(cursor.fetch_arrow_table())
            return answers
        finally:
            cursor.close()

    def _release(self, raw: Any) -> None:
        if self.dialect != "duckdb" and raw.is_valid:
            try:
                raw.driver_connection.rollback()  # drops the TEMP tables; leaves no transaction open in the pool
            except Exception:  # noqa: BLE001 - a connection that cannot roll back is not reused
                raw.invalidate()
        raw.close()

    def _spares(self, wanted: int) -> list[Any]:
        """Up to `wanted` more connections, only those the pool has without waiting: none past its capacity, and
        none once one cannot be had at once (another caller took the last meanwhile, or the server refuses more)."""
        spares: list[Any] = []
        with self._split_lock:  # two splitting callers do not count the same spare connection
            while len(spares) < wanted and self._arrow_pool is not None and (
                    self._arrow_pool.checkedout() < self._arrow_capacity):
                try:
                    spares.append(self._raw())
                except WarehouseError:
                    break
        return spares

    def _split(self, sql: str, tables: Mapping[str, pa.Table]) -> pa.Table:
        """One statement over the table marked `SPLIT_BY` (its rows answered each on its own), in parts on as many
        connections at once, the answers put one after another: PostgreSQL runs a statement in one process (a
        TEMP table keeps parallel workers out), so a 1M-row training set in two parts uses two cores.

        The table's values of its `SPLIT_BY` column are dealt round by dense rank into as many parts as there are
        connections: up to `postgres_training_connections`, the first taken as any statement's, the others only
        if the pool has them spare (`_spares`); tables under `SPLIT_MIN_ROWS` rows stay whole. All parts read one
        snapshot: the first connection's REPEATABLE READ transaction exports it, the others import it before their
        first query. A failed part stops and cancels the others; its error is the answer."""
        name, = (n for n, t in tables.items() if (t.schema.metadata or {}).get(SPLIT_BY))
        column = (tables[name].schema.metadata or {})[SPLIT_BY].decode()
        table = _unmarked(tables[name])
        arrays = table.num_rows >= PREFIX_MIN_ROWS  # the statement's form follows the whole table, not a part
        wanted = settings.current().postgres_training_connections if table.num_rows >= SPLIT_MIN_ROWS else 1
        raws = [self._raw()]
        stop = threading.Event()
        threads: list[threading.Thread] = []
        try:
            raws += self._spares(wanted - 1)
            # Dense ranks dealt round: every value in one part, and neighbouring keys (which may share a history's
            # size: the example's low customer ids have 2.5x the orders of the high ones) in different parts.
            part = pc.remainder(pc.rank(table.column(column), sort_keys="ascending", tiebreaker="dense"), len(raws))
            parts = [{**tables, name: table.filter(pc.equal(part, i))} for i in range(len(raws))]
            answers: list[list[pa.Table] | None] = [None] * len(raws)
            failures: list[BaseException] = []
            begins: list[list[str]] = [[]]
            if len(raws) > 1:
                first = raws[0].driver_connection
                with self._discarding_lost(raws[0]), self._deadline(first):
                    for raw in raws:  # a fresh transaction each (a connection just opened read the types in one)
                        raw.driver_connection.rollback()
                    cursor = first.cursor()
                    try:
                        cursor.execute(_REPEATABLE)
                        cursor.execute("SELECT pg_export_snapshot()")
                        snapshot = cursor.fetchall()[0][0]
                    finally:
                        cursor.close()
                begins = [[_SERIAL], *[[_REPEATABLE, f"SET TRANSACTION SNAPSHOT "
                                        f"{exp.Literal.string(snapshot).sql('postgres')}", _SERIAL]] * (len(raws) - 1)]

            def run(i: int) -> None:
                try:
                    with self._discarding_lost(raws[i]), self._deadline(raws[i].driver_connection):
                        answers[i] = self._postgres(raws[i].driver_connection, [sql], parts[i], begins[i],
                                                    arrays=arrays, stop=stop)
                except BaseException as error:  # noqa: BLE001 - reported below, the other parts stopped
                    failures.append(error)
                    stop.set()
                    for other, raw in enumerate(raws):
                        if other != i and answers[other] is None:
                            try:
                                raw.driver_connection.adbc_cancel()
                            except Exception:  # noqa: BLE001, S110 - it may have finished meanwhile
                                pass

            threads = [threading.Thread(target=run, args=(i,), name=f"part-{i}") for i in range(1, len(raws))]
            for thread in threads:
                thread.start()
            run(0)
            for thread in threads:
                thread.join()
            if failures:
                raise failures[0]
            return _decimals(pa.concat_tables([a[0] for a in answers if a is not None]))
        finally:
            stop.set()  # no part starts another statement; then none is using its connection when it goes back
            for thread, raw in zip(threads, raws[1:], strict=False):
                if thread.is_alive():  # only when interrupted (KeyboardInterrupt) while they ran
                    raw.driver_connection.adbc_cancel()
                    thread.join()
            for raw in raws:
                self._release(raw)

    @staticmethod
    @contextmanager
    def _discarding_lost(raw: Any) -> Iterator[None]:
        """A statement that lost its connection (the warehouse stopped or restarted) discards it rather than
        return it to the pool (whose reset would fail on it too); the others pooled beside it are caught by the
        ping at checkout (`_ping`)."""
        try:
            yield
        except WarehouseUnavailableError:
            raw.invalidate()
            raise

    def run(self, sql: str) -> Table:
        return Table.of(self.arrow(sql))

    def close(self) -> None:
        self.engine.dispose()
        if self._arrow_pool is not None:
            self._arrow_pool.dispose()


# PostgreSQL training sets of this many spine rows or more read per-key sorted arrays (`semantic/features/build.py`),
# which cost a sort of every source whole (~5 s for the example's 1M orders and 3M page views); smaller ones range
# joins, which cost per spine row (10k rows: 0.4 s by range joins, 5 s by arrays; 100k 2.4 s and 5 s; 1M 44 s and 9 s).
PREFIX_MIN_ROWS = 250_000
# A training-set statement sorts or hashes what it reads: with enough work_mem (1M orders take ~110 MB) no sort
# spills. The arrays read whole tables, so without plain index scans none is read in key order by random heap
# fetches, which the planner costs as cached (4-8 s against ~1 s for a sequential scan and a sort of 1M orders); the
# range joins of a small spine want them (100k rows: 2.4 s with, 3.2 s without).
_TRAINING_SETTINGS = "SELECT set_config('work_mem', {work_mem}, true)"
_ARRAYS_SETTINGS = "SELECT set_config('enable_indexscan', 'off', true)"
# The parts already take the cores: a parallel plan beside them made each part's scans several times slower (a
# count over 3M rows: 0.4 s alone with two workers, 3.8 s with another such query beside it; 1.0 and 1.3 s serial).
_SERIAL = "SELECT set_config('max_parallel_workers_per_gather', '0', true)"
# Read-write (for the TEMP tables) must be set before a REPEATABLE READ transaction's first query.
_REPEATABLE = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ WRITE"
# A registered table whose schema metadata holds SPLIT_BY (a column name): the statement over it answers each of its
# rows on its own and reads only the other tables' rows whose keys are among that column's values (a training set's
# spine, `semantic/features/training.py`), so it may run in parts, each with some of those values (`_split`).
SPLIT_BY = b"split_by"
# Smaller spines in one part: a second connection, its snapshot and its scans of every source cost more than half of
# such a statement.
SPLIT_MIN_ROWS = 50_000


def _marked(tables: Mapping[str, pa.Table]) -> bool:
    """One table is marked `SPLIT_BY` (more is not a case any caller makes: answered whole)."""
    return sum(1 for t in tables.values() if (t.schema.metadata or {}).get(SPLIT_BY)) == 1


def _unmarked(table: pa.Table) -> pa.Table:
    metadata = {k: v for k, v in (table.schema.metadata or {}).items() if k != SPLIT_BY}
    return table.replace_schema_metadata(metadata or None) if table.schema.metadata else table


def _libpq_uri(url: sa.URL, timeout: float | None) -> str:
    """The URL as libpq reads it (spaces as %20, not +), with the statement time limit as a server option."""
    query = {k: v if isinstance(v, str) else v[-1] for k, v in url.query.items()}
    query["options"] = " ".join(filter(None, (query.get("options"), postgres_options(timeout))))
    base = url.set(drivername="postgresql", query={}).render_as_string(hide_password=False)
    return f"{base}?{urlencode(query, quote_via=quote)}" if query else base


def _adbc_connect(uri: str) -> Any:
    import adbc_driver_postgresql.dbapi

    return adbc_driver_postgresql.dbapi.connect(uri)


def _mark_fresh(connection: Any, record: Any) -> None:
    record.info["fresh"] = True


def _ping(connection: Any, record: Any, proxy: Any) -> None:
    """At checkout, a pooled ADBC connection proves it is still connected (`SELECT 1`, about 0.3 ms: a rollback
    alone does not reach the server when no transaction is open); one just opened is not asked. A dead one makes
    the pool drop every connection opened before now (a warehouse restart killed them all) and open a new one, so
    no statement fails on a connection that died while it sat in the pool."""
    if record.info.pop("fresh", False):
        return
    try:
        cursor = connection.cursor()
        try:
            cursor.execute("SELECT 1")
            cursor.fetchall()
        finally:
            cursor.close()
        connection.rollback()  # the statement starts its own transaction (SET TRANSACTION must come first)
    except Exception as error:  # noqa: BLE001 - any failure: the connection is not used again
        raise sa.exc.InvalidatePoolError(f"ping failed: {_first_line(error)}") from None


def _decimals(table: pa.Table) -> pa.Table:
    """PostgreSQL NUMERIC arrives from ADBC as text (an opaque extension type): as a decimal of the column's declared
    precision and scale, or, unconstrained (sums), of the largest scale among its values; a double past 38 digits."""
    for i, f in enumerate(table.schema):
        if not isinstance(f.type, pa.BaseExtensionType) or "numeric" not in str(f.type):
            continue
        text = pc.cast(pa.chunked_array([c.storage for c in table.column(i).chunks], f.type.storage_type),
                       pa.string())
        typmod = int((f.metadata or {}).get(b"POSTGRESQL:typmod", b"-1"))
        if typmod >= 4:
            kind: pa.DataType = pa.decimal128(((typmod - 4) >> 16) & 0xFFFF, (typmod - 4) & 0xFFFF)
        else:
            dots = pc.find_substring(text, ".")
            after = pc.if_else(pc.greater_equal(dots, 0), pc.subtract(pc.subtract(pc.utf8_length(text), dots), 1), 0)
            scale = pc.max(after).as_py() or 0
            kind = pa.decimal128(38, scale)
        try:
            column = pc.cast(text, kind)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            column = pc.cast(text, pa.float64())  # NaN, or more digits than a decimal128 holds
        table = table.set_column(i, pa.field(f.name, column.type), column)
    return table


def duckdb_config(memory_limit: str, threads: int) -> dict[str, Any]:
    """A DuckDB session that reads its own file and nothing else: no file functions (read_csv, glob, COPY TO), no
    extension downloads, bounded memory, and a configuration no statement can change afterwards."""
    # The session's zone is UTC whatever the process's TZ (docs/time.md); the SQL names its zones anyway.
    # The allocator's background threads hand freed memory back to the system within about a second; without
    # them it stays resident until the same threads allocate again (a statement that failed at the memory limit
    # kept ~100 MB of its ~170 MB; tests/test_memory.py).
    config: dict[str, Any] = {"autoinstall_known_extensions": False, "allocator_background_threads": True,
                              "enable_external_access": False, "memory_limit": memory_limit, "TimeZone": "UTC"}
    if threads:
        config["threads"] = threads
    config["lock_configuration"] = True  # last: later keys could not be set once it holds
    return config


def postgres_options(timeout: float | None) -> str:
    """Session settings sent at connect: read-only transactions by default, standard strings (a backslash in '...'
    is a plain character, as rendering assumes), the zone UTC (docs/time.md), no JIT, and the statement time limit.

    JIT compiles every expression of a statement the planner costs high, before running it: a 1M-row training set
    (a few dozen CASE and FILTER expressions over five joins) spent ~4.7 s of ~28 s compiling 188 functions, and ran
    ~6% faster without it (docs/benchmarks.md); the queries we write are many short expressions, not the long loops
    JIT pays off on."""
    options = ["-c default_transaction_read_only=on", "-c standard_conforming_strings=on", "-c TimeZone=UTC",
               "-c jit=off"]
    if timeout:
        options.append(f"-c statement_timeout={int(timeout * 1000)}")  # the server cancels a statement past it
    return " ".join(options)


# Driver errors by class name (no driver import needed): what the client is told. The driver's text stays in the
# log, since it can hold data values, names and hosts.
_UNAVAILABLE = ("OperationalError", "AdminShutdown", "CrashShutdown", "ConnectionException", "ConnectionFailure",
                "CannotConnectNow", "InterfaceError", "ConnectionTimeout")
# SQLSTATEs of a session the server ended or never began: class 08 (connection exception), 57P01-57P03 (admin
# shutdown, crash shutdown, cannot connect now: a stop or restart), whatever class the driver raises them as.
_LOST_STATES = ("08", "57P01", "57P02", "57P03")
_LOST_SIGNS = ("terminating connection", "server closed the connection", "no connection to the server",
               "connection lost", "connection closed", "connection is closed", "could not receive data")
_REFUSALS = {"ConversionException": "a value in the data does not convert to the type the query needs",
             "InvalidInputException": "a value in the data or the query is not valid input for the warehouse",
             "DivisionByZero": "a division by zero", "NumericValueOutOfRange": "a number out of range",
             "OutOfRangeException": "a number out of range", "InvalidDatetimeFormat": "a date or time value",
             "DatetimeFieldOverflow": "a date or time out of range", "PermissionException": "a file access",
             "InsufficientPrivilege": "a permission", "ReadOnlySqlTransaction": "a write in a read-only session",
             "CatalogException": "a table or column the model names is not in the warehouse",
             "UndefinedTable": "a table the model names is not in the warehouse",
             "UndefinedColumn": "a column the model names is not in the warehouse",
             "UndefinedFunction": "a function or operator the warehouse does not have for these types",
             "BinderException": "the model's expressions do not fit the warehouse's tables or types"}


def classify(error: BaseException, dialect: str) -> WarehouseError | LimitError:
    """A driver error as one of ours, with a message that carries no data values, hosts or class paths; the
    driver's own text goes in `detail` for the log."""
    name = type(error).__name__
    detail = f"{name}: {_first_line(error)}"
    if name == "OutOfMemoryException":
        limit = settings.BY_NAME["duckdb_memory_limit"]
        return LimitError(f"the query needed more memory than the warehouse may use ({limit.name}); narrow it (a "
                          f"filter, fewer dimensions, a coarser grain) or raise {limit.env}", detail=detail)
    state = str(getattr(error, "sqlstate", None) or "")
    if name in _UNAVAILABLE or state.startswith(_LOST_STATES) or (
            dialect == "postgres" and any(sign in detail.lower() for sign in _LOST_SIGNS)):
        return WarehouseUnavailableError(f"the {dialect} warehouse went away while the query ran; try again when "
                                         f"it is back", detail=detail)
    what = _REFUSALS.get(name)
    where = f" (SQLSTATE {state})" if state else ""
    if what is not None:
        return WarehouseError(f"the warehouse refused the query: {what}{where}; the server log has the details",
                              detail=detail)
    return WarehouseError(f"the warehouse refused the query{where}; the server log has the details",
                          detail=detail)


def _first_line(error: BaseException) -> str:
    text = str(getattr(error, "orig", None) or error).strip()
    return text.splitlines()[0] if text else type(error).__name__
