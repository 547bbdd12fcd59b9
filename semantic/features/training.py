"""Training sets: feature values for a spine of (key, time) rows, each row as of its own time, in one statement.

A spine is an Arrow table holding the entity's key column(s), a time column and any other columns. The warehouse
gets only what it needs, as a table registered for the one statement: `spine_row` (the row's position), the key
columns and `spine_time`. The statement is one sqlglot tree rendered for the warehouse's dialect and ordered by
`spine_row`, so the output is the spine with one typed column per feature appended: every row once, in input
order, duplicates kept, unknown keys null.

The rules are the online lookup's (`build.py`), with t the row's own time:

- metric feature: per event entity, one join of its rows to the spine on the key with `time <= t` (and
  `time > t - widest window`), grouped by spine row. Each window is a FILTER on the planner's own aggregate, so every
  aggregate works (sum, count, distinct count, percentile, derived metrics over them) and a window costs no extra
  pass. On the 1M-order example this beat running totals read by two ASOF lookups per window (docs/benchmarks.md);
- latest feature: with ASOF joins (DuckDB), a row becomes known at greatest(time, created); a running ARG_MAX in
  that order gives, per key, the best row known so far (greatest time, then created, then key), and one ASOF LEFT
  JOIN at t finds it. A ttl then only has to check that row's time: if the best known row is too old, so is every
  other. Without ASOF joins: ROW_NUMBER over the rows joined to the spine, partitioned by spine row;
- dimension feature: the entity's own row, null when the key is unknown or its time is after t;
- derived feature: the expression over the other features' values, in the same statement.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from sqlglot import exp

from semantic.errors import CompileError, QueryError, WarehouseError
from semantic.features.build import counts, derived, feature_type, known_at, row_exists
from semantic.features.request import feature_names
from semantic.model import Entity, Feature, Model
from semantic.plan.paths import join_path
from semantic.plan.planner import OutputColumn, plan
from semantic.plan.scope import Scope, ident, source_of
from semantic.query import SemanticQuery

SPINE = "spine"  # the spine's alias in SQL
SPINE_ROW = "spine_row"
SPINE_TIME = "spine_time"
ASOF_DIALECTS = frozenset({"duckdb"})
KEY_TYPES: dict[str, pa.DataType] = {"integer": pa.int64(), "number": pa.float64(), "string": pa.string(),
                                     "boolean": pa.bool_(), "time": pa.timestamp("us")}
OUTPUT_TYPES: dict[str, pa.DataType] = {"integer": pa.int64(), "number": pa.float64(), "string": pa.string(),
                                        "boolean": pa.bool_(), "datetime": pa.timestamp("us"), "date": pa.date32()}
# Numbers are cast in SQL, so every warehouse answers with the same column types (a DECIMAL sum is a DOUBLE).
_SQL_CASTS = {"integer": exp.DataType.Type.BIGINT, "number": exp.DataType.Type.DOUBLE}


@dataclass(frozen=True, eq=False)
class Spine:
    """A checked spine: the caller's table, carried through, and the rows the warehouse reads."""

    entity: str
    names: tuple[str, ...]  # features, in output order
    table: pa.Table  # as given
    rows: pa.Table  # spine_row (int64), the key columns (typed as the key), spine_time (timestamp[us], naive UTC)

    @classmethod
    def create(cls, model: Model, entity: str, spine: Any, names: Sequence[str] | None = None,
               time_column: str = "event_timestamp") -> Spine:
        """Check a spine against the entity: its key columns and time column exist and convert to their types.

        `spine` is a pyarrow Table (or RecordBatchReader) or a pandas DataFrame.
        """
        found, checked = feature_names(model, entity, names)
        table = _arrow(spine)
        columns = table.column_names
        if len(set(columns)) != len(columns):
            raise QueryError(f"the spine has repeated column names: {columns}")
        missing = [c for c in (*found.key, time_column) if c not in columns]
        if missing:
            raise QueryError(f"the spine has no column {', '.join(repr(c) for c in missing)}: it needs the key "
                             f"column(s) of {entity!r} ({', '.join(found.key)}) and a time column "
                             f"({time_column!r}; name another with time_column / --time-column). "
                             f"Its columns: {', '.join(columns) or 'none'}")
        clash = [n for n in checked if n in columns]
        if clash:
            raise QueryError(f"the spine already has a column named like the feature(s) {', '.join(clash)}; rename "
                             f"the column or leave the feature out")
        rows = {SPINE_ROW: pa.array(np.arange(table.num_rows, dtype=np.int64))}
        for key in found.key:
            rows[key] = _key_column(found, key, table.column(key))
        rows[SPINE_TIME] = _time_column(time_column, table.column(time_column))
        return cls(found.name, checked, table, pa.table(rows))


def _arrow(spine: Any) -> pa.Table:
    if isinstance(spine, pa.Table):
        return spine
    if isinstance(spine, pa.RecordBatchReader):
        return spine.read_all()
    if type(spine).__name__ == "DataFrame" and hasattr(spine, "to_numpy"):  # pandas, without importing it
        return pa.Table.from_pandas(spine, preserve_index=False)
    raise QueryError(f"a spine is a pyarrow Table or a pandas DataFrame, not {type(spine).__name__}")


def _key_column(entity: Entity, name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = entity.dimensions[name].type
    try:
        if kind == "time":
            return _time_column(name, column)
        return pc.cast(column, KEY_TYPES[kind])
    except pa.ArrowException:
        raise QueryError(f"spine column {name!r} holds {column.type} values; the key {entity.name}.{name} is "
                         f"{'an' if kind == 'integer' else 'a'} {kind}") from None


def _time_column(name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps become naive UTC microseconds: aware ones are converted, naive ones are UTC already; dates are
    midnight; ISO 8601 text is parsed."""
    kind = column.type
    target = pa.timestamp("us")
    try:
        if pa.types.is_timestamp(kind) or pa.types.is_date(kind):
            return pc.cast(column, target, safe=False)  # nanoseconds truncate to the warehouses' microseconds
        if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_null(kind):
            try:
                return pc.cast(column, target)
            except pa.ArrowInvalid:  # text with a UTC offset ('...Z', '+02:00') parses only as an aware time
                return pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), target)
    except pa.ArrowException:
        raise QueryError(f"spine column {name!r} holds text that is not an ISO 8601 date or date-time; write "
                         f"times such as 2024-03-01T12:00:00 (UTC) or 2024-03-01T12:00:00+02:00") from None
    raise QueryError(f"spine column {name!r} holds {kind} values; the time column must hold timestamps, dates or "
                     f"ISO 8601 text")


# -- the statement ------------------------------------------------------------------------------------------------


def _col(name: str, table: str) -> exp.Column:
    return exp.column(ident(name), table=ident(table))


def _table(name: str, alias: str) -> exp.Expr:
    return exp.alias_(exp.Table(this=ident(name)), ident(alias), table=True)


def interval(duration: timedelta) -> exp.Interval:
    """An exact duration in the largest unit that divides it.

    >>> interval(timedelta(days=2)).sql("postgres")
    "INTERVAL '2 DAY'"
    >>> interval(timedelta(hours=1, seconds=1)).sql("duckdb")
    "INTERVAL '3601' SECOND"
    """
    micros = duration // timedelta(microseconds=1)
    for unit, size in (("DAY", 86_400_000_000), ("HOUR", 3_600_000_000), ("MINUTE", 60_000_000),
                       ("SECOND", 1_000_000), ("MICROSECOND", 1)):
        if micros % size == 0:
            return exp.Interval(this=exp.Literal.string(str(micros // size)), unit=exp.var(unit))
    raise AssertionError("unreachable: every duration is a whole number of microseconds")


def _joined(select: exp.Select, scope: Scope) -> exp.Select:
    """FROM the scope's base entity with the joins its expressions need (inner along required relationships)."""
    select = select.from_(exp.alias_(source_of(scope.base, scope.model.dialect), ident(scope.base.name), table=True))
    for join in scope.joins.values():
        select = select.join(exp.alias_(join.source.copy(), ident(join.alias), table=True), on=join.on.copy(),
                             join_type=join.kind)
    return select


def _within(aggregate: exp.Expr, condition: exp.Expr) -> exp.Expr:
    """The aggregate over the rows that also meet `condition`: one FILTER clause, merged with the planner's own."""
    if isinstance(aggregate, exp.Filter):
        where = exp.and_(aggregate.expression.this.copy(), condition)
        return exp.Filter(this=aggregate.this.copy(), expression=exp.Where(this=where))
    return exp.Filter(this=aggregate, expression=exp.Where(this=condition))


def _label(window: timedelta | None) -> str:
    """A column-name suffix for a window: `all`, `30day`, `3601second`."""
    if window is None:
        return "all"
    length = interval(window)
    return f"{length.this.name}{length.text('unit').lower()}"


@dataclass
class _Events:
    """One event entity's rows joined to the spine and aggregated per spine row: a CTE of measures per window."""

    owner: Entity
    scope: Scope
    keys: Sequence[exp.Expr]  # the foreign key reaching the spine's entity, in its key order
    time: exp.Expr
    columns: dict[str, tuple[timedelta | None, exp.Expr]] = field(default_factory=dict)  # name -> aggregate

    @property
    def name(self) -> str:
        return f"metrics_{self.owner.name}"

    @property
    def widest(self) -> timedelta | None:
        """The window every row joined to the spine is in (None: all time)."""
        windows = {w for w, _ in self.columns.values()}
        return None if None in windows else max(w for w in windows if w is not None)

    def after(self, window: timedelta, t: exp.Expr) -> exp.Expr:
        return exp.GT(this=self.time.copy(), expression=exp.Sub(this=t.copy(), expression=interval(window)))

    def value(self, alias: str, measure: exp.Expr, window: timedelta | None, needed: str,
              guard: bool) -> exp.Expr:
        """The measure over this entity's rows in the window, per spine row. With `guard`, null when the window has
        no rows, as the planner's group would be missing (a sum is null without rows anyway; a count is 0)."""
        for column in measure.find_all(exp.Column):
            if column.table and column.table != self.owner.name:
                self.scope.reach(column.table, needed)  # the joins the planner made for filters, along one path
        name = f"{alias}__{_label(window)}"
        self.columns.setdefault(name, (window, measure.copy()))
        if not guard:
            return _col(name, self.name)
        rows = f"rows__{_label(window)}"
        self.columns.setdefault(rows, (window, exp.Count(this=exp.Star())))
        present = exp.GT(this=_col(rows, self.name), expression=exp.Literal.number(0))
        return exp.Case(ifs=[exp.If(this=present, true=_col(name, self.name))])

    def cte(self, entity: Entity, spine: str, t: exp.Expr) -> exp.Select:
        on: list[exp.Expr] = [exp.EQ(this=k.copy(), expression=_col(c, SPINE))
                                    for k, c in zip(self.keys, entity.key, strict=True)]
        on.append(exp.LTE(this=self.time.copy(), expression=t.copy()))
        widest = self.widest
        if widest is not None:
            on.append(self.after(widest, t))
        items = []
        for name, (window, aggregate) in self.columns.items():
            if window != widest and window is not None:  # the join already keeps only the widest window's rows
                aggregate = _within(aggregate, self.after(window, t))
            items.append(exp.alias_(aggregate, ident(name)))
        select = exp.select(exp.alias_(_col(SPINE_ROW, SPINE), ident(SPINE_ROW)), *items)
        select = _joined(select, self.scope)
        select = select.join(_table(spine, SPINE), on=exp.and_(*on), join_type="inner")
        return select.group_by(_col(SPINE_ROW, SPINE))


@dataclass
class _Latest:
    """One time-stamped entity's latest row known at each spine row's time: the row's time and the values asked."""

    owner: Entity
    scope: Scope
    keys: Sequence[exp.Expr]  # the foreign key to the spine's entity
    event: exp.Expr
    created: exp.Expr | None
    values: dict[str, exp.Expr] = field(default_factory=dict)  # output column -> dimension expression
    ttls: set[timedelta | None] = field(default_factory=set)

    @property
    def name(self) -> str:
        return f"latest_{self.owner.name}"

    def value(self, dimension: str, ttl: timedelta | None, t: exp.Expr, needed: str) -> exp.Expr:
        column = f"value__{dimension}"
        if column not in self.values:
            self.values[column] = self.scope.dimension(self.owner, dimension, needed)
        self.ttls.add(ttl)
        value: exp.Expr = _col(column, self.name)
        if ttl is not None:  # the latest row known at t is too old: so is every other
            fresh = exp.GTE(this=_col("event_time", self.name), expression=exp.Sub(this=t.copy(),
                                                                                   expression=interval(ttl)))
            value = exp.Case(ifs=[exp.If(this=fresh, true=value)])
        return value

    def _ranking(self) -> list[exp.Expr]:
        """Greatest time first, then greatest created time, then greatest key (key columns in declared order)."""
        return [self.event, *([self.created] if self.created is not None else []),
                *(exp.column(k, table=ident(self.owner.name)) for k in self.owner.key)]

    def _ranking_struct(self) -> exp.Struct:
        """The ranking as one comparable value, within a partition by the foreign key. Key columns that are the
        foreign key (constant in the partition) or the time itself add nothing and are left out. A null key column
        ranks lowest, as it does in ROW_NUMBER's `DESC NULLS LAST` (a struct would rank a null field highest), so
        both forms pick the same row."""
        times = [self.event, *([self.created] if self.created is not None else [])]
        fields: list[exp.Expr] = [e.copy() for e in times]
        for expr in self._ranking()[len(times):]:
            if any(expr == known for known in (*times, *self.keys)):
                continue
            fields += [exp.Not(this=exp.Is(this=expr.copy(), expression=exp.Null())), expr.copy()]
        return exp.Struct(expressions=[exp.PropertyEQ(this=ident(f"r{i}"), expression=e)
                                       for i, e in enumerate(fields)])

    def _from(self, select: exp.Select) -> exp.Select:
        return _joined(select, self.scope)

    def asof_cte(self, entity: Entity) -> exp.Select:
        """Per key and per moment a row became known, the best row known by then (a running ARG_MAX)."""
        known_from = self.event.copy() if self.created is None else exp.Greatest(
            this=self.event.copy(), expressions=[self.created.copy()], ignore_nulls=True)  # neither is null here
        fields = {"event_time": self.event, **self.values}
        best = exp.ArgMax(
            this=exp.Struct(expressions=[exp.PropertyEQ(this=ident(n), expression=e.copy())
                                         for n, e in fields.items()]),
            expression=self._ranking_struct())
        window = exp.Window(this=best, partition_by=[k.copy() for k in self.keys],
                            order=exp.Order(expressions=[exp.Ordered(this=known_from.copy())]))
        inner = exp.select(*(exp.alias_(k.copy(), ident(c)) for k, c in zip(self.keys, entity.key, strict=True)),
                           exp.alias_(known_from, ident("known_from")), exp.alias_(window, ident("best")))
        not_null = [exp.Not(this=exp.Is(this=e.copy(), expression=exp.Null()))
                    for e in (*self.keys, self.event, *([self.created] if self.created is not None else []))]
        inner = self._from(inner).where(exp.and_(*not_null))
        outer = exp.select(*(exp.column(ident(c)) for c in (*entity.key, "known_from")),
                           *(exp.alias_(exp.Dot(this=exp.column(ident("best")), expression=ident(n)), ident(n))
                             for n in fields))
        return outer.from_(exp.alias_(exp.Subquery(this=inner), ident("running"), table=True))

    def asof_join(self, entity: Entity, t: exp.Expr) -> exp.Join:
        on: list[exp.Expr] = [exp.EQ(this=_col(c, SPINE), expression=_col(c, self.name)) for c in entity.key]
        on.append(exp.GTE(this=t.copy(), expression=_col("known_from", self.name)))
        return exp.Join(this=exp.Table(this=ident(self.name)), on=exp.and_(*on), method="ASOF", side="LEFT")

    def ranked_cte(self, entity: Entity, spine: str, t: exp.Expr) -> exp.Select:
        """Per spine row, its best known row: ROW_NUMBER over the rows joined to the spine."""
        on: list[exp.Expr] = [exp.EQ(this=k.copy(), expression=_col(c, SPINE))
                                    for k, c in zip(self.keys, entity.key, strict=True)]
        on.append(exp.LTE(this=self.event.copy(), expression=t.copy()))
        if self.created is not None:
            on.append(exp.LTE(this=self.created.copy(), expression=t.copy()))
        if None not in self.ttls:
            oldest = max(ttl for ttl in self.ttls if ttl is not None)
            on.append(exp.GTE(this=self.event.copy(), expression=exp.Sub(this=t.copy(), expression=interval(oldest))))
        order = exp.Order(expressions=[exp.Ordered(this=e.copy(), desc=True, nulls_first=False)
                                       for e in self._ranking()])
        rank = exp.Window(this=exp.RowNumber(), partition_by=[_col(SPINE_ROW, SPINE)], order=order)
        fields = {"event_time": self.event, **self.values}
        inner = exp.select(exp.alias_(_col(SPINE_ROW, SPINE), ident(SPINE_ROW)),
                           *(exp.alias_(e.copy(), ident(n)) for n, e in fields.items()),
                           exp.alias_(rank, ident("rank")))
        inner = self._from(inner).join(_table(spine, SPINE), on=exp.and_(*on), join_type="inner")
        outer = exp.select(*(exp.column(ident(c)) for c in (SPINE_ROW, *fields)))
        outer = outer.from_(exp.alias_(exp.Subquery(this=inner), ident("ranked"), table=True))
        return outer.where(exp.EQ(this=exp.column(ident("rank")), expression=exp.Literal.number(1)))


class _TrainingBuilder:
    def __init__(self, model: Model, entity: Entity, spine: str, dialect: str) -> None:
        if SPINE in model.entities:
            raise CompileError(f"an entity is named {SPINE!r}, the spine's alias in training-set SQL; rename it")
        self.model = model
        self.entity = entity
        self.spine = spine
        self.asof = dialect in ASOF_DIALECTS
        self.scope = Scope(model, entity)
        self.t = _col(SPINE_TIME, SPINE)
        self.exists = row_exists(entity)
        self.known = known_at(self.scope, entity, self.t)
        self.events: dict[str, _Events] = {}
        self.latest: dict[str, _Latest] = {}
        self.values: dict[str, exp.Expr] = {}

    def value(self, name: str, trail: tuple[str, ...] = ()) -> exp.Expr:
        if name in self.values:
            return self.values[name]
        if name in trail:
            raise QueryError(f"derived features form a cycle: {' -> '.join((*trail, name))}")
        feature = self.entity.features[name]
        needed = f"feature {self.entity.name}.{name}"
        if feature.kind == "dimension":
            expr = self.scope.dimension(self.entity, feature.ref or "", needed)
            value: exp.Expr = exp.Case(ifs=[exp.If(this=self.known.copy(), true=expr)])
        elif feature.kind == "metric":
            value = self._metric(feature, needed)
        elif feature.kind == "latest":
            value = exp.Case(ifs=[exp.If(this=self.exists.copy(), true=self._latest(feature, needed))])
        else:
            value = derived(feature, lambda other: self.value(other, (*trail, name)))
        self.values[name] = value
        return value

    def _metric(self, feature: Feature, needed: str) -> exp.Expr:
        # The planner says what to aggregate (filters, joins for them, derived metrics over measures), grouped by
        # the entity's key; each of its aggregates becomes measures per spine row.
        the_plan = plan(self.model, SemanticQuery(metrics=(feature.ref or "",),
                                                  dimensions=tuple(f"{self.entity.name}.{k}" for k in self.entity.key)))
        measures: dict[str, exp.Expr] = {}
        for aggregate in the_plan.aggregates:
            if aggregate.where is not None:  # no filter was asked for, so none should come back
                raise CompileError(f"{needed}: the plan of {feature.ref} filters its rows; cannot compute it per "
                                   f"spine row")
            if aggregate.windows or aggregate.after is not None:
                raise QueryError(f"{needed}: {feature.ref} is a cumulative or period-over-period metric, which is "
                                 f"a series over periods, not a value at a point in time; use its base metric "
                                 f"with the feature's `window`")
            events = self._events(self.model.entities[aggregate.entity], needed)
            for alias, measure in aggregate.measures:
                # An aggregate over no rows is null, except a count: 0. A count feature reads that 0 as it is; a
                # count inside a derived metric must be null, as the planner's missing group would give.
                core = measure.this if isinstance(measure, exp.Filter) else measure
                guard = isinstance(core, exp.Count) and not isinstance(the_plan.metrics[0][1], exp.Column)
                measures[alias] = events.value(alias, measure, feature.window, needed, guard)
        (_, expr), = the_plan.metrics
        value = expr.copy().transform(
            lambda n: exp.Paren(this=measures[n.name].copy()) if isinstance(n, exp.Column) and n.name in measures
            else n, copy=False)
        owner, _, metric_name = (feature.ref or "").rpartition(".")
        if counts(self.model.entities[owner].metrics[metric_name]):
            value = exp.Coalesce(this=value, expressions=[exp.Literal.number(0)])
            return exp.Case(ifs=[exp.If(this=self.known.copy(), true=value)])
        return exp.Case(ifs=[exp.If(this=self.exists.copy(), true=value)])

    def _events(self, owner: Entity, needed: str) -> _Events:
        if owner.name not in self.events:
            scope = Scope(self.model, owner)
            path = join_path(self.model, owner.name, self.entity.name, needed)
            if not path:  # the entity's own metric: its key is its own
                keys = [exp.column(k, table=ident(owner.name)) for k in self.entity.key]
            else:  # the foreign key of the last hop: no join to the entity itself
                holder = path[-2].entity if len(path) > 1 else owner.name
                scope.reach(holder, needed)
                keys = [exp.column(k, table=ident(holder)) for k in path[-1].key]
            self.events[owner.name] = _Events(owner, scope, keys, scope.time(owner, needed))
        return self.events[owner.name]

    def _latest(self, feature: Feature, needed: str) -> exp.Expr:
        owner_name, _, dimension = (feature.ref or "").rpartition(".")
        if owner_name not in self.latest:
            owner = self.model.entities[owner_name]
            relationship = owner.relationship_to(self.entity.name)
            if relationship is None:
                raise QueryError(f"{needed}: {owner_name!r} has no relationship to {self.entity.name!r}")
            scope = Scope(self.model, owner)
            created = None
            if owner.created is not None:
                created_owner, _, created_name = owner.created.rpartition(".")
                created = scope.dimension(self.model.entities[created_owner] if created_owner else owner,
                                          created_name, needed)
            keys = [exp.column(k, table=ident(owner.name)) for k in relationship.key]
            self.latest[owner_name] = _Latest(owner, scope, keys, scope.time(owner, needed), created)
        return self.latest[owner_name].value(dimension, feature.ttl, self.t, needed)

    def build(self, names: Sequence[str]) -> tuple[exp.Select, tuple[OutputColumn, ...]]:
        entity = self.entity
        columns = tuple(OutputColumn(n, n, feature_type(self.model, entity, entity.features[n]), "feature",
                                     entity.features[n].description) for n in names)
        items: list[exp.Expr] = [_col(SPINE_ROW, SPINE)]
        for column in columns:
            value = self.value(column.name).copy()
            if column.type in _SQL_CASTS:
                value = exp.cast(value, _SQL_CASTS[column.type])
            items.append(exp.alias_(value, ident(column.alias)))
        final = exp.select(*items).from_(_table(self.spine, SPINE))
        final = final.join(exp.alias_(source_of(entity, self.model.dialect), ident(entity.name), table=True),
                           on=exp.and_(*(exp.EQ(this=_col(c, SPINE), expression=exp.column(c, table=ident(entity.name)))
                                         for c in entity.key)), join_type="left")
        for join in self.scope.joins.values():
            if join.alias != entity.name:
                final = final.join(exp.alias_(join.source, ident(join.alias), table=True), on=join.on,
                                   join_type="left")
        ctes: list[tuple[str, exp.Select]] = []
        for latest in self.latest.values():
            if self.asof:
                ctes.append((latest.name, latest.asof_cte(entity)))
                final.append("joins", latest.asof_join(entity, self.t))
            else:
                ctes.append((latest.name, latest.ranked_cte(entity, self.spine, self.t)))
                final = self._join_on_row(final, latest.name)
        for events in self.events.values():
            ctes.append((events.name, events.cte(entity, self.spine, self.t)))
            final = self._join_on_row(final, events.name)
        for name, cte in ctes:
            final = final.with_(ident(name), as_=cte, copy=False)
        return final.order_by(_col(SPINE_ROW, SPINE), copy=False), columns

    @staticmethod
    def _join_on_row(select: exp.Select, cte: str) -> exp.Select:
        return select.join(exp.Table(this=ident(cte)), on=exp.EQ(this=_col(SPINE_ROW, SPINE),
                                                                 expression=_col(SPINE_ROW, cte)), join_type="left")


def build_training(model: Model, spine: Spine, table: str, dialect: str) -> tuple[exp.Select, tuple[OutputColumn, ...]]:
    """The statement answering a training-set request over the spine rows registered as `table`, and its feature
    columns; the statement returns `spine_row` then one column per feature, ordered by `spine_row`."""
    return _TrainingBuilder(model, model.entities[spine.entity], table, dialect).build(spine.names)


def assemble(spine: Spine, answer: pa.Table, columns: Sequence[OutputColumn]) -> pa.Table:
    """The spine as given with the feature columns appended, each cast to its type (integers stay integers, with
    nulls)."""
    expected = pa.chunked_array([np.arange(spine.table.num_rows, dtype=np.int64)])
    rows = answer.column(SPINE_ROW) if SPINE_ROW in answer.column_names else None
    if rows is None or not pc.cast(rows, pa.int64()).equals(expected):
        raise WarehouseError(f"the warehouse answered {answer.num_rows} rows for a spine of {spine.table.num_rows} "
                             f"rows, or not in spine order")
    table = spine.table
    for column in columns:
        table = table.append_column(column.name, pc.cast(answer.column(column.alias), OUTPUT_TYPES[column.type]))
    return table


def to_pandas(table: pa.Table) -> Any:
    """A DataFrame with nullable integer and boolean columns: an integer column with nulls never becomes floats."""
    import pandas as pd  # optional: pip install -e ".[ml]"

    mapping = {pa.int8(): pd.Int8Dtype(), pa.int16(): pd.Int16Dtype(), pa.int32(): pd.Int32Dtype(),
               pa.int64(): pd.Int64Dtype(), pa.bool_(): pd.BooleanDtype()}
    return table.to_pandas(types_mapper=mapping.get)


# -- files and bodies -------------------------------------------------------------------------------------------


def format_of(name: str, what: str = "a spine") -> str:
    """The format from a file name or a content type: parquet, csv or arrow (an IPC stream or file).

    >>> format_of("application/vnd.apache.arrow.stream"), format_of("spine.csv"), format_of("text/csv; charset=utf-8")
    ('arrow', 'csv', 'csv')
    """
    text = name.lower().split(";")[0].strip()
    if text.endswith((".parquet", ".pq", "/vnd.apache.parquet", "/x-parquet", "/parquet")):
        return "parquet"
    if text.endswith((".csv", "/csv")):
        return "csv"
    if text.endswith((".arrow", ".arrows", ".feather", ".ipc", "/vnd.apache.arrow.stream",
                      "/vnd.apache.arrow.file")):
        return "arrow"
    raise QueryError(f"{name!r}: {what} is Parquet (.parquet, application/vnd.apache.parquet), CSV (.csv, "
                     f"text/csv) or Arrow IPC (.arrow, application/vnd.apache.arrow.stream)")


def read_spine(source: bytes | Path, fmt: str, model: Model, entity: str) -> pa.Table:
    """A spine from a file or a request body. CSV key columns are read with the key's type, so a string key such
    as '007' keeps its zeros; other CSV columns are typed by inference."""
    data = pa.py_buffer(source) if isinstance(source, bytes) else pa.memory_map(str(source))
    try:
        if fmt == "parquet":
            return pq.read_table(data)
        if fmt == "arrow":
            try:
                return pa.ipc.open_stream(data).read_all()
            except pa.ArrowInvalid:
                return pa.ipc.open_file(data).read_all()
        found = model.entities.get(entity)
        types = {k: KEY_TYPES[found.dimensions[k].type] for k in found.key} if found else {}
        # Only an empty unquoted field is null: "NA" is a region, not a missing value.
        options = pa_csv.ConvertOptions(column_types=types, null_values=[""], strings_can_be_null=True,
                                        quoted_strings_can_be_null=False)
        return pa_csv.read_csv(pa.BufferReader(data) if isinstance(source, bytes) else str(source),
                               convert_options=options)
    except (pa.ArrowException, OSError) as error:
        raise QueryError(f"cannot read the spine as {fmt}: {str(error).splitlines()[0]}") from None


def write_table(table: pa.Table, path: Path) -> None:
    """Parquet, CSV or an Arrow IPC stream, by the file name's extension."""
    fmt = format_of(path.name, "the output")
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        pa_csv.write_csv(table, path)
    else:
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)


def ipc_stream(table: pa.Table, rows_per_batch: int = 65_536) -> Iterator[bytes]:
    """The table as an Arrow IPC stream, yielded a record batch at a time."""
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        yield _drain(sink)
        for batch in table.to_batches(max_chunksize=rows_per_batch):
            writer.write_batch(batch)
            yield _drain(sink)
    yield _drain(sink)  # the end-of-stream marker


def _drain(sink: io.BytesIO) -> bytes:
    data = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    return data
