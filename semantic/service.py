"""One model served on one warehouse: compile (cached by query), then run through the shared result cache.

Every consumer (GraphQL, CLI, features) goes through `Service`, so the path is the same for all:
SemanticQuery -> Plan -> sqlglot tree -> SQL -> cache -> warehouse -> rows.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, overload

import pyarrow as pa
from cachetools import LRUCache
from sqlglot import exp

from semantic.cache import ResultCache, result_key
from semantic.errors import CompileError, QueryError
from semantic.execute import Table, Warehouse
from semantic.features.build import build_features
from semantic.features.request import FeatureRequest
from semantic.features.training import Spine, assemble, build_training, to_pandas
from semantic.model import Model
from semantic.plan.planner import OutputColumn, Plan, plan
from semantic.query import SemanticQuery
from semantic.sql.build import build
from semantic.sql.render import DIALECTS, render


@dataclass(frozen=True)
class Compiled:
    """A checked query and its SQL; `columns` and SQL columns are in canonical order."""

    plan: Plan
    tree: exp.Expr
    dialect: str
    sql: str  # canonical: compact, no comments; what runs and what the cache keys on

    def pretty(self) -> str:
        return render(self.tree, self.dialect, pretty=True, comments=True)


@dataclass(frozen=True)
class Result:
    """Rows with one column per requested item, dimensions first, each group in the order asked."""

    columns: tuple[OutputColumn, ...]
    rows: tuple[tuple[Any, ...], ...]
    sql: str
    cache_hit: bool
    cache_key: str

    def records(self) -> list[dict[str, Any]]:
        names = [c.name for c in self.columns]
        return [dict(zip(names, row, strict=True)) for row in self.rows]


class Service:
    def __init__(self, model: Model, warehouse: Warehouse | None, cache: ResultCache[Table] | None = None,
                 plan_cache_size: int = 1024) -> None:
        self.model = model
        self.warehouse = warehouse
        self.cache: ResultCache[Table] = cache if cache is not None else ResultCache()
        self._plans: LRUCache[tuple[SemanticQuery, str], Compiled] = LRUCache(maxsize=plan_cache_size)
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect if self.warehouse is not None else self.model.dialect

    def compile(self, query: SemanticQuery, dialect: str | None = None) -> Compiled:
        """Plan and render a query; repeated shapes come from the plan cache."""
        dialect = dialect or self.dialect
        if dialect not in DIALECTS:
            raise QueryError(f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
        canonical = query.canonical()
        key = (canonical, dialect)
        with self._lock:
            found = self._plans.get(key)
        if found is not None:
            return found
        the_plan = plan(self.model, canonical)
        tree = build(the_plan)
        try:
            sql = render(tree, dialect)
        except Exception as error:  # noqa: BLE001 - sqlglot raises UnsupportedError and others per dialect
            raise CompileError(f"cannot express this query in {dialect}: {error}") from None
        compiled = Compiled(the_plan, tree, dialect, sql)
        with self._lock:
            self._plans[key] = compiled
        return compiled

    def run_sql(self, sql: str, scope: str = "") -> tuple[Table, bool, str]:
        """Run canonical SQL through the shared result cache; (table, hit, key)."""
        if self.warehouse is None:
            raise QueryError("no warehouse is configured; pass --warehouse or set SEMANTIC_WAREHOUSE_URL")
        warehouse = self.warehouse
        lookup = self.cache.get_or_run(result_key(sql, warehouse.identity, scope), lambda: warehouse.run(sql))
        return lookup.value, lookup.hit, lookup.key

    def query(self, query: SemanticQuery, scope: str = "") -> Result:
        compiled = self.compile(query)
        table, hit, key = self.run_sql(compiled.sql, scope)
        by_name = {c.name: (i, c) for i, c in enumerate(compiled.plan.columns)}
        wanted = [by_name[name] for name in (*query.dimensions, *query.metrics)]
        rows = tuple(tuple(row[i] for i, _ in wanted) for row in table.rows)
        return Result(tuple(c for _, c in wanted), rows, compiled.sql, hit, key)

    def compile_features(self, request: FeatureRequest, dialect: str | None = None
                         ) -> tuple[str, tuple[OutputColumn, ...]]:
        """The SQL of a feature request and its output columns."""
        tree, columns = build_features(self.model, request)
        return render(tree, dialect or self.dialect), columns

    def features(self, request: FeatureRequest, scope: str = "") -> Result:
        """Feature values per requested key as of `request.at` (now when None), one row per key in request order.
        This computes them; `features.online.OnlineStore` serves repeated lookups from memory."""
        if request.at is None:
            request = replace(request, at=datetime.now(UTC).replace(microsecond=0, tzinfo=None))
        sql, columns = self.compile_features(request)
        table, hit, key = self.run_sql(sql, scope)
        return Result(columns, table.rows, sql, hit, key)

    @overload
    def training_set(self, entity: str, spine: Any, names: Sequence[str] | None = None, *,
                     time_column: str = "event_timestamp", pandas: Literal[False] = False) -> pa.Table: ...

    @overload
    def training_set(self, entity: str, spine: Any, names: Sequence[str] | None = None, *,
                     time_column: str = "event_timestamp", pandas: Literal[True]) -> Any: ...

    def training_set(self, entity: str, spine: Any, names: Sequence[str] | None = None, *,
                     time_column: str = "event_timestamp", pandas: bool = False) -> Any:
        """Feature values for each spine row as of its own time: the spine (a pyarrow Table or pandas DataFrame
        with the entity's key column(s) and `time_column`) with one typed column per feature appended, every row
        once, in input order. A pyarrow Table, or with `pandas=True` a DataFrame with nullable integer columns.

        The spine reaches the warehouse as a table registered for the one statement; the answer is too large for
        the result cache and does not go through it.
        """
        if self.warehouse is None:
            raise QueryError("no warehouse is configured; pass --warehouse or set SEMANTIC_WAREHOUSE_URL")
        checked = Spine.create(self.model, entity, spine, names, time_column)
        table_name = f"spine_{uuid.uuid4().hex[:12]}"  # connections are pooled: no name is shared by two calls
        tree, columns = build_training(self.model, checked, table_name, self.warehouse.dialect)
        try:
            sql = render(tree, self.warehouse.dialect)
        except Exception as error:  # noqa: BLE001 - sqlglot raises UnsupportedError and others per dialect
            raise CompileError(f"cannot express this training set in {self.warehouse.dialect}: {error}") from None
        answer = self.warehouse.arrow_with(sql, {table_name: checked.rows})
        table = assemble(checked, answer, columns)
        return to_pandas(table) if pandas else table
