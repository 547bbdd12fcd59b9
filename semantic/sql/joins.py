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
