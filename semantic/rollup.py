"""Answers rolled up from a finer cached result, in process, without the warehouse.

Two pure steps over plans:

- `widen(model, plan)`: the plan of a result that can serve later roll-ups, or None. Such a result has no offset,
  fill or metric filter (those drop or invent rows), a limit only if the answer stays under it (which only the
  answer tells: `Service.query` indexes a result only then), and every measure it needs re-aggregates exactly
  (sum, count, min, max; avg through a sum and a count of the same values). The widened plan also returns each
  measure under a hidden column (`_m__<alias>`, and `_sum__<alias>` / `_count__<alias>` for avg), so derived
  metrics and averages can be recomputed from their parts.
- `rollup_plan(model, want, have)`: a plan over the cached table `cached` (the widened result of `have`) whose
  answer equals the warehouse's answer to `want`, or None. It holds when both read the same entities in the same
  time zone; each dimension of `want` is one of `have`'s, or the same time at a coarser grain nested in it (month
  from day, day from hour; not month from week); `have`'s filter conditions are all in `want`'s, and the rest of
  `want`'s are on dimensions `have` holds. Conditions are those the filter compiler resolved (`Plan.conditions`:
  typed terms, literals read as instants, time comparisons as ranges), compared as resolved and emitted over the
  cached columns by the compiler's own `emit`; the filter's text is never read again.

The plan goes through the same `build` and `render` as a warehouse query, so derived metrics, metric filters, order
and paging mean the same; `run` executes it with DuckDB over the Arrow table.

Never rolled up (`why_not`): distinct counts, medians and percentiles, semi-additive metrics, cumulative and
period-over-period metrics, and any derived metric over one of those.
"""

from __future__ import annotations

import functools
from dataclasses import replace

import duckdb
import pyarrow as pa
from sqlglot import exp

from semantic.model import GRAINS, Entity, Metric, Model
from semantic.plan.filters import Condition, Term, emit
from semantic.plan.planner import Aggregate, OutputColumn, Plan, alias_of
from semantic.plan.scope import ident
from semantic.plan.timemodel import WALL, truncate
from semantic.query import DimensionRef
from semantic.sql.build import build
from semantic.sql.render import render

TABLE = "cached"
# What a roll-up plan reads: the cached table, as an entity of a model of its own.
ROLLED = Entity("rolled", (), table=TABLE)
_ROLLED_MODEL = Model("rollup", {ROLLED.name: ROLLED})
_PARTS = ("_sum__", "_count__")
_REAGGREGATE = {"sum": exp.Sum, "count": exp.Sum, "min": exp.Min, "max": exp.Max}
_ORDERED_OPS = (exp.GT, exp.GTE, exp.LT, exp.LTE)
# What a remaining filter condition may hold to be evaluated over the cached rows.
_RESIDUAL = (exp.And, exp.Or, exp.Not, exp.Paren, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In,
             exp.Between, exp.Like, exp.Is, exp.Null, exp.Boolean, exp.Literal, exp.Placeholder, exp.Neg)


def why_not(model: Model, metric: Metric) -> str | None:
    """Why a metric's value cannot be computed from finer groups of it, or None when it can.

    >>> from semantic.model import Metric
    >>> why_not(None, Metric("buyers", "order", "simple", agg="count_distinct"))  # type: ignore[arg-type]
    'a distinct count is not the sum of its parts'
    """
    if metric.kind == "cumulative":
        return "a cumulative value depends on periods outside each group"
    if metric.kind == "offset":
        return "an offset value comes from another period"
    if metric.kind == "derived":
        raise ValueError("derived metrics are judged by the measures they expand to")
    if metric.semi_additive:
        return "a semi-additive value is the one at the last (first) time, not a sum over time"
    if metric.agg == "count_distinct":
        return "a distinct count is not the sum of its parts"
    if metric.agg in ("median", "percentile"):
        return "a percentile of groups is not the percentile of their rows"
    if metric.agg == "avg" or metric.agg in _REAGGREGATE:
        return None
    return f"{metric.agg} cannot be re-aggregated"


def _hidden(alias: str, metric: Metric) -> tuple[str, ...]:
    return (f"_sum__{alias}", f"_count__{alias}") if metric.agg == "avg" else (f"_m__{alias}",)


def _leaves(model: Model, plan: Plan) -> dict[str, Metric] | None:
    """Measure alias -> simple metric, for every measure the plan aggregates; None if any cannot be rolled up."""
    by_alias = {alias_of(m.qualified): m for e in model.entities.values() for m in e.metrics.values()}
    leaves: dict[str, Metric] = {}
    for agg in plan.aggregates:
        if agg.windows or agg.pick or agg.fine:
            return None
        for alias, _ in agg.measures:
            if alias.startswith(_PARTS):
                continue  # an average's parts, added by `widen`
            metric = by_alias.get(alias)
            if metric is None or why_not(model, metric) is not None:
                return None
            leaves[alias] = metric
    return leaves


def _avg_part(expr: exp.Expr, kind: type[exp.Expr]) -> exp.Expr:
    """AVG(x) [FILTER (...)] -> SUM(x) or COUNT(x), same filter."""
    tree = expr.copy()
    avg = tree.find(exp.Avg)
    assert avg is not None
    replaced = kind(this=avg.this.copy())
    return replaced if avg is tree else tree.transform(lambda n: replaced if n is avg else n, copy=False)


def widen(model: Model, plan: Plan) -> Plan | None:
    """The plan with hidden measure columns, when its result can serve roll-ups; else None."""
    if plan.offset or plan.fill is not None or plan.having is not None:
        return None
    leaves = _leaves(model, plan)
    if leaves is None:
        return None
    aggregates = []
    for agg in plan.aggregates:
        measures = list(agg.measures)
        for alias, expr in agg.measures:
            if leaves[alias].agg == "avg":
                measures += [(f"_sum__{alias}", _avg_part(expr, exp.Sum)),
                             (f"_count__{alias}", _avg_part(expr, exp.Count))]
        aggregates.append(replace(agg, measures=tuple(measures)))
    hidden: list[tuple[str, exp.Expr]] = []
    for alias, metric in leaves.items():
        names = _hidden(alias, metric)
        sources = names if metric.agg == "avg" else (alias,)
        hidden += [(name, exp.column(ident(source))) for name, source in zip(names, sources, strict=True)]
    return replace(plan, aggregates=tuple(aggregates), metrics=(*plan.metrics, *hidden))


# -- matching ----------------------------------------------------------------------------------------------------

_Key = tuple[str | None, str, tuple[str, ...]]


def _dimension(model: Model, text: str) -> tuple[_Key, str | None]:
    """A dimension's identity without its grain, and its grain (time dimensions get their default one)."""
    ref = DimensionRef.parse(text)
    key = (ref.entity, ref.name, ref.via)
    if ref.entity is None:
        return key, ref.grain
    dim = model.entities[ref.entity].dimensions[ref.name]
    if dim.type != "time":
        return key, None
    return key, ref.grain or dim.grain or "day"


def nested(fine: str, coarse: str) -> bool:
    """Whether every `fine` period lies within one `coarse` period (weeks only within weeks).

    >>> nested("day", "month"), nested("week", "month"), nested("hour", "week"), nested("month", "year")
    (True, False, True, True)
    """
    if fine == coarse:
        return True
    order = GRAINS.index
    if order(fine) > order(coarse):
        return False
    if coarse == "week":
        return order(fine) <= order("day")
    return fine != "week"


def _columns(plan: Plan) -> list[OutputColumn]:
    return [c for c in plan.columns if c.kind == "dimension"]


def rollup_plan(model: Model, want: Plan, have: Plan) -> Plan | None:
    """A plan over the table `cached` (the widened result of `have`) answering `want`, or None."""
    q, c = want.query, have.query
    if q.fill is not None or q.timezone != c.timezone or c.offset or c.fill is not None:
        return None
    if have.having is not None or {a.entity for a in want.aggregates} != {a.entity for a in have.aggregates}:
        return None
    leaves = _leaves(model, want)
    if leaves is None:
        return None
    held = {a for a, _ in have.metrics}
    held_dims: dict[_Key, list[tuple[str | None, str]]] = {}
    for column in _columns(have):
        key, grain = _dimension(model, column.name)
        held_dims.setdefault(key, []).append((grain, column.alias))

    groups: list[tuple[str, exp.Expr]] = []
    for column in _columns(want):
        key, grain = _dimension(model, column.name)
        expr = _held(held_dims, key, grain)
        if expr is None:
            return None
        groups.append((column.alias, expr))

    # Conditions as the filter compiler resolved them (metric conditions are the plan's `having`, applied after the
    # roll-up): equal resolved conditions admit the same rows, however their literals were written.
    if not all(condition in want.conditions for condition in have.conditions):
        return None
    residual = []
    for condition in want.conditions:
        if condition in have.conditions:
            continue
        translated = _residual(condition, held_dims, q.timezone)
        if translated is None:
            return None
        residual.append(translated)

    measures: list[tuple[str, exp.Expr]] = []
    for alias, metric in leaves.items():
        value: exp.Expr
        names = _hidden(alias, metric)
        if not all(name in held for name in names):
            return None
        if metric.agg == "avg":
            total, count = (exp.Sum(this=exp.column(ident(n))) for n in names)
            value = exp.Div(this=exp.cast(total, exp.DataType.Type.DOUBLE),
                            expression=exp.Nullif(this=count, expression=exp.Literal.number(0)))
            measures += [(alias, value), (names[0], total.copy()), (names[1], count.copy())]
        else:
            value = _REAGGREGATE[metric.agg or "sum"](this=exp.column(ident(names[0])))
            if metric.agg == "count" and not groups:  # one group, the whole input: a count of nothing is 0
                value = exp.Coalesce(this=value, expressions=[exp.Literal.number(0)])
            measures.append((alias, value))
    aggregate = Aggregate(ROLLED.name, (), tuple(groups), tuple(measures), exp.and_(*residual) if residual else None)
    return replace(want, aggregates=(aggregate,), fill=None)


def _held_option(held_dims: dict[_Key, list[tuple[str | None, str]]], key: _Key, grain: str | None
                 ) -> tuple[str | None, str] | None:
    """`have`'s (grain, column) holding a dimension at `grain`, or at the coarsest finer grain nested in it."""
    options = held_dims.get(key, [])
    for option in options:
        if option[0] == grain:
            return option
    if grain is None:
        return None
    for option in sorted(options, key=lambda o: -GRAINS.index(o[0] or "second")):
        if option[0] is not None and nested(option[0], grain):
            return option
    return None


def _held(held_dims: dict[_Key, list[tuple[str | None, str]]], key: _Key, grain: str | None) -> exp.Expr | None:
    """`have`'s column for a dimension at `grain`: itself, or a finer grain truncated (values are already
    wall-clock times in the query's zone, so no zone is applied again)."""
    option = _held_option(held_dims, key, grain)
    if option is None:
        return None
    held, alias = option
    return exp.column(ident(alias)) if held == grain or grain is None else truncate(exp.column(ident(alias)), grain)


def _residual(condition: Condition, held_dims: dict[_Key, list[tuple[str | None, str]]],
              timezone: str | None) -> exp.Expr | None:
    """A resolved filter condition emitted over the cached columns, or None when it cannot be evaluated there
    exactly."""
    for node in condition.tree.walk():
        if not isinstance(node, _RESIDUAL):
            return None
    columns: dict[Term, exp.Expr] = {}
    for index, term in enumerate(condition.terms):
        if term.type == "time" and term.grain is None:
            return None  # a raw time comparison: the cached rows hold periods, not instants
        if term.type == "string" and _ordered(condition.tree, index):
            return None  # string order follows the warehouse's collation, which DuckDB may not share
        option = _held_option(held_dims, (term.ref.entity, term.ref.name, term.ref.via), term.grain)
        if option is None:
            return None
        columns[term] = exp.column(ident(option[1]))
    # Held periods are wall-clock starts in the query's zone (WALL): `emit` truncates a period read at a coarser
    # grain and compares ranges with the period bounds (which are starts of held periods too, the grains being
    # nested) without applying the zone again.
    return exp.Paren(this=emit(condition, lambda term: (columns[term], WALL), timezone))


def _ordered(tree: exp.Expr, term: int) -> bool:
    """Whether term `term` of a resolved condition is compared by order (`<`, `between`)."""
    return any(isinstance(node.parent, (*_ORDERED_OPS, exp.Between)) for node in tree.find_all(exp.Placeholder)
               if node.name == f"t{term}")


@functools.cache
def _engine() -> duckdb.DuckDBPyConnection:
    """One in-process database, made at the first roll-up (about 30 MB that a process which never rolls up, a
    training run say, does not pay); each roll-up gets a cursor of its own (20 ms vs 5 µs)."""
    return duckdb.connect()


def run(plan: Plan, table: pa.Table) -> pa.Table | None:
    """Execute a roll-up plan over the cached table with an in-process DuckDB; None when DuckDB refuses it (a
    filter the warehouse refuses too, `order.revenue in order.revenue`): the warehouse then answers, or says what
    is wrong, as it would without the cache."""
    sql = render(build(plan, _ROLLED_MODEL), "duckdb")
    cursor = _engine().cursor()
    try:
        cursor.register(TABLE, table)  # visible to this cursor only
        return cursor.sql(sql).to_arrow_table()
    except duckdb.Error:
        return None
    finally:
        cursor.close()
