"""Feature values as of points in time, in one statement: the one point-in-time builder.

A spine is a set of rows (`spine_row`, the entity's key columns, `spine_time`), each answered as of its own time t:
a training set's spine is the caller's table registered for the statement; an online lookup's is a VALUES list of
the requested keys, all at the request's time. Both are built here, by `_PointInTime`, so a value online is the
value of the same (key, t) in a training set. The statement returns one row per spine row: an online lookup's
ordered by `spine_row`, a training set's in no order (`training.assemble` puts them in spine order in Arrow, which
costs less memory than the warehouse sorting every feature column).

Point-in-time rules:
- metric feature: per event entity, one join of its rows to the spine on the key with `time <= t` (and
  `time > t - widest window`), grouped by spine row. Each window is a FILTER on the planner's own aggregate, so every
  aggregate works (sum, count, distinct count, percentile, derived metrics over them) and a window costs no extra
  pass. Counts of a key that exists at t are 0, not null, when it has no events. For a registered spine on
  PostgreSQL, which has no ASOF join, counts and sums come instead from per-key arrays (`_Prefix`): the rows' times
  sorted and running totals at each, read at t and at t - window by WIDTH_BUCKET's binary search, so each source is
  read and sorted once, whatever the spine (the range join yields a pair per spine row and earlier event);
- latest feature: the related entity's latest row with time <= t, created <= t when it declares `created`, and time
  >= t - ttl; ties go to the greatest created time, then the greatest key. For a registered spine on DuckDB (ASOF
  joins), a row becomes known at greatest(time, created); a running ARG_MAX in that order gives, per key, the best
  row known so far, and one ASOF LEFT JOIN at t finds it (a ttl then only has to check that row's time: if the best
  known row is too old, so is every other). Without `created`, the ASOF join orders the rows by (time, tie-break)
  itself and finds the best at t directly. For a registered spine on PostgreSQL the same two ways with arrays: the
  values in ranking order beside the sorted times (`_Prefix`), or, with `created`, the known-from times sorted and,
  at each, the position of the best row known by then (a running MAX). Otherwise (other warehouses, and small
  VALUES spines, where reading only the requested keys' rows is cheaper): ROW_NUMBER over the rows joined to the
  spine, partitioned by spine row;
- dimension feature: the entity's own row, null when the key is unknown or its time is after t;
- derived feature: the expression over the other features' values, in the same statement.
Unknown keys give nulls throughout.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlglot import exp

from semantic.errors import CompileError, QueryError
from semantic.execute import PREFIX_MIN_ROWS
from semantic.features.request import FeatureRequest
from semantic.model import Entity, Feature, Metric, Model
from semantic.plan.paths import join_path
from semantic.plan.planner import OutputColumn, plan
from semantic.plan.scope import Scope, ident
from semantic.plan.timemodel import time_literal
from semantic.query import SemanticQuery
from semantic.sql.joins import aliased, join_all, joined
from semantic.types import feature_type

SPINE = "spine"  # the spine's alias in SQL
SPINE_ROW = "spine_row"
SPINE_TIME = "spine_time"
SPINE_VALUES = "spine_values"  # an online lookup's spine, as a CTE
ASOF_DIALECTS = frozenset({"duckdb"})
PREFIX_DIALECTS = frozenset({"postgres"})  # sorted per-key arrays searched by WIDTH_BUCKET
_TIMESTAMP = exp.DataType.build("TIMESTAMP")
# Numbers are cast in SQL, so every warehouse answers with the same column types (a DECIMAL sum is a DOUBLE).
_SQL_CASTS = {"integer": exp.DataType.Type.BIGINT, "number": exp.DataType.Type.DOUBLE}


def _col(name: str, table: str) -> exp.Column:
    return exp.column(ident(name), table=ident(table))


def _struct(*fields: exp.Expr) -> exp.Struct:
    """`{'r0': a, 'r1': b, ...}`: compared field by field."""
    return exp.Struct(expressions=[exp.PropertyEQ(this=ident(f"r{i}"), expression=e) for i, e in enumerate(fields)])


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
    return joined(select, scope.model, scope.base, scope.joins.values())


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


def _decomposable(measure: exp.Expr) -> bool:
    """A count or sum (not of distinct values), whose value over (t - window, t] is its running total at t less
    its running total at t - window."""
    core = measure.this if isinstance(measure, exp.Filter) else measure
    return isinstance(core, (exp.Count, exp.Sum)) and not isinstance(core.this, exp.Distinct)


def _element(array: exp.Expr, position: exp.Expr) -> exp.Expr:
    """`array[position]`: null at position 0 or null, as at any position past the end."""
    return exp.Bracket(this=array, expressions=[position], offset=1)


def _zero(value: exp.Expr) -> exp.Expr:
    return exp.Coalesce(this=value, expressions=[exp.Literal.number(0)])


def _position(t: exp.Expr, times: exp.Expr) -> exp.Expr:
    """How many of the sorted `times` are at or before `t` (WIDTH_BUCKET's binary search); 0 for a null `t` or
    no times."""
    return _zero(exp.WidthBucket(this=t, threshold=times))


def _array_agg(value: exp.Expr, *order: exp.Ordered) -> exp.ArrayAgg:
    return exp.ArrayAgg(this=exp.Order(this=value, expressions=list(order)))


def _ascending(expr: exp.Expr) -> exp.Ordered:
    return exp.Ordered(this=expr, nulls_first=True)


@dataclass
class _Spined:
    """What a source in the prefix form adds to each spine row, before the features are computed: its per-key
    arrays (a LEFT JOIN on the key) and positions in them, as columns of the spine named `<cte>__<name>`."""

    cte: str
    columns: dict[str, exp.Expr] = field(default_factory=dict)  # name -> expression over the spine and the CTE

    def column(self, name: str) -> exp.Column:
        return _col(f"{self.cte}__{name}", SPINE)

    def array(self, name: str) -> exp.Column:
        self.columns.setdefault(name, _col(name, self.cte))
        return self.column(name)



@dataclass
class _Prefix:
    """One source's rows per key (its foreign key to the spine's entity) as arrays, for a registered spine on
    PostgreSQL, which has no ASOF join: `t`, the rows' times sorted; each running total (a window aggregate over
    the rows up to that time, ties included, so every row of a tie holds the total of all of them); and values in
    ranking order (time, then key: ties go to the greatest key) for latest features. WIDTH_BUCKET's binary search
    gives how many rows are at or before t, so a count or sum over (t - window, t] is a difference of two running
    totals, and the latest row at or before t is the one at t's position. Metric and latest features of one
    source share its arrays, its scope and one pass over its rows. Integer and decimal sums are exact; a float sum
    over a window, a difference of two running sums, may differ from the window's own sum in its last digits."""

    owner: Entity
    scope: Scope
    keys: Sequence[exp.Expr]
    time: exp.Expr
    spined: _Spined
    running: dict[str, exp.Expr] = field(default_factory=dict)  # array name -> window aggregate
    ranked: dict[str, exp.Expr] = field(default_factory=dict)  # array name -> value, in ranking order

    def at(self, window: timedelta | None, t: exp.Expr) -> exp.Column:
        """Per spine row, how many of the key's rows are at or before t (window None) or t - window."""
        name = f"at__{_label(window)}"
        if name not in self.spined.columns:
            probe = t.copy() if window is None else exp.Sub(this=t.copy(), expression=interval(window))
            self.spined.columns[name] = _position(probe, _col("t", self.spined.cte))
        return self.spined.column(name)

    def total(self, name: str, aggregate: exp.Expr, at: exp.Expr) -> exp.Expr:
        self.running.setdefault(name, aggregate)
        return _element(self.spined.array(name), at.copy())

    def latest(self, name: str, value: exp.Expr, t: exp.Expr) -> exp.Expr:
        """The value of the latest row at or before t (null without one)."""
        self.ranked.setdefault(name, value)
        return _element(self.spined.array(name), self.at(None, t))

    def cte(self, entity: Entity, within: Callable[[exp.Expr], exp.Expr]) -> exp.Select:
        t = exp.cast(self.time.copy(), _TIMESTAMP)
        partition = [k.copy() for k in self.keys]
        items: list[exp.Expr] = [*(exp.alias_(k.copy(), ident(c)) for k, c in zip(self.keys, entity.key, strict=True)),
                                 exp.alias_(t.copy(), ident("t"))]
        for name, aggregate in self.running.items():
            window = exp.Window(this=aggregate.copy(), partition_by=[k.copy() for k in partition],
                                order=exp.Order(expressions=[exp.Ordered(this=t.copy())]))
            items.append(exp.alias_(window, ident(name)))
        ranking = [exp.Ordered(this=exp.column(ident("t")))]
        if self.ranked:  # then the key columns, a null one lowest, as ROW_NUMBER's DESC NULLS LAST ranks them
            ties = {f"tie__{k}": exp.column(k, table=ident(self.owner.name)) for k in self.owner.key}
            items += [exp.alias_(e.copy(), ident(n)) for n, e in (*self.ranked.items(), *ties.items())]
            ranking += [_ascending(exp.column(ident(n))) for n in ties]
        present = [exp.Not(this=exp.Is(this=e.copy(), expression=exp.Null())) for e in (*self.keys, self.time)]
        inner = joined(exp.select(*items), self.scope.model, self.scope.base, self.scope.joins.values())
        inner = inner.where(exp.and_(*present, within(self.keys[0])))
        by_time = exp.Ordered(this=exp.column(ident("t")))
        outer = exp.select(*(exp.column(ident(c)) for c in entity.key),
                           *(exp.alias_(_array_agg(exp.column(ident(n)), by_time.copy()), ident(n))
                             for n in ("t", *self.running)),
                           *(exp.alias_(_array_agg(exp.column(ident(n)), *(o.copy() for o in ranking)), ident(n))
                             for n in self.ranked))
        outer = outer.from_(exp.alias_(exp.Subquery(this=inner), ident("running"), table=True))
        return outer.group_by(*(exp.column(ident(c)) for c in entity.key))


@dataclass
class _Events:
    """One event entity's rows joined to the spine and aggregated per spine row: a CTE of measures per window;
    with `arrays`, counts and sums from its running totals instead."""

    owner: Entity
    scope: Scope
    keys: Sequence[exp.Expr]  # the foreign key reaching the spine's entity, in its key order
    time: exp.Expr
    columns: dict[str, tuple[timedelta | None, exp.Expr]] = field(default_factory=dict)  # name -> aggregate
    arrays: _Prefix | None = None

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

    def _from_totals(self, arrays: _Prefix, alias: str, measure: exp.Expr, window: timedelta | None,
                     t: exp.Expr, guard: bool) -> exp.Expr:
        """The measure over (t - window, t] as a difference of running totals: a count as it is (0 without rows),
        a sum null when no row in the window has a value, as SUM over them would be."""
        core = measure.this if isinstance(measure, exp.Filter) else measure
        i = arrays.at(None, t)
        j = None if window is None else arrays.at(window, t)
        rows: exp.Expr = i.copy() if j is None else exp.Sub(this=i.copy(), expression=j.copy())

        def change(name: str, aggregate: exp.Expr) -> exp.Expr:
            upto = _zero(arrays.total(name, aggregate, i))
            return upto if j is None else exp.Sub(this=upto, expression=_zero(arrays.total(name, aggregate, j)))

        value: exp.Expr
        if isinstance(core, exp.Count):  # a count of every row is the position itself
            plain = isinstance(core.this, exp.Star) and core is measure
            value = rows.copy() if plain else change(f"run__{alias}", measure)
        elif j is None:
            value = arrays.total(f"run__{alias}", measure, i)
        else:
            counted: exp.Expr = exp.Count(this=core.this.copy())
            if isinstance(measure, exp.Filter):
                counted = exp.Filter(this=counted, expression=measure.expression.copy())
            present = exp.GT(this=change(f"values__{alias}", counted), expression=exp.Literal.number(0))
            total = exp.Sub(this=arrays.total(f"run__{alias}", measure, i),
                            expression=_zero(arrays.total(f"run__{alias}", measure, j)))
            value = exp.Case(ifs=[exp.If(this=present, true=total)])
        if guard:
            value = exp.Case(ifs=[exp.If(this=exp.GT(this=rows, expression=exp.Literal.number(0)), true=value)])
        return value

    def value(self, alias: str, measure: exp.Expr, window: timedelta | None, needed: str,
              guard: bool, t: exp.Expr) -> exp.Expr:
        """The measure over this entity's rows in the window, per spine row. With `guard`, null when the window has
        no rows, as the planner's group would be missing (a sum is null without rows anyway; a count is 0)."""
        for column in measure.find_all(exp.Column):
            if column.table and column.table != self.owner.name:
                self.scope.reach(column.table, needed)  # the joins the planner made for filters, along one path
        if self.arrays is not None and _decomposable(measure):
            return self._from_totals(self.arrays, alias, measure, window, t, guard)
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
    # The prefix form: without a `created` time, the source's arrays (`_Prefix`); with one, `known` (its own CTE).
    arrays: _Prefix | None = None
    known: _Spined | None = None

    @property
    def name(self) -> str:
        return f"latest_{self.owner.name}"

    def _field(self, name: str, expr: exp.Expr, t: exp.Expr) -> exp.Expr:
        if self.arrays is not None:
            if name == "event_time":  # for the ttl: the sorted times hold it, as a TIMESTAMP
                return _element(self.arrays.spined.array("t"), self.arrays.at(None, t))
            return self.arrays.latest(name, expr, t)
        if self.known is None:
            return _col(name, self.name)
        if "at" not in self.known.columns:  # the best known row's position in ranking order
            self.known.columns["at"] = _element(_col("best", self.name),
                                                exp.WidthBucket(this=t.copy(), threshold=_col("known", self.name)))
        return _element(self.known.array(name), self.known.column("at"))

    def value(self, dimension: str, ttl: timedelta | None, t: exp.Expr, needed: str) -> exp.Expr:
        column = f"value__{dimension}"
        if column not in self.values:
            self.values[column] = self.scope.dimension(self.owner, dimension, needed)
        self.ttls.add(ttl)
        value = self._field(column, self.values[column], t)
        if ttl is not None:  # the latest row known at t is too old: so is every other
            fresh = exp.GTE(this=self._field("event_time", self.event, t),
                            expression=exp.Sub(this=t.copy(), expression=interval(ttl)))
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
        return _struct(*fields)

    def _from(self, select: exp.Select) -> exp.Select:
        return _joined(select, self.scope)

    def _tie_break(self) -> list[exp.Expr]:
        """The ranking after the times, as `_ranking_struct` orders it: a non-null flag and the value of each key
        column that can differ among rows of one foreign key and time."""
        times = 1 if self.created is None else 2
        return [e.expression for e in self._ranking_struct().expressions[times:]]

    def known_cte(self, entity: Entity, within: Callable[[exp.Expr], exp.Expr]) -> exp.Select:
        """Per key, with a `created` time, its rows as arrays: `known`, the times they became known
        (greatest(time, created)), sorted; the values in ranking order (time, created time, key); and `best`: at
        each known time, the position in ranking order of the best row known by then (a running MAX, ties
        included), since a row known later may rank below one known earlier."""
        if self.created is None:
            raise AssertionError("unreachable: latest features without a created time read the source's arrays")
        fields = {"event_time": self.event, **self.values}
        keys = [exp.alias_(k.copy(), ident(c)) for k, c in zip(self.keys, entity.key, strict=True)]
        present = [exp.Not(this=exp.Is(this=e.copy(), expression=exp.Null()))
                   for e in (*self.keys, self.event, self.created)]
        known = exp.cast(exp.Greatest(this=self.event.copy(), expressions=[self.created.copy()], ignore_nulls=True),
                         _TIMESTAMP)  # neither is null here
        rank = exp.Window(this=exp.RowNumber(), partition_by=[k.copy() for k in self.keys],
                          order=exp.Order(expressions=[_ascending(e.copy()) for e in self._ranking()]))
        ranked = self._from(exp.select(*keys, exp.alias_(known, ident("known")),
                                       *(exp.alias_(e.copy(), ident(n)) for n, e in fields.items()),
                                       exp.alias_(rank, ident("rank")))).where(exp.and_(*present,
                                                                                         within(self.keys[0])))
        best = exp.Window(this=exp.Max(this=exp.column(ident("rank"))),
                          partition_by=[exp.column(ident(c)) for c in entity.key],
                          order=exp.Order(expressions=[exp.Ordered(this=exp.column(ident("known")))]))
        running = exp.select(exp.Star(), exp.alias_(best, ident("best"))).from_(
            exp.alias_(exp.Subquery(this=ranked), ident("ranked"), table=True))
        by_known, by_rank = exp.Ordered(this=exp.column(ident("known"))), exp.Ordered(this=exp.column(ident("rank")))
        outer = exp.select(*(exp.column(ident(c)) for c in entity.key),
                           *(exp.alias_(_array_agg(exp.column(ident(n)), by_known.copy()), ident(n))
                             for n in ("known", "best")),
                           *(exp.alias_(_array_agg(exp.column(ident(n)), by_rank.copy()), ident(n)) for n in fields))
        outer = outer.from_(exp.alias_(exp.Subquery(this=running), ident("running"), table=True))
        return outer.group_by(*(exp.column(ident(c)) for c in entity.key))

    def asof_cte(self, entity: Entity) -> exp.Select:
        """Per key and per moment a row became known, what an ASOF join at t finds.

        With a `created` time a row is known from greatest(time, created), and a later-known row may rank below an
        earlier one, so the best known so far is a running ARG_MAX. Without one a row is known from its own time,
        so the best row known at t is the latest at or before t, ties going to the greatest key: the rows are read
        as they are, each known from `{r0: time, r1: {tie-break}}`, and the join probes with `{r0: t, r1: NULL}`
        (null when t is). DuckDB ranks a NULL struct field above every value, so the probe is at or after exactly
        the rows with time <= t, and the ASOF join takes the greatest of those: the latest, then the greatest key.
        (Reducing the rows of a (key, time) to their best by an ARG_MAX per group first gave the same rows at
        ~120 MB more peak memory for 1M orders.)"""
        fields = {"event_time": self.event, **self.values}
        not_null = [exp.Not(this=exp.Is(this=e.copy(), expression=exp.Null()))
                    for e in (*self.keys, self.event, *([self.created] if self.created is not None else []))]
        keys = [exp.alias_(k.copy(), ident(c)) for k, c in zip(self.keys, entity.key, strict=True)]
        if self.created is None:
            tie_break = self._tie_break()
            known: exp.Expr = self.event.copy()
            if tie_break:
                known = _struct(known, _struct(*tie_break))
            select = exp.select(*keys, exp.alias_(known, ident("known_from")),
                                *(exp.alias_(e.copy(), ident(n)) for n, e in fields.items()))
            return self._from(select).where(exp.and_(*not_null))
        known_from = exp.Greatest(this=self.event.copy(), expressions=[self.created.copy()],
                                  ignore_nulls=True)  # neither is null here
        best: exp.Expr = exp.ArgMax(
            this=exp.Struct(expressions=[exp.PropertyEQ(this=ident(n), expression=e.copy())
                                         for n, e in fields.items()]),
            expression=self._ranking_struct())
        best = exp.Window(this=best, partition_by=[k.copy() for k in self.keys],
                          order=exp.Order(expressions=[exp.Ordered(this=known_from.copy())]))
        inner = exp.select(*keys, exp.alias_(known_from, ident("known_from")), exp.alias_(best, ident("best")))
        inner = self._from(inner).where(exp.and_(*not_null))
        outer = exp.select(*(exp.column(ident(c)) for c in (*entity.key, "known_from")),
                           *(exp.alias_(exp.Dot(this=exp.column(ident("best")), expression=ident(n)), ident(n))
                             for n in fields))
        return outer.from_(exp.alias_(exp.Subquery(this=inner), ident("running"), table=True))

    def asof_join(self, entity: Entity, t: exp.Expr) -> exp.Join:
        on: list[exp.Expr] = [exp.EQ(this=_col(c, SPINE), expression=_col(c, self.name)) for c in entity.key]
        probe: exp.Expr = t.copy()
        if self.created is None and self._tie_break():  # null when t is: a null field would rank above every row
            probe = exp.Case(ifs=[exp.If(this=exp.Not(this=exp.Is(this=t.copy(), expression=exp.Null())),
                                         true=_struct(probe, exp.Null()))])
        on.append(exp.GTE(this=probe, expression=_col("known_from", self.name)))
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


class _PointInTime:
    """Feature values of one entity for the spine rows read from the table (or CTE) `spine`. `form`: "asof" (latest
    features by ASOF joins: a registered spine on a warehouse with them), "prefix" (counts, sums and latest
    features from sorted per-key arrays: a registered spine on PostgreSQL) or "ranked" (range joins and
    ROW_NUMBER per spine row)."""

    def __init__(self, model: Model, entity: Entity, spine: str, *, form: str) -> None:
        if SPINE in model.entities:
            raise CompileError(f"an entity is named {SPINE!r}, the spine's alias in feature SQL; rename it")
        self.model = model
        self.entity = entity
        self.spine = spine
        self.form = form
        self.scope = Scope(model, entity)
        self.t = _col(SPINE_TIME, SPINE)
        self.exists = row_exists(entity)
        self.known = known_at(self.scope, entity, self.t)
        self.events: dict[str, _Events] = {}
        self.arrays: dict[tuple[str, tuple[str, ...]], _Prefix] = {}  # by source and key
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
                measures[alias] = events.value(alias, measure, feature.window, needed, guard, self.t)
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
            arrays = self._arrays(owner, scope, keys, needed) if self.form == "prefix" else None
            scope = scope if arrays is None else arrays.scope
            self.events[owner.name] = _Events(owner, scope, keys, scope.time(owner, needed), arrays=arrays)
        return self.events[owner.name]

    def _arrays(self, owner: Entity, scope: Scope, keys: Sequence[exp.Expr], needed: str) -> _Prefix:
        """The source's arrays, shared by its metric and latest features when both reach the spine's entity by
        the same key."""
        found = self.arrays.get((owner.name, tuple(k.sql() for k in keys)))
        if found is None:
            found = _Prefix(owner, scope, keys, scope.time(owner, needed), _Spined(f"prefix_{owner.name}"))
            self.arrays[(owner.name, tuple(k.sql() for k in keys))] = found
        return found

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
            arrays, known = None, None
            if self.form == "prefix" and created is None:
                arrays = self._arrays(owner, scope, keys, needed)
                scope = arrays.scope
            elif self.form == "prefix":
                known = _Spined(f"latest_{owner_name}")
            self.latest[owner_name] = _Latest(owner, scope, keys, scope.time(owner, needed), created,
                                              arrays=arrays, known=known)
        return self.latest[owner_name].value(dimension, feature.ttl, self.t, needed)

    def build(self, names: Sequence[str], leading: Sequence[exp.Expr], spine_cte: exp.Select | None = None
              ) -> tuple[exp.Select, tuple[OutputColumn, ...]]:
        """SELECT `leading` (spine columns) and one column per feature FROM the spine, one row per spine row in no
        order; `spine_cte`, when given, is the spine itself, as the first CTE."""
        entity = self.entity
        columns = tuple(OutputColumn(n, n, feature_type(self.model, entity, entity.features[n]), "feature",
                                     entity.features[n].description) for n in names)
        items: list[exp.Expr] = [e.copy() for e in leading]
        for column in columns:
            value = self.value(column.name).copy()
            if column.type in _SQL_CASTS:
                value = exp.cast(value, _SQL_CASTS[column.type])
            items.append(exp.alias_(value, ident(column.alias)))
        spined = [s for s in (*(a.spined for a in self.arrays.values()),
                               *(x.known for x in self.latest.values() if x.known is not None)) if s.columns]
        final = exp.select(*items).from_(_table(self.spine, SPINE))
        ctes: list[tuple[str, exp.Select]] = []
        if self.form == "asof":
            # First: an ASOF join sorts its left side with every column that side carries, and DuckDB keeps ASOF
            # joins where they are written, so they come while the left side is the bare spine (a 1M-row training
            # set of 13 features peaked ~90 MB lower than with the ASOF joins after the entity's row).
            for latest in self.latest.values():
                ctes.append((latest.name, latest.asof_cte(entity)))
                final.append("joins", latest.asof_join(entity, self.t))
        # The entity's own row, for dimension features and to tell known keys (0 events) from unknown ones (null).
        if not spined:
            final = final.join(aliased(entity, entity.name, self.model.dialect), join_type="left", on=exp.and_(
                *(exp.EQ(this=_col(c, SPINE), expression=exp.column(c, table=ident(entity.name))) for c in entity.key)))
        final = join_all(final, self.model, (j for j in self.scope.joins.values() if j.alias != entity.name), "left")
        if spined:  # the entity's row comes with the arrays, its columns as the spine's `<entity>__<column>`
            own = {c.name for c in final.find_all(exp.Column) if c.table == entity.name}
            final.transform(lambda n: _col(f"{entity.name}__{n.name}", SPINE)  # in place: the root stays
                            if isinstance(n, exp.Column) and n.table == entity.name else n, copy=False)
            final = final.from_(self._spine_source(spined, sorted({*entity.key, *own})), copy=False)
        for latest in self.latest.values():
            if self.form == "asof":
                continue  # joined above
            if latest.known is not None:
                ctes.append((latest.name, latest.known_cte(entity, self._within)))
            elif latest.arrays is None:
                ctes.append((latest.name, latest.ranked_cte(entity, self.spine, self.t)))
                final = self._join_on_row(final, latest.name)
        for events in self.events.values():
            if events.columns:
                ctes.append((events.name, events.cte(entity, self.spine, self.t)))
                final = self._join_on_row(final, events.name)
        ctes += [(arrays.spined.cte, arrays.cte(entity, self._within)) for arrays in self.arrays.values()
                 if arrays.spined.columns]
        if spine_cte is not None:
            ctes.insert(0, (self.spine, spine_cte))
        for name, cte in ctes:
            final = final.with_(ident(name), as_=cte, copy=False)
        return final, columns

    def _spine_source(self, spined: Sequence[_Spined], own: Sequence[str]) -> exp.Expr:
        """The spine with the entity's row (its columns `own`) and, of each source in the prefix form, the arrays
        and positions in them.

        The arrays of every source are first joined to the entity's rows (`keyed`: a few per spine row's key), so
        each spine row is joined once, not once per source and again to its entity; a key the entity does not have
        gets no features anyway. Both are subqueries PostgreSQL does not merge into the query (OFFSET 0): the join
        order stays, and a position several features read is searched for once per spine row."""
        entity, keyed = self.entity, "keyed"
        arrays: dict[tuple[str, str], str] = {(entity.name, c): f"{entity.name}__{c}" for c in own}

        def from_keyed(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column) and node.table in {s.cte for s in spined}:
                name = arrays.setdefault((node.table, node.name), f"{node.table}__{node.name}")
                return _col(name, keyed)
            return node

        items: list[exp.Expr] = [exp.Column(this=exp.Star(), table=ident(SPINE)),
                                 *(exp.alias_(_col(n, keyed), ident(n)) for n in arrays.values())]
        for source in spined:
            items += [exp.alias_(e.transform(from_keyed), ident(f"{source.cte}__{n}"))
                      for n, e in source.columns.items()]
        rows = exp.select(*(exp.alias_(exp.column(c, table=ident(t)) if t == entity.name else _col(c, t), ident(n))
                            for (t, c), n in arrays.items()))
        rows = rows.from_(aliased(entity, entity.name, self.model.dialect)).where(
            self._within(exp.column(entity.key[0], table=ident(entity.name))))
        for source in spined:
            rows = rows.join(exp.Table(this=ident(source.cte)), join_type="left", on=exp.and_(
                *(exp.EQ(this=exp.column(c, table=ident(entity.name)), expression=_col(c, source.cte))
                  for c in entity.key)))
        on = exp.and_(*(exp.EQ(this=_col(c, SPINE), expression=_col(f"{entity.name}__{c}", keyed)) for c in entity.key))
        select = exp.select(*items).from_(_table(self.spine, SPINE)).join(
            exp.alias_(exp.Subquery(this=rows.offset(0)), ident(keyed), table=True), on=on, join_type="left")
        return exp.alias_(exp.Subquery(this=select.offset(0)), ident(SPINE), table=True)

    def _within(self, key: exp.Expr) -> exp.Expr:
        """`key` (a value of the entity's first key column) is in the spine: a source read whole for its arrays
        reads only the keys of the spine's part when the spine is answered in parts (`SqlWarehouse._split`)."""
        keys = exp.select(_col(self.entity.key[0], SPINE)).from_(_table(self.spine, SPINE))
        return exp.In(this=key.copy(), query=exp.Subquery(this=keys))

    @staticmethod
    def _join_on_row(select: exp.Select, cte: str) -> exp.Select:
        return select.join(exp.Table(this=ident(cte)), on=exp.EQ(this=_col(SPINE_ROW, SPINE),
                                                                 expression=_col(SPINE_ROW, cte)), join_type="left")



def build_training(model: Model, entity: str, names: Sequence[str], table: str, dialect: str, rows: int
                   ) -> tuple[exp.Select, tuple[OutputColumn, ...]]:
    """The statement answering a training set over the `rows` spine rows registered as `table` (`spine_row`, the
    key columns, `spine_time`), and its feature columns; it returns `spine_row` then one column per feature, one row
    per spine row in no order (the caller orders them by `spine_row`)."""
    prefix = dialect in PREFIX_DIALECTS and rows >= PREFIX_MIN_ROWS
    form = "asof" if dialect in ASOF_DIALECTS else "prefix" if prefix else "ranked"
    builder = _PointInTime(model, model.entities[entity], table, form=form)
    return builder.build(names, [_col(SPINE_ROW, SPINE)])


def build_features(model: Model, request: FeatureRequest) -> tuple[exp.Select, tuple[OutputColumn, ...]]:
    """The statement answering a feature request, and its output columns (key columns, then features): a training
    set whose spine is the requested keys as VALUES, every row at the request's time, in request order."""
    entity = model.entities[request.entity]
    at = _as_of(request)
    builder = _PointInTime(model, entity, SPINE_VALUES, form="ranked")
    rows = [exp.tuple_(exp.Literal.number(i), *(exp.convert(v) for v in key)) for i, key in enumerate(request.keys)]
    values = exp.Values(expressions=rows, alias=exp.TableAlias(
        this=ident("requested"), columns=[ident(SPINE_ROW), *(ident(c) for c in entity.key)]))
    spine = exp.select(exp.Star(), exp.alias_(time_literal(at), ident(SPINE_TIME))).from_(values)
    select, features = builder.build(request.names, [_col(c, SPINE) for c in entity.key], spine)
    select = select.order_by(_col(SPINE_ROW, SPINE), copy=False)  # a few requested keys: sorting them is free
    columns = tuple(OutputColumn(c, c, entity.dimensions[c].type, "key") for c in entity.key)
    return select, columns + features


def _as_of(request: FeatureRequest) -> datetime:
    """The request's time. A request for the latest values (`at` None) is answered from a snapshot, which gives
    it a time before compiling (`Service.features` uses now)."""
    if request.at is None:
        raise QueryError(f"a feature request for {request.entity!r} needs a time `at` to be compiled to SQL; "
                         f"without one it asks for the latest values: use Service.features or an online lookup")
    return request.at


def row_exists(entity: Entity) -> exp.Expr:
    """The entity's own row was found (it is LEFT JOINed under its name)."""
    return exp.Not(this=exp.Is(this=exp.column(entity.key[0], table=ident(entity.name)), expression=exp.Null()))


def known_at(scope: Scope, entity: Entity, at: exp.Expr) -> exp.Expr:
    """The entity's row exists at `at`: found, and its time (when it has one) at or before `at`."""
    exists = row_exists(entity)
    if entity.time is None:
        return exists
    return exp.and_(exists, exp.LTE(this=scope.time(entity, f"features of {entity.name}"), expression=at))


def counts(metric: Metric) -> bool:
    """A count is 0, not null, for a key known at t without events."""
    return metric.kind == "simple" and metric.agg in ("count", "count_distinct")


def derived(feature: Feature, value_of: Callable[[str], exp.Expr]) -> exp.Expr:
    """A derived feature's expression with each feature name replaced by that feature's value."""
    if feature.expr is None:
        raise QueryError(f"feature {feature.entity}.{feature.name} has no expression")
    return feature.expr.copy().transform(
        lambda n: exp.Paren(this=value_of(n.name).copy()) if isinstance(n, exp.Column) else n, copy=False)
