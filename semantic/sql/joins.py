"""FROM and JOIN clauses, written once: an entity's rows as a FROM source, and a scope's joins over them.

Every statement that reads a model entity (metrics, features, training sets, online lookups and snapshots) reads
its rows through `source_of`, and every FROM ... JOIN chain over entities is assembled by `joined`. So a rule about
which rows a reader may see, or how a chain of joins is shaped, has one place to live.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlglot
from sqlglot import exp

from semantic.errors import ForbiddenError
from semantic.model import Entity, Model
from semantic.plan.scope import Join, ident


def source_of(entity: Entity, dialect: str, rows_filter: exp.Expr | None = None) -> exp.Expr:
    """The entity's rows as a FROM source: its table, or its SQL as a subquery.

    This is the one function that yields an entity's rows, so row-level filters apply here: `rows_filter`, a
    condition over the entity's own columns (unqualified), keeps only the rows it accepts, as
    `(SELECT * FROM <rows> WHERE <filter>)`. Callers that read an entity under an access context pass the
    condition its policies give; without one every row is read.

    >>> from semantic.model import Entity
    >>> source_of(Entity("order", ("order_id",), table="orders"), "duckdb").sql()
    'orders'
    >>> source_of(Entity("order", ("order_id",), table="orders"), "duckdb", sqlglot.parse_one("region = 'EU'")).sql()
    "(SELECT * FROM orders WHERE region = 'EU')"

    In a reader's view of the model (`semantic.access`) the entity itself says what that reader may see: `rows`,
    the SELECT of their rows (read instead of the table), or `forbidden`, raised before any SQL exists.
    """
    if entity.forbidden is not None:
        raise ForbiddenError(entity.forbidden)
    if entity.rows is not None:
        rows: exp.Expr = exp.Subquery(this=entity.rows.copy())
    elif entity.table is not None:
        rows = exp.to_table(entity.table, dialect=dialect)
    else:
        rows = exp.Subquery(this=sqlglot.parse_one(entity.sql or "", read=dialect))
    if rows_filter is None:
        return rows
    return exp.Subquery(this=exp.select("*").from_(rows).where(rows_filter.copy()))


def aliased(entity: Entity, alias: str, dialect: str) -> exp.Expr:
    """The entity's rows under `alias` (its name, or its path when several paths lead to it)."""
    return exp.alias_(source_of(entity, dialect), ident(alias), table=True)


def joined(select: exp.Select, model: Model, base: Entity, joins: Iterable[Join]) -> exp.Select:
    """`select` FROM the base entity's rows (aliased by its name) with each join of its scope, LEFT or INNER as
    the scope decided (inner only along required relationships from the base)."""
    select = select.from_(aliased(base, base.name, model.dialect), copy=False)
    return join_all(select, model, joins)


def join_all(select: exp.Select, model: Model, joins: Iterable[Join], kind: str | None = None) -> exp.Select:
    """Add each join to `select`; `kind` overrides the joins' own kinds (a spine keeps every row: "left")."""
    for join in joins:
        select = select.join(aliased(model.entities[join.entity], join.alias, model.dialect), on=join.on.copy(),
                             join_type=kind or join.kind, copy=False)
    return select


def reuse_inner_joins(select: exp.Select, model: Model, base: Entity) -> exp.Select:
    """Drop a join of `select` that repeats one inside the base entity's own SQL, on the same key.

    An entity defined by `sql:` often joins a table already (order items joined to orders for their time); a query
    that then reaches the related entity over that table (for `order.status`) would join it a second time, on the
    same key. When the SQL's join is an inner join on the related entity's key (or a left join and ours is left
    too), each base row already carries the one related row ours would find (entity keys are unique), so the
    related columns the statement reads are taken from the SQL's own join instead: added to its SELECT list as
    `__<alias>__<column>`, and the repeated join removed. Call it on the finished statement (every clause that
    may read the related alias in place). Entities read through an access view (`rows`) are left as they are.
    """
    if base.sql is None or base.rows is not None:
        return select
    inner = sqlglot.parse_one(base.sql, read=model.dialect)
    if not isinstance(inner, exp.Select) or any(inner.args.get(a) for a in ("group", "having", "qualify", "distinct",
                                                                              "limit", "offset", "with_")):
        return select
    outputs = {e.alias_or_name: e.unalias() for e in inner.expressions}
    if "*" in outputs:
        return select
    changed = False
    for join in list(select.args.get("joins") or []):
        found = _repeated(join, model, base, inner, outputs)
        if found is None:
            continue
        alias, inner_alias = found
        for column in list(select.find_all(exp.Column)):
            if column.table != alias or column.find_ancestor(exp.Join) is join:
                continue
            name = f"__{alias}__{column.name}"
            if name not in outputs:
                outputs[name] = exp.column(ident(column.name) if column.this.quoted else column.name,
                                           table=inner_alias)
                inner = inner.select(exp.alias_(outputs[name].copy(), ident(name)), copy=False)
            column.replace(exp.column(ident(name), table=ident(base.name)))
        join.pop()
        changed = True
    if changed:
        select.set("from_", exp.From(this=exp.alias_(exp.Subquery(this=inner), ident(base.name), table=True)))
    return select


def _repeated(join: exp.Join, model: Model, base: Entity, inner: exp.Select, outputs: dict[str, exp.Expr]
              ) -> tuple[str, str] | None:
    """(our alias, the SQL's alias) when `join` reads a table the base's SQL already joins on the same key."""
    target = next((e for e in model.entities.values() if e.name == join.alias_or_name), None)
    ours = join.this
    if target is None:  # a path alias (`route__airport`): its entity is the joined table's owner
        target = next((e for e in model.entities.values()
                       if isinstance(ours, exp.Table) and e.table is not None and e.table == ours.name), None)
    if target is None or target.table is None or target.rows is not None or not isinstance(ours, exp.Table):
        return None
    pairs = _key_pairs(join.args.get("on"))
    alias = join.alias_or_name
    ours_kind = (join.side or join.kind or "inner").lower()
    # ours: base.<fk> = alias.<pk> for every key column
    wanted = {}
    for left, right in pairs:
        for a, b in ((left, right), (right, left)):
            if a.table == base.name and b.table == alias:
                wanted[b.name] = a.name
    if set(wanted) != set(target.key):
        return None
    for theirs in inner.args.get("joins") or []:
        table = theirs.this
        if not isinstance(table, exp.Table) or table.name != exp.to_table(target.table).name \
                or table.db != exp.to_table(target.table).db:
            continue
        their_alias = table.alias_or_name
        their_kind = (theirs.side or theirs.kind or "inner").lower()
        if their_kind not in ("inner", "") and not (their_kind == "left" and ours_kind == "left"):
            continue
        matched = {}
        for left, right in _key_pairs(theirs.args.get("on")):
            for a, b in ((left, right), (right, left)):
                if b.table == their_alias and a.table != their_alias:
                    matched[b.name] = a
        if set(matched) == set(target.key) and all(
                wanted[pk] in outputs and outputs[wanted[pk]] == matched[pk] for pk in target.key):
            return alias, their_alias
    return None


def _key_pairs(on: exp.Expr | None) -> list[tuple[exp.Column, exp.Column]]:
    """The column = column pairs of a condition that is only such pairs joined by AND; else none."""
    if on is None:
        return []
    pairs = []
    for part in on.flatten() if isinstance(on, exp.And) else [on]:
        if not (isinstance(part, exp.EQ) and isinstance(part.this, exp.Column)
                and isinstance(part.expression, exp.Column)):
            return []
        pairs.append((part.this, part.expression))
    return pairs
