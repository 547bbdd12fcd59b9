"""A warehouse on Spark Connect (`sc://host:port`): statements as Spark SQL, answers as Arrow.

Spines and other Arrow tables reach Spark as DataFrames registered as temporary views for the one statement. The
time limit is an interrupt: each statement runs under its own operation tag, and a timer interrupts that tag when
the limit passes (`SparkSession.interruptTag`), so other statements of the session go on.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, TypeVar

import pyarrow as pa

from semantic.errors import WarehouseError, WarehouseTimeoutError, WarehouseUnavailableError
from semantic.execute import Table

T = TypeVar("T")


class SparkWarehouse:
    dialect = "spark"

    def __init__(self, url: str, *, timeout: float | None = 60.0) -> None:
        try:
            from pyspark.sql import SparkSession
        except ImportError:
            raise WarehouseUnavailableError("Spark Connect needs pyspark with its Connect client: "
                                            "pip install 'pyspark[connect]'") from None
        self.identity = url.split("/;", 1)[0].split(";token=", 1)[0]  # no token in cache keys or messages
        self.timeout = timeout
        try:
            self.session: Any = SparkSession.builder.remote(url).create()
        except Exception as error:  # noqa: BLE001 - pyspark raises its own errors, or gRPC's
            raise WarehouseUnavailableError(f"cannot connect to Spark at {self.identity}: {_first_line(error)}"
                                            ) from None

    @contextmanager
    def _deadline(self) -> Iterator[None]:
        """Run under a fresh operation tag; past the limit, interrupt that tag. Errors become WarehouseErrors."""
        tag = f"semantic-{uuid.uuid4().hex[:12]}"
        self.session.addTag(tag)
        timer = None
        if self.timeout:
            timer = threading.Timer(self.timeout, self.session.interruptTag, args=(tag,))
            timer.daemon = True
            timer.start()
        try:
            yield
        except WarehouseError:
            raise
        except Exception as error:  # noqa: BLE001 - every Spark error becomes a WarehouseError
            if timer is not None and not timer.is_alive():
                raise WarehouseTimeoutError(f"the query ran longer than the {self.timeout:g} s limit and was "
                                            f"interrupted; narrow it (a filter, fewer dimensions) or raise the "
                                            f"limit") from None
            raise WarehouseError(f"Spark refused the query: {_first_line(error)}") from None
        finally:
            if timer is not None:
                timer.cancel()
            self.session.removeTag(tag)

    def _run(self, work: Callable[[], T]) -> T:
        with self._deadline():
            return work()

    def arrow(self, sql: str) -> pa.Table:
        return self._run(lambda: self.session.sql(sql).toArrow())

    def run(self, sql: str) -> Table:
        return Table.of(self.arrow(sql))

    def arrow_with(self, sql: str, tables: Mapping[str, pa.Table]) -> pa.Table:
        """Each table becomes a DataFrame (sent as Arrow) under a temporary view of its name, dropped after."""

        def work() -> pa.Table:
            try:
                for name, table in tables.items():
                    self.session.createDataFrame(table).createOrReplaceTempView(name)
                return self.session.sql(sql).toArrow()
            finally:
                for name in tables:
                    self.session.catalog.dropTempView(name)

        return self._run(work)

    def close(self) -> None:
        self.session.stop()


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
