"""One model served on one warehouse: compile (cached by query), then run through the shared result cache.

Every consumer (GraphQL, CLI, features, training sets, the online store) goes through `Service`, so the path is the
same for all: SemanticQuery (or FeatureRequest, Spine) -> sqlglot tree -> `_render` -> SQL -> the cache layer ->
warehouse -> rows. `_render` is the one function that turns a statement into the SQL that runs (and that the cache
keys on); `run_sql` (answers kept in the result cache) and `run_arrow` (answers too large to keep: single flight
only) are the only two ways a statement reaches the warehouse.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Mapping, Sequence
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
from semantic.plan.scope import ident
from semantic.query import SemanticQuery
from semantic.sql.build import build
from semantic.sql.joins import aliased
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
    def __init__(self, model: Model, warehouse: Warehouse | None, cache: ResultCache[Table | pa.Table] | None = None,
                 plan_cache_size: int = 1024) -> None:
        self.model = model
        self.warehouse = warehouse
        self.cache: ResultCache[Table | pa.Table] = cache if cache is not None else ResultCache()
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
        tree = build(the_plan, self.model)
        compiled = Compiled(the_plan, tree, dialect, self._render(tree, dialect, "this query"))
        with self._lock:
            self._plans[key] = compiled
        return compiled

    def _render(self, tree: exp.Expr, dialect: str, what: str) -> str:
        """The SQL that runs: compact, comment-free, the cache's key. Every statement is rendered here."""
        try:
            return render(tree, dialect)
        except CompileError:
            raise
        except Exception as error:  # noqa: BLE001 - sqlglot raises UnsupportedError and others per dialect
            raise CompileError(f"cannot express {what} in {dialect}: {error}") from None

    def _warehouse(self) -> Warehouse:
        if self.warehouse is None:
            raise QueryError("no warehouse is configured; pass --warehouse or set SEMANTIC_WAREHOUSE_URL")
        return self.warehouse

    def run_sql(self, sql: str, scope: str = "") -> tuple[Table, bool, str]:
        """Run canonical SQL through the shared result cache; (table, hit, key)."""
        warehouse = self._warehouse()
        lookup = self.cache.get_or_run(result_key(sql, warehouse.identity, scope), lambda: warehouse.run(sql))
        assert isinstance(lookup.value, Table)  # only run_sql stores answers, and they are Tables
        return lookup.value, lookup.hit, lookup.key

    def run_arrow(self, sql: str, scope: str = "", tables: Mapping[str, pa.Table] | None = None) -> pa.Table:
        """Run canonical SQL over `tables` (each visible under its name for this statement) as Arrow, through the
        cache layer without keeping the answer: concurrent equal statements run once."""
        warehouse = self._warehouse()
        key = result_key(sql, f"{warehouse.identity} (arrow)", scope)  # never a key run_sql keeps a Table under
        lookup = self.cache.get_or_run(key, lambda: warehouse.arrow_with(sql, tables or {}), store=False)
        assert isinstance(lookup.value, pa.Table)
        return lookup.value

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
        return self._render(tree, dialect or self.dialect, "this feature request"), columns

    def keys(self, entity: str, scope: str = "") -> pa.Table:
        """Every key of the entity, as the warehouse holds them (the spine of a snapshot of the latest values)."""
        found = self.model.entities[entity]
        select = exp.select(*(exp.column(c, table=ident(found.name)) for c in found.key)).distinct()
        select = select.from_(aliased(found, found.name, self.model.dialect))
        return self.run_arrow(self._render(select, self.dialect, f"the keys of {entity}"), scope)

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
                     time_column: str = "event_timestamp", pandas: Literal[False] = False,
                     scope: str = "") -> pa.Table: ...

    @overload
    def training_set(self, entity: str, spine: Any, names: Sequence[str] | None = None, *,
                     time_column: str = "event_timestamp", pandas: Literal[True], scope: str = "") -> Any: ...

    def training_set(self, entity: str, spine: Any, names: Sequence[str] | None = None, *,
                     time_column: str = "event_timestamp", pandas: bool = False, scope: str = "") -> Any:
        """Feature values for each spine row as of its own time: the spine (a pyarrow Table or pandas DataFrame
        with the entity's key column(s) and `time_column`) with one typed column per feature appended, every row
        once, in input order. A pyarrow Table, or with `pandas=True` a DataFrame with nullable integer columns.

        The spine reaches the warehouse as a table registered for the one statement; the answer is too large for
        the result cache, so it passes the cache layer without being kept.
        """
        warehouse = self._warehouse()
        checked = Spine.create(self.model, entity, spine, names, time_column)
        table_name = f"spine_{uuid.uuid4().hex[:12]}"  # connections are pooled: no name is shared by two calls
        tree, columns = build_training(self.model, checked, table_name, warehouse.dialect)
        sql = self._render(tree, warehouse.dialect, "this training set")
        answer = self.run_arrow(sql, scope, {table_name: checked.rows})
        table = assemble(checked, answer, columns)
        return to_pandas(table) if pandas else table
