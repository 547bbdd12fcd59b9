"""The filter compiler: each condition of a query's `where` is resolved once, then emitted for each place it runs.

Resolving turns every semantic name into a `Term` (what it names, its type, the grain it is read at; `time` and
`time:grain` with no entity are the reserved time axis, told apart by syntax alone), checks every literal against
its term's type, and reads every time literal as an instant (in the query's zone unless it carries an offset). A
comparison of a time with literals becomes a `Range` of instants: at a grain, the half-open bounds of the periods it
admits, so the warehouse compares the raw column and can skip blocks. The resolved condition is a sqlglot tree with
placeholders where terms, time values and ranges go.

Emitting fills the placeholders for one target, a function from a term to its SQL and storage (a stored column, or
a series' period column in wall-clock time), applying the zone there and only there. Nothing re-reads emitted SQL:
which conditions are on a time axis and which bounds a fill covers are read off the resolved form.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlglot import exp

from semantic.errors import QueryError, UnknownFieldError, did_you_mean
from semantic.model import Entity
from semantic.plan.timemodel import floor, instant, literal, parse_instant, period_range, truncate, wall, wall_literal
from semantic.query import DimensionRef, column_text

_COMPARISONS = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between, exp.Like, exp.ILike)
_LOWER = (exp.GT, exp.GTE)


class Names(Protocol):
    """The planner's name checks the compiler resolves with."""

    def entity(self, name: str, text: str) -> Entity: ...

    def dimension(self, ref: DimensionRef, text: str) -> tuple[Entity | None, DimensionRef, str]: ...

    def guess(self, name: str, kind: str) -> str: ...


@dataclass(frozen=True)
class Term:
    """A semantic name in a filter: `ref` (entity None for the time axis), its dimension type, and the grain its
    periods are compared at (None: the raw value)."""

    ref: DimensionRef
    type: str
    grain: str | None

    def on_axis(self, owner: str, name: str) -> bool:
        """Whether this names the time axis whose dimension is `owner.name`."""
        return self.ref.entity is None or (self.ref.entity, self.ref.name) == (owner, name)


@dataclass(frozen=True)
class Range:
    """`term <op> bound` for each (op, instant): a comparison of a time with literals, as bounds on the raw time."""

    term: int
    bounds: tuple[tuple[type[exp.Expr], datetime], ...]


@dataclass(frozen=True)
class Condition:
    """One resolved conjunct of the filter: `tree` holds placeholders `t<i>` (terms), `v<j>` (time values compared
    with term i) and `r<k>` (ranges)."""

    tree: exp.Expr
    terms: tuple[Term, ...]
    values: tuple[tuple[int, datetime], ...]
    ranges: tuple[Range, ...]

    def on_axis(self, owner: str, name: str) -> bool:
        return bool(self.terms) and all(t.on_axis(owner, name) for t in self.terms)

    @property
    def grains(self) -> tuple[str | None, ...]:
        return tuple(t.grain for t in self.terms)


# A target gives a term's SQL (untruncated) and its storage: timestamp, timestamptz, date, wall (already
# wall-clock in the zone), or "" for a term that is no time.
Target = Callable[[Term], tuple[exp.Expr, str]]


@dataclass(frozen=True)
class Compiled:
    dimensions: tuple[Condition, ...]  # before aggregation
    metrics: tuple[exp.Expr, ...]  # after aggregation, over metric names (literals checked)


def compile_filter(tree: exp.Expr | None, names: Names, timezone: str | None) -> Compiled:
    """Split the filter into conjuncts, each on dimensions (resolved) or on metrics; refuse one that mixes them."""
    dims: list[Condition] = []
    metrics: list[exp.Expr] = []
    if tree is not None:
        _check_condition(tree, names)
    for conjunct in _conjuncts(tree) if tree is not None else []:
        kinds = {_kind(col, names) for col in conjunct.find_all(exp.Column)}
        if kinds == {"metric"}:
            for node in conjunct.find_all(*_COMPARISONS):
                for lit in node.find_all(exp.Literal):
                    if lit.is_string:
                        raise QueryError(f"filter {conjunct.sql()!r}: metrics are numbers; compare them with a "
                                         f"number, not {lit.sql()}")
            metrics.append(conjunct)
        elif "metric" in kinds:
            raise QueryError(f"filter {conjunct.sql()!r} mixes metrics and dimensions; dimension conditions apply "
                             f"before aggregation and metric conditions after, so write them as separate "
                             f"conditions joined by `and`")
        else:
            dims.append(_Resolver(names, timezone).condition(conjunct))
    return Compiled(tuple(dims), tuple(metrics))


_PREDICATES = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Between, exp.Like, exp.ILike, exp.Is,
               exp.Boolean)


def _check_condition(tree: exp.Expr, names: Names) -> None:
    """A filter is true or false for each row: and/or/not over comparisons, `in`, `between`, `like`, `is`,
    true/false, or a boolean dimension; anything else (`customer.region` alone) is refused here, not by the
    warehouse."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, exp.Paren | exp.Not):
            stack.append(node.this)
        elif isinstance(node, exp.And | exp.Or):
            stack += [node.this, node.expression]
        elif isinstance(node, _PREDICATES) or (isinstance(node, exp.Column) and _is_boolean(node, names)):
            continue
        else:
            raise QueryError(f"{node.sql()!r} in the filter is not a condition; a filter must be true or false for "
                             f"each row: compare a value (customer.region = 'EU') or use a boolean dimension")


def _is_boolean(column: exp.Column, names: Names) -> bool:
    if not column.table:
        return False
    dim = names.entity(column.table, column.sql()).dimensions.get(column.name.split(":")[0])
    return dim is not None and dim.type == "boolean"


def _kind(column: exp.Column, names: Names) -> str:
    if not column.table:
        if column.name == "time" or column.name.startswith("time:"):
            return "dimension"
        raise QueryError(f"{column.name!r} in the filter: bare names are not allowed; write "
                         f"`entity.{column.name}`{names.guess(column.name, 'dimensions')}")
    entity = names.entity(column.table, column.sql())
    name = column.name.split(":")[0]
    if name in entity.dimensions:
        return "dimension"
    if name in entity.metrics:
        return "metric"
    raise UnknownFieldError(f"unknown name {column.table}.{column.name!r} in the filter."
                            f"{did_you_mean(name, [*entity.dimensions, *entity.metrics])}")


def _conjuncts(tree: exp.Expr) -> list[exp.Expr]:
    while isinstance(tree, exp.Paren):
        tree = tree.this
    if isinstance(tree, exp.And):
        return _conjuncts(tree.this) + _conjuncts(tree.expression)
    return [tree]


class _Resolver:
    def __init__(self, names: Names, timezone: str | None) -> None:
        self.names = names
        self.timezone = timezone
        self.terms: list[Term] = []
        self.values: list[tuple[int, datetime]] = []
        self.ranges: list[Range] = []

    def condition(self, tree: exp.Expr) -> Condition:
        holder = exp.Paren(this=tree.copy())  # a parent, so the top node can be replaced too
        for comparison in list(holder.find_all(*_COMPARISONS)):
            self.comparison(comparison)
        for column in list(holder.find_all(exp.Column)):  # terms outside comparisons (`a is null`, `not flag`)
            column.replace(self.placeholder(self.term(column)))
        return Condition(holder.this, tuple(self.terms), tuple(self.values), tuple(self.ranges))

    def term(self, column: exp.Column) -> int:
        text = column_text(column)
        ref = DimensionRef.parse(text)  # `time`/`time:grain` only without an entity: `patient.time` is a dimension
        if ref.entity is None and ref.grain is None:
            term = Term(ref, "time", None)
        else:
            owner, _, _ = self.names.dimension(ref, text)  # checks the name, and the grain against the data
            kind = owner.dimensions[ref.name].type if owner is not None else "time"
            term = Term(DimensionRef(ref.entity, ref.name, None, ref.via), kind, ref.grain)
        self.terms.append(term)
        return len(self.terms) - 1

    @staticmethod
    def placeholder(index: int, kind: str = "t") -> exp.Expr:
        return exp.Placeholder(this=f"{kind}{index}")

    def comparison(self, comparison: exp.Expr) -> None:
        column = comparison.this
        if not isinstance(column, exp.Column):
            return
        index = self.term(column)
        term = self.terms[index]
        label = f"filter on {column_text(column)}"
        operands = [v for k, v in comparison.args.items() if k != "this"
                    for v in (v if isinstance(v, list) else [v]) if isinstance(v, exp.Expr)]
        for value in operands:
            self.check(comparison, value, term, label)
        if term.type == "time":
            found = self.time_range(comparison, index, term, label)
            if found is not None:
                comparison.replace(self.placeholder(len(self.ranges), "r"))
                self.ranges.append(found)
                return
            for value in operands:
                if isinstance(value, exp.Literal) and value.is_string:
                    self.values.append((index, parse_instant(value.this, label, self.timezone)))
                    value.replace(self.placeholder(len(self.values) - 1, "v"))
        comparison.set("this", self.placeholder(index))

    def check(self, comparison: exp.Expr, value: exp.Expr, term: Term, label: str) -> None:
        """A literal compared with a term must be of the term's type."""
        lit = value.this if isinstance(value, exp.Neg) else value
        if isinstance(lit, exp.Null) or not isinstance(lit, exp.Literal | exp.Boolean):
            return
        kind = term.type
        if isinstance(comparison, exp.Like | exp.ILike) and kind != "string":
            raise QueryError(f"{label}: LIKE needs a string dimension, but {column_label(term)} is a {kind}")
        if kind == "time":
            if not (isinstance(lit, exp.Literal) and lit.is_string):
                raise QueryError(f"{label}: compare a time with a quoted date such as '2024-03-01', not {lit.sql()}")
            parse_instant(lit.this, label, self.timezone)
        elif kind in ("number", "integer"):
            if not (isinstance(lit, exp.Literal) and not lit.is_string):
                raise QueryError(f"{label}: {column_label(term)} is a number; compare it with a number, not "
                                 f"{lit.sql()}")
        elif kind == "boolean":
            if not isinstance(lit, exp.Boolean):
                raise QueryError(f"{label}: {column_label(term)} is a boolean; compare it with true or false, not "
                                 f"{lit.sql()}")
        elif not (isinstance(lit, exp.Literal) and lit.is_string):
            raise QueryError(f"{label}: {column_label(term)} is a string; quote the value: '{lit.sql()}'")

    def time_range(self, comparison: exp.Expr, index: int, term: Term, label: str) -> Range | None:
        """A comparison of a time with string literals as bounds on the raw time; None when it is no range (or
        never true, which the comparison as written says exactly: false for a time, NULL for none)."""
        if isinstance(comparison, exp.Between):
            pairs = [(exp.GTE, comparison.args.get("low")), (exp.LTE, comparison.args.get("high"))]
        elif isinstance(comparison, (*_LOWER, exp.LT, exp.LTE, exp.EQ)):
            pairs = [(type(comparison), comparison.args.get("expression"))]
        else:
            return None
        if not all(isinstance(b, exp.Literal) and b.is_string for _, b in pairs):
            return None
        bounds: list[tuple[type[exp.Expr], datetime]] = []
        for op, bound in pairs:
            moment = parse_instant(bound.this, label, self.timezone)  # type: ignore[union-attr]
            if term.grain is None:
                bounds.append((op, moment))
                continue
            found = period_range(op, wall(moment, self.timezone), term.grain)
            if not found:
                return None
            bounds += [(o, instant(b, self.timezone)) for o, b in found]
        return Range(index, tuple(bounds))


def column_label(term: Term) -> str:
    return str(DimensionRef(term.ref.entity, term.ref.name, None, term.ref.via))


def emit(condition: Condition, target: Target, timezone: str | None) -> exp.Expr:
    """The condition as SQL over `target`'s columns."""

    def term_sql(index: int) -> tuple[exp.Expr, str]:
        expr, storage = target(condition.terms[index])
        return expr.copy(), storage

    def rewrite(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, exp.Placeholder):
            return node
        kind, index = node.name[0], int(node.name[1:])
        if kind == "r":
            found = condition.ranges[index]
            raw, storage = term_sql(found.term)
            tests = [op(this=raw.copy(), expression=literal(b, storage, timezone)) for op, b in found.bounds]
            return exp.Paren(this=exp.and_(*tests)) if len(tests) > 1 else tests[0]
        if kind == "v":
            term_index, moment = condition.values[index]
            term = condition.terms[term_index]
            if term.grain is not None:  # a period's value: its start in the zone's wall-clock time
                return wall_literal(wall(moment, timezone))
            return literal(moment, target(term)[1], timezone)
        term = condition.terms[index]
        expr, storage = term_sql(index)
        if term.grain is not None:
            expr = truncate(expr, term.grain, timezone, storage)
        return exp.Paren(this=expr) if not isinstance(expr, exp.Column | exp.Cast) else expr

    return condition.tree.copy().transform(rewrite, copy=False)


def fill_bounds(conditions: tuple[Condition, ...], owner: str | None, name: str, grain: str,
                timezone: str | None) -> tuple[datetime | None, datetime | None]:
    """First and last period of `grain` (wall-clock starts) that top-level ranges on the fill's time axis admit
    (`owner.name`, or the reserved axis when owner is None)."""
    start: datetime | None = None
    end: datetime | None = None
    tick = timedelta(microseconds=1)
    for condition in conditions:
        tree = condition.tree
        if not (isinstance(tree, exp.Placeholder) and tree.name.startswith("r")):
            continue
        found = condition.ranges[int(tree.name[1:])]
        term = condition.terms[found.term]
        if not (term.ref.entity is None or (term.ref.entity, term.ref.name) == (owner, name)):
            continue
        for op, bound in found.bounds:
            if op in _LOWER or op is exp.EQ:
                first = floor(wall(bound, timezone), grain)
                start = max(start, first) if start else first
            if op not in _LOWER:
                last = floor(wall(bound - tick if op is exp.LT else bound, timezone), grain)
                end = min(end, last) if end else last
    return start, end
