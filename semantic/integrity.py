"""Joins that would double count: a query joined through a relationship whose target key is not unique in the
data is refused (`DataIntegrityError`, code DATA_INTEGRITY) instead of answered.

`KeyGuard` keeps, per joined relation and join columns, whether the data holds a duplicate, found by one
`GROUP BY ... HAVING COUNT(*) > 1 LIMIT 1` (`checks.duplicate_key`) and re-checked when older than `max_age`
seconds, so a table that gains a duplicate is noticed within that time and a clean one costs one statement per
`max_age`. The columns checked are those the join's ON condition reads on the joined side, so any join the
planner makes (whichever direction it follows a relationship) is checked on the columns it actually joins on.

The same guard tells the SQL builder which LEFT joins found a row for every row they start from at the last check
(`KeyGuard.matched`, one `... WHERE NOT EXISTS (...) LIMIT 1` per join and `max_age`). That verdict only picks the
faster shape, never the answer: such a join is written inner with the orphans gated in by a count taken in the same
statement (`semantic.sql.joins.gate_orphans`), exact whatever the data holds by then.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlglot import exp

from semantic.catalog import Relation
from semantic.checks import duplicate_key
from semantic.errors import DataIntegrityError, QueryError, WarehouseError
from semantic.execute import Warehouse
from semantic.model import Model
from semantic.plan.planner import Plan, plan
from semantic.plan.scope import Join, Scope
from semantic.query import SemanticQuery
from semantic.sql.joins import aliased, source_of
from semantic.sql.render import render


@dataclass(frozen=True)
class KeyUse:
    """Rows of `source` joined on `columns`: each value must be held by one row, or the join repeats rows."""

    label: str  # the joined entity (or its path alias), for messages
    source: exp.Expr
    columns: tuple[str, ...]

    @functools.cached_property
    def key(self) -> tuple[str, tuple[str, ...]]:
        return self.source.sql(), self.columns


@dataclass(frozen=True)
class Hop:
    """A LEFT join of an aggregate: rows of `start` joined to `target` on `on`, each expected to find a row."""

    entity: str  # the aggregated entity
    alias: str  # the join's alias
    start: exp.Expr  # the rows the join starts from (the base's or an earlier join's), aliased as `on` reads them
    target: exp.Expr
    on: exp.Expr

    @functools.cached_property
    def key(self) -> str:
        return f"{self.start.sql()} / {self.target.sql()} / {self.on.sql()}"


def plan_hops(model: Model, the_plan: Plan) -> list[Hop]:
    """Every LEFT join of the plan's aggregates, with the rows it starts from."""
    hops = []
    for aggregate in the_plan.aggregates:
        entities = {aggregate.entity: aggregate.entity, **{j.alias: j.entity for j in aggregate.joins}}
        for join in aggregate.joins:
            before = {c.table for c in join.on.find_all(exp.Column)} - {join.alias}
            if join.kind != "left" or len(before) != 1 or not before <= entities.keys():
                continue
            (start,) = before
            hops.append(Hop(aggregate.entity, join.alias,
                            aliased(model.entities[entities[start]], start, model.dialect),
                            aliased(model.entities[join.entity], join.alias, model.dialect), join.on))
    return hops


def _uses_of(model: Model, joins: Iterable[Join]) -> list[KeyUse]:
    uses = []
    for join in joins:
        columns = tuple(dict.fromkeys(c.name for c in join.on.find_all(exp.Column) if c.table == join.alias))
        if columns:
            uses.append(KeyUse(join.alias, source_of(model.entities[join.entity], model.dialect), columns))
    return uses


def plan_uses(model: Model, the_plan: Plan) -> list[KeyUse]:
    """What a plan joins: every aggregate's joins."""
    return _uses_of(model, (join for aggregate in the_plan.aggregates for join in aggregate.joins))


def feature_uses(model: Model, entity_name: str, names: Sequence[str]) -> list[KeyUse]:
    """What a feature request joins: the entity's own rows on its key (one row per key, or spine rows repeat), and
    for each feature the joins of its value (a metric feature's plan by key, the related entities a time, a
    dimension or a latest value is read through)."""
    entity = model.entities[entity_name]
    uses = [KeyUse(entity.name, source_of(entity, model.dialect), entity.key)]
    for name in names:
        feature = entity.features[name]
        owner_name, _, ref = (feature.ref or "").rpartition(".")
        if feature.kind == "metric":
            query = SemanticQuery(metrics=(feature.ref or "",), dimensions=tuple(f"{entity.name}.{k}"
                                                                                for k in entity.key))
            uses += plan_uses(model, plan(model, query))
        if feature.kind in ("metric", "latest"):
            owner = model.entities[owner_name]
            scope = Scope(model, owner)
            scope.time(owner, f"feature {entity.name}.{name}")
            if feature.kind == "latest":
                scope.dimension(owner, ref, f"feature {entity.name}.{name}")
            uses += _uses_of(model, scope.joins.values())
        elif feature.kind == "dimension":
            scope = Scope(model, entity)
            scope.dimension(entity, feature.ref or "", f"feature {entity.name}.{name}")
            uses += _uses_of(model, (j for j in scope.joins.values() if j.alias != entity.name))
    return uses


class KeyGuard:
    """Refuses answers that would be double counted by a non-unique join key; verdicts are kept `max_age`
    seconds. A check the warehouse cannot answer is left unknown (the query itself will fail or succeed on its
    own)."""

    def __init__(self, warehouse: Warehouse, max_age: float = 300.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.warehouse = warehouse
        self.max_age = max_age
        self.clock = clock
        self._verdicts: dict[tuple[str, tuple[str, ...]], tuple[float, tuple[tuple[object, ...], int] | None]] = {}
        self._plans: dict[int, tuple[Plan, list[KeyUse]]] = {}  # id(plan) -> (plan, what it joins)
        self._reached: dict[str, tuple[float, bool]] = {}  # Hop.key -> (checked at, every row found its target)
        self._hops: dict[int, tuple[Plan, list[Hop]]] = {}  # id(plan) -> (plan, its LEFT joins)
        self._lock = threading.Lock()

    def _duplicate(self, use: KeyUse, refresh: bool = False) -> tuple[tuple[object, ...], int] | None:
        key = use.key
        now = self.clock()
        with self._lock:
            found = self._verdicts.get(key)
        if found is not None and not refresh and now - found[0] < self.max_age:
            return found[1]
        try:
            verdict = duplicate_key(self.warehouse, Relation(use.source, {}), list(use.columns))
        except WarehouseError:
            return None
        with self._lock:
            self._verdicts[key] = (now, verdict)
        return verdict

    def check(self, uses: Iterable[KeyUse], refresh: bool = False) -> None:
        """Raise DataIntegrityError for the first use whose columns hold a duplicate value.

        Raises:
            DataIntegrityError: a joined key is not unique in the data.
        """
        seen = set()
        for use in uses:
            if use.key in seen:
                continue
            seen.add(use.key)
            duplicate = self._duplicate(use, refresh)
            if duplicate is not None:
                values, count = duplicate
                held = ", ".join(f"{c} = {v!r}" if isinstance(v, str) else f"{c} = {v}"
                                 for c, v in zip(use.columns, values, strict=True))
                raise DataIntegrityError(
                    f"refused: this answer joins {use.label!r} on ({', '.join(use.columns)}), which is not unique "
                    f"in the data ({held} is held by {count} rows), so rows joined to it would be counted "
                    f"{count} times. Make the key unique in the warehouse (run `semantic validate` for every such "
                    f"problem), or ask without {use.label} dimensions")

    def check_plan(self, model: Model, the_plan: Plan) -> None:
        """`check` over what the plan joins; the uses of recent plans are kept (plans come from a plan cache)."""
        with self._lock:
            found = self._plans.get(id(the_plan))
        if found is None or found[0] is not the_plan:
            found = (the_plan, plan_uses(model, the_plan))
            with self._lock:
                if len(self._plans) > 4096:
                    self._plans.clear()
                self._plans[id(the_plan)] = found
        self.check(found[1])

    def matched(self, model: Model, the_plan: Plan) -> frozenset[tuple[str, str]]:
        """(entity, alias) of the plan's LEFT joins that found a row for every row they start from when last
        checked (within `max_age`); a check the warehouse cannot answer counts as not found until `max_age` has
        passed."""
        with self._lock:
            found = self._hops.get(id(the_plan))
        if found is None or found[0] is not the_plan:
            found = (the_plan, plan_hops(model, the_plan))
            with self._lock:
                if len(self._hops) > 4096:
                    self._hops.clear()
                self._hops[id(the_plan)] = found
        return frozenset((hop.entity, hop.alias) for hop in found[1] if self._reaches(hop))

    def _reaches(self, hop: Hop) -> bool:
        now = self.clock()
        with self._lock:
            found = self._reached.get(hop.key)
        if found is not None and now - found[0] < self.max_age:
            return found[1]
        missing = exp.select(exp.Literal.number(1)).from_(hop.start.copy()).where(exp.Not(this=exp.Exists(
            this=exp.select(exp.Literal.number(1)).from_(hop.target.copy()).where(hop.on.copy())))).limit(1)
        try:
            reached = not self.warehouse.run(render(missing, self.warehouse.dialect)).rows
        except WarehouseError:  # kept as "not found" too: a check that timed out is not retried by every query
            reached = False
        with self._lock:
            self._reached[hop.key] = (now, reached)
        return reached

    def settled(self, the_plan: Plan, matched: frozenset[tuple[str, str]] | None) -> bool:
        """`check_plan` would pass, and `matched` would answer `matched` (None: not asked, the dialect is not
        gated), both without a statement: what the plan joins is known and every verdict on it fresh."""
        now = self.clock()
        with self._lock:
            uses, hops = self._plans.get(id(the_plan)), self._hops.get(id(the_plan))
            if uses is None or uses[0] is not the_plan or (matched is not None and (
                    hops is None or hops[0] is not the_plan)):
                return False
            verdicts = [self._verdicts.get(use.key) for use in uses[1]]
            reached = [(hop, self._reached.get(hop.key)) for hop in hops[1]] if hops is not None else []
        if not all(v is not None and now - v[0] < self.max_age and v[1] is None for v in verdicts):
            return False
        if matched is None:
            return True
        return all(r is not None and now - r[0] < self.max_age for _, r in reached) and frozenset(
            (hop.entity, hop.alias) for hop, r in reached if r is not None and r[1]) == matched

    def check_model(self, model: Model) -> list[str]:
        """Check every relationship target now (at start-up); the messages of the non-unique ones."""
        problems = []
        for entity in model.entities.values():
            targets = {r.entity for r in entity.relationships if r.entity in model.entities}
            for name in sorted(targets):
                target = model.entities[name]
                try:
                    self.check([KeyUse(name, source_of(target, model.dialect), target.key)], refresh=True)
                except QueryError as error:
                    problems.append(error.message)
        return list(dict.fromkeys(problems))
