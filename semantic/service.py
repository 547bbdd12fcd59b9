"""One model served on one warehouse: compile (cached by query), then run through the shared result cache.

Every consumer (GraphQL, CLI, features, training sets, the online store) goes through `Service`, so the path is the
same for all: SemanticQuery (or FeatureRequest, Spine) -> sqlglot tree -> `_render` -> SQL -> the cache layer ->
warehouse -> rows. `_render` is the one function that turns a statement into the SQL that runs (and that the cache
keys on); `run_sql` (answers kept in the result cache) and `run_arrow` (answers too large to keep: single flight
only) are the only two ways a statement reaches the warehouse.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Literal, overload

import pyarrow as pa
from cachetools import LRUCache
from sqlglot import exp

from semantic import rollup
from semantic.access import TRUSTED, Access, View, Views
from semantic.cache import Lookup, ResultCache, Source, result_key
from semantic.errors import CompileError, QueryError, did_you_mean
from semantic.execute import Table, Warehouse
from semantic.features.build import build_features
from semantic.features.request import FeatureRequest, feature_names
from semantic.features.training import Spine, assemble, build_training, side_by_side, to_pandas
from semantic.freshness import Freshness
from semantic.integrity import KeyGuard, feature_uses
from semantic.metrics import CACHE_HITS
from semantic.model import Model
from semantic.plan.fill import check_size
from semantic.plan.planner import OutputColumn, Plan, plan
from semantic.plan.scope import ident
from semantic.query import Filter, SemanticQuery
from semantic.sql.build import build
from semantic.sql.joins import GATED_DIALECTS, aliased
from semantic.sql.render import DIALECTS, render


@dataclass(frozen=True)
class Compiled:
    """A checked query and its SQL; `columns` and SQL columns are in canonical order."""

    plan: Plan
    tree: exp.Expr
    dialect: str
    sql: str  # canonical: compact, no comments; what runs and what the cache keys on
    # The plan and SQL that run instead when the result can serve roll-ups: the same columns first, then hidden
    # measure columns (see `semantic.rollup.widen`); None when it cannot.
    widened: Plan | None = None
    widened_sql: str | None = None
    matched: frozenset[tuple[str, str]] = frozenset()  # LEFT joins written inner, orphans gated in (build)

    @property
    def run_sql(self) -> str:
        return self.widened_sql or self.sql

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
    cache_source: Source = Source.WAREHOUSE

    def records(self) -> list[dict[str, Any]]:
        names = [c.name for c in self.columns]
        return [dict(zip(names, row, strict=True)) for row in self.rows]


def _wanted(compiled: Compiled, query: SemanticQuery, exact: bool | Collection[str]
            ) -> tuple[tuple[OutputColumn, ...], tuple[int, ...], tuple[bool, ...]]:
    """The columns a query asked for (dimensions first, then metrics), their indices among the plan's, and
    whether each keeps its decimals exact."""
    by_name = {c.name: (i, c) for i, c in enumerate(compiled.plan.columns)}
    wanted = [by_name[name] for name in (*query.dimensions, *query.metrics)]
    keep = tuple(exact if isinstance(exact, bool) else c.name in exact for _, c in wanted)
    return tuple(c for _, c in wanted), tuple(i for i, _ in wanted), keep


class Service:
    def __init__(self, model: Model, warehouse: Warehouse | None, cache: ResultCache | None = None,
                 plan_cache_size: int = 1024, *, rollups: bool = True,
                 integrity: KeyGuard | None = None) -> None:
        self.model = model
        self.warehouse = warehouse
        self.integrity = integrity  # when set, answers a non-unique join key would double count are refused
        self.cache = cache if cache is not None else ResultCache()
        self.freshness = Freshness(model, self.cache)
        self.rollups = rollups  # answer from finer cached results where exact; off: exact matches only
        self.views = Views(model)
        self._plans: LRUCache[tuple[SemanticQuery, str, str], Compiled] = LRUCache(maxsize=plan_cache_size)
        self._sources: LRUCache[str, tuple[str, Plan] | None] = LRUCache(maxsize=4096)  # index member -> plan
        self._converted: LRUCache[tuple[str, float, tuple[int, ...], tuple[bool, ...]],
                                  tuple[tuple[Any, ...], ...]] = LRUCache(maxsize=256)
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.warehouse.dialect if self.warehouse is not None else self.model.dialect

    def view(self, access: Access) -> View:
        """The model as this reader may see it under its policies (the model itself when none applies)."""
        return self.views.of(access)

    def compile(self, query: SemanticQuery, dialect: str | None = None, access: Access = TRUSTED) -> Compiled:
        """Plan and render a query as `access` may read it; repeated shapes come from the plan cache, shared by
        readers whose policies resolve alike. The SQL is rebuilt when the integrity guard's verdict on which LEFT
        joins found every row (`KeyGuard.matched`) has changed since it was built."""
        dialect = dialect or self.dialect
        if dialect not in DIALECTS:
            raise QueryError(f"unknown dialect {dialect!r}; use one of {', '.join(DIALECTS)}")
        view = self.view(access)
        canonical = query.canonical()
        key = (canonical, dialect, view.fingerprint)
        with self._lock:
            found = self._plans.get(key)
        if found is None:
            the_plan = plan(view.model, canonical)
            if the_plan.fill is not None:
                check_size(the_plan.fill)
        else:
            the_plan = found.plan
        matched = self.integrity.matched(view.model, the_plan) \
            if self.integrity is not None and dialect in GATED_DIALECTS else frozenset()
        if found is not None and found.matched == matched:
            return found
        tree = build(the_plan, view.model, matched)
        compiled = Compiled(the_plan, tree, dialect, self._render(tree, dialect, "this query"), matched=matched)
        widened = rollup.widen(view.model, the_plan)
        if widened is not None:  # over the reader's view too: its rows are theirs only
            widened_sql = self._render(build(widened, view.model, matched), dialect, "this query")
            compiled = replace(compiled, widened=widened, widened_sql=widened_sql)
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

    def run_sql(self, sql: str, scope: str = "", *, entities: Sequence[str] = (),
                alternative: Callable[[], pa.Table | None] | None = None) -> Lookup:
        """Run canonical SQL through the shared result cache, filed under the entities it reads; `alternative`
        may answer a miss without the warehouse (a roll-up). `scope` is a view's fingerprint: readers of different
        views never share an entry, nor learn from `hit` what the other asked."""
        warehouse = self._warehouse()
        self.freshness.check(warehouse)
        return self.cache.get_or_run(result_key(sql, warehouse.identity, scope), lambda: warehouse.arrow(sql),
                                     ttl=self.freshness.ttl(entities), entities=entities, alternative=alternative)

    def clear_cache(self, entity: str | None = None) -> int:
        """Drop the cached answers that read `entity` (all of them when None); how many were dropped."""
        if entity is not None and entity not in self.model.entities:
            raise QueryError(f"unknown entity {entity!r}.{did_you_mean(entity, self.model.entities)}")
        return self.cache.invalidate(entity)

    def run_arrow(self, sql: str, scope: str = "", tables: Mapping[str, pa.Table] | None = None) -> pa.Table:
        """Run canonical SQL over `tables` (each visible under its name for this statement) as Arrow, through the
        cache layer without keeping the answer: concurrent equal statements run once."""
        warehouse = self._warehouse()
        key = result_key(sql, f"{warehouse.identity} (arrow)", scope)  # never a key run_sql keeps a Table under
        return self.cache.get_or_run(key, lambda: warehouse.arrow_with(sql, tables or {}), store=False).table

    def query(self, query: SemanticQuery, access: Access = TRUSTED, *,
              exact: bool | Collection[str] = False) -> Result:
        """The answer to `query` as `access` may read it; decimals as floats, or with `exact` as `Decimal`: all of
        them, or those of the items named (`order.revenue`)."""
        compiled = self.compile(query, access=access)
        if self.integrity is not None:
            self.integrity.check_plan(self.model, compiled.plan)
        scope = self.view(access).fingerprint
        use_rollups = self.rollups and self.cache.enabled
        alternative = (lambda: self._roll_up(compiled, scope)) if use_rollups else None
        lookup = self.run_sql(self._statement(compiled), scope, entities=entities_read(self.model, compiled.plan),
                              alternative=alternative)
        # A result is a roll-up source only when whole: a limit (the server's row cap adds one to every query)
        # that it did not reach cut nothing.
        whole = query.limit is None or lookup.table.num_rows < query.limit
        if use_rollups and compiled.widened is not None and whole and lookup.source in (Source.WAREHOUSE,
                                                                                         Source.ROLLUP):
            self.cache.store.add(self._index(scope), json.dumps(
                [lookup.key, sorted(query.metrics), sorted(query.dimensions),
                 query.where.text if query.where else None, query.timezone]))
        columns, indices, keep = _wanted(compiled, query, exact)
        rows = self._rows(lookup, indices, keep)
        return Result(columns, rows, compiled.sql, lookup.hit, lookup.key, lookup.source)

    def from_memory(self, query: SemanticQuery, access: Access = TRUSTED, *,
                    exact: bool | Collection[str] = False) -> Result | None:
        """`query(query, access, exact=exact)` when this process's memory holds all of it and nothing would run
        first (its plan, no refresh key, key check or join verdict due, a fresh entry of an in-process store, its
        rows converted); else None. Callers on an event loop answer these at once, without a worker thread (whose
        hand-off costs more than the answer on a busy machine), and send the rest to one."""
        if not self.freshness.settled():
            return None
        scope = self.view(access).fingerprint
        with self._lock:
            compiled = self._plans.get((query.canonical(), self.dialect, scope))
        if compiled is None or self.warehouse is None:
            return None
        gated = compiled.matched if self.dialect in GATED_DIALECTS else None
        if self.integrity is not None and not self.integrity.settled(compiled.plan, gated):
            return None
        key = result_key(self._statement(compiled), self.warehouse.identity, scope)
        version = self.cache.fresh_version(key)
        if version is None:
            return None
        columns, indices, keep = _wanted(compiled, query, exact)
        with self._lock:
            rows = self._converted.get((key, version, indices, keep))
        if rows is None:
            return None
        CACHE_HITS.labels("exact").inc()
        return Result(columns, rows, compiled.sql, True, key, Source.EXACT)

    def _statement(self, compiled: Compiled) -> str:
        """The SQL that answers a compiled query: its widened form, which roll-ups can serve, when they are on."""
        return compiled.run_sql if self.rollups and self.cache.enabled else compiled.sql

    def _rows(self, lookup: Lookup, columns: tuple[int, ...], exact: tuple[bool, ...]) -> tuple[tuple[Any, ...], ...]:
        """The rows of the wanted columns (hidden roll-up columns stay behind), converted from Arrow once per
        stored entry: a repeated dashboard question costs a store read, not a conversion."""
        memo = (lookup.key, lookup.version, columns, exact)
        if lookup.version:
            with self._lock:
                found = self._converted.get(memo)
            if found is not None:
                return found
        rows = Table.of(lookup.table.select(list(columns)), exact).rows
        if lookup.version:
            with self._lock:
                self._converted[memo] = rows
        return rows

    # -- roll-ups ------------------------------------------------------------------------------------------------

    def _index(self, scope: str) -> str:
        """The store set listing the results of this warehouse and scope that can serve roll-ups."""
        assert self.warehouse is not None
        return f"rollups:{result_key('', self.warehouse.identity, scope)}"

    def _source(self, member: str) -> tuple[str, Plan] | None:
        """An index member as (cache key, widened plan), or None when it no longer compiles (a changed model)."""
        with self._lock:
            if member in self._sources:
                return self._sources[member]
        try:
            key, metrics, dimensions, where, timezone = json.loads(member)
            query = SemanticQuery(tuple(metrics), tuple(dimensions), Filter.parse(where) if where else None,
                                  timezone=timezone)
            widened = self.compile(query).widened
            found = (key, widened) if widened is not None else None
        except (QueryError, CompileError, ValueError, TypeError):
            found = None
        with self._lock:
            self._sources[member] = found
        return found

    def _roll_up(self, compiled: Compiled, scope: str) -> pa.Table | None:
        """The answer computed from a finer cached result, or None when no cached result implies it."""
        want = compiled.widened or compiled.plan
        index = self._index(scope)
        candidates = []
        for member in self.cache.store.members(index):
            source = self._source(member)
            if source is None:
                continue
            plan_ = rollup.rollup_plan(self.model, want, source[1])
            if plan_ is not None:
                candidates.append((len(source[1].groups), member, source[0], plan_))
        gone = []
        for _, member, key, plan_ in sorted(candidates, key=lambda c: c[:2]):
            table = self.cache.peek(key)
            if table is None:
                gone.append(member)
                continue
            self.cache.store.remove(index, gone)
            return rollup.run(plan_, table)
        self.cache.store.remove(index, gone)
        return None

    def compile_features(self, request: FeatureRequest, dialect: str | None = None, access: Access = TRUSTED
                         ) -> tuple[str, tuple[OutputColumn, ...]]:
        """The SQL of a feature request as `access` may read it, and its output columns."""
        model = self.view(access).model
        feature_names(model, request.entity, request.names)  # a hidden feature does not exist for this reader
        tree, columns = build_features(model, request)
        return self._render(tree, dialect or self.dialect, "this feature request"), columns

    def keys(self, entity: str, access: Access = TRUSTED) -> pa.Table:
        """Every key of the entity the reader may see, as the warehouse holds them (the spine of a snapshot of the
        latest values)."""
        view = self.view(access)
        found = view.model.entities[entity]
        select = exp.select(*(exp.column(c, table=ident(found.name)) for c in found.key)).distinct()
        select = select.from_(aliased(found, found.name, self.model.dialect))
        return self.run_arrow(self._render(select, self.dialect, f"the keys of {entity}"), view.fingerprint)

    def features(self, request: FeatureRequest, access: Access = TRUSTED) -> Result:
        """Feature values per requested key as of `request.at` (now when None), one row per key in request order.
        This computes them; `online.OnlineStore` serves repeated lookups from memory."""
        if request.at is None:
            request = replace(request, at=datetime.now(UTC).replace(microsecond=0, tzinfo=None))
        sql, columns = self.compile_features(request, access=access)
        if self.integrity is not None:
            self.integrity.check(feature_uses(self.model, request.entity, request.names))
        scope = self.view(access).fingerprint
        lookup = self.run_sql(sql, scope, entities=tuple(self.model.entities))  # features may read any entity
        return Result(columns, Table.of(lookup.table).rows, sql, lookup.hit, lookup.key, lookup.source)

    @overload
    def training_set(self, entity: str, spine: Any, names: Sequence[str] | None = None, *,
                     time_column: str = "event_timestamp", pandas: Literal[False] = False,
                     access: Access = TRUSTED) -> pa.Table: ...

    @overload
    def training_set(self, entity: str, spine: Any, names: Sequence[str] | None = None, *,
                     time_column: str = "event_timestamp", pandas: Literal[True], access: Access = TRUSTED) -> Any: ...

    def training_set(self, entity: str, spine: Any, names: Sequence[str] | None = None, *,
                     time_column: str = "event_timestamp", pandas: bool = False, access: Access = TRUSTED) -> Any:
        """Feature values for each spine row as of its own time: the spine (a pyarrow Table or pandas DataFrame
        with the entity's key column(s) and `time_column`) with one typed column per feature appended, every row
        once, in input order. A pyarrow Table, or with `pandas=True` a DataFrame with nullable integer columns.

        The spine reaches the warehouse as a table registered for the one statement; the answer is too large for
        the result cache, so it passes the cache layer without being kept.
        """
        warehouse = self._warehouse()
        view = self.view(access)
        checked = Spine.create(view.model, entity, spine, names, time_column)
        if self.integrity is not None:
            self.integrity.check(feature_uses(self.model, entity, checked.names))
        table_name = f"spine_{uuid.uuid4().hex[:12]}"  # connections are pooled: no name is shared by two calls
        together = getattr(warehouse, "arrow_all", None)  # several statements on one snapshot
        statements = build_training(view.model, checked, table_name, warehouse.dialect, split=together is not None)
        sqls = [self._render(tree, warehouse.dialect, "this training set") for tree, _ in statements]
        order = {name: i for i, name in enumerate(checked.names)}
        columns = sorted((c for _, found in statements for c in found), key=lambda c: order[c.name])
        # Arrow's allocator keeps the pages of tables already freed (an earlier training set's columns, ~100 MB
        # at 1M rows) for its own reuse; the statement's working memory comes from the warehouse's allocator, so
        # they go back to the system first (1M rows x 13 features on DuckDB: ~90 MB less peak).
        pa.default_memory_pool().release_unused()
        tables = {table_name: checked.rows}
        key = result_key("\n;\n".join(sqls), f"{warehouse.identity} (arrow)", view.fingerprint)

        def together_answers() -> pa.Table:
            assert together is not None
            return side_by_side(together(sqls, tables), len(checked.rows))

        # The answer goes straight to `assemble`, which releases each of its columns once taken.
        table = assemble(checked, self.run_arrow(sqls[0], view.fingerprint, tables) if len(sqls) == 1 else
                         self.cache.get_or_run(key, together_answers, store=False).table, columns)
        return to_pandas(table) if pandas else table


def entities_read(model: Model, the_plan: Plan) -> tuple[str, ...]:
    """Every entity whose rows a plan reads: each aggregating entity and each entity it joins."""
    names = {agg.entity for agg in the_plan.aggregates}
    names |= {join.entity for agg in the_plan.aggregates for join in agg.joins}
    return tuple(sorted(name for name in names if name in model.entities))
