"""FROM and JOIN clauses, written once: an entity's rows as a FROM source, and a scope's joins over them.

Every statement that reads a model entity (metrics, features, training sets, online lookups and snapshots) reads
its rows through `source_of`, and every FROM ... JOIN chain over entities is assembled by `joined`. So a rule about
which rows a reader may see, or how a chain of joins is shaped, has one place to live.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable

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


# Where the inner chain plus the gated orphans beats the LEFT chain: DuckDB runs a LEFT hash join about twice as slowly
# as an inner one on the same build side and cannot reorder LEFT joins; PostgreSQL plans both alike, so there the
# extra count and the carried rows would only cost.
GATED_DIALECTS = frozenset({"duckdb"})

# Comparisons that are never true when an operand is NULL: a WHERE conjunct of this form on a joined entity's column
# drops the rows that did not find that entity, so the join may as well be inner.
_NULL_REJECTING = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.In, exp.Like, exp.ILike, exp.Between)


def gate_orphans(select: exp.Select, base: Entity, matched: Collection[str]) -> exp.Select:
    """Keep every base row of `select` while joining the `matched` entities inner.

    `matched` names LEFT joins from the base whose target held a row for every base row when last checked (see
    `semantic.integrity`). Data may have changed since, so the check is repeated inside the statement, on one
    snapshot: the base rows joined inner (the rows the statement reads, as `<base>_matched`) are counted against the
    base rows, and only when the counts differ do the orphans (base rows some matched join misses, null keys
    included) come in, through the LEFT joins as written, beside the inner rows; otherwise every source of that
    branch is empty. Each base row therefore counts once whatever the data, and when the check still holds the
    engine runs the inner chain. (With a non-unique target key an item that matches twice could hide an orphan from
    the count; such a key double counts under any join shape, and `KeyGuard` refuses it.)

    The columns the SELECT list and the filter read are carried as `<alias>__<column>`; the filter's conjuncts on
    the base's own columns apply inside both branches (and to the count), the others above them, where orphans see
    NULL for what they did not find (`customer.region IS NULL` keeps them). A join whose entity a conjunct cannot
    pass as NULL (`customer.region = 'EU'`) is simply inner: the filter drops its orphans anyway.
    """
    joins = select.args.get("joins") or []
    where = select.args.get("where")
    conjuncts = list(where.this.flatten()) if where is not None and isinstance(where.this, exp.And) else \
        [where.this] if where is not None else []
    gated: list[tuple[exp.Join, exp.Column]] = []
    for join in joins:
        alias = join.alias_or_name
        key = _target_key(join)
        if alias not in matched or (join.side or "").upper() != "LEFT" or key is None:
            continue
        if any(_rejects_null(c, _after(joins, alias)) for c in conjuncts):
            join.set("side", None)
        else:
            gated.append((join, key))
    if not gated:
        return select
    name = base.name
    own = [c for c in conjuncts if _reads_only(c, name)]
    rest = [c for c in conjuncts if not _reads_only(c, name)]
    read: dict[tuple[str, str], exp.Column] = {}
    for node in [*select.expressions, *rest]:
        for column in node.find_all(exp.Column):
            read.setdefault((column.table, column.name), column)
    carried: dict[tuple[str, str], str] = {}
    for table, column in read:
        label = f"{table}__{column}"
        while label in carried.values():  # path aliases hold `__` too: `a__b`.`c` and `a`.`b__c`
            label += "_"
        carried[(table, column)] = label
    items = [exp.alias_(exp.column(c.this.copy(), table=ident(c.table) if c.table else None), ident(carried[k]))
             for k, c in read.items()]
    inner_name = f"{name}_matched"
    source = select.args["from_"].this

    def rows_of(kind: str) -> exp.Select:
        branch = exp.select(*(i.copy() for i in items), copy=False).from_(source.copy(), copy=False)
        for join in joins:
            join = join.copy()
            if kind == "matched" and any(join.alias_or_name == g.alias_or_name for g, _ in gated):
                join.set("side", None)
            branch.append("joins", join)
        return branch.where(*(c.copy() for c in own), copy=False) if own else branch

    matched_rows = rows_of("matched")
    counted = exp.select(exp.Count(this=exp.Star())).from_(source.copy())
    if own:
        counted = counted.where(*(c.copy() for c in own))
    gate = exp.NEQ(this=exp.Subquery(this=counted),
                   expression=exp.Subquery(this=exp.select(exp.Count(this=exp.Star())).from_(ident(inner_name))))
    orphans = rows_of("orphans")
    for node in [orphans.args["from_"], *orphans.args["joins"]]:  # each source empty while the counts agree
        node.set("this", _only_if(node.this, gate))
    missed = [exp.Is(this=key.copy(), expression=exp.Null()) for _, key in gated]
    orphans = orphans.where(exp.or_(*missed) if len(missed) > 1 else missed[0], copy=False)
    union = exp.union(exp.select("*").from_(ident(inner_name)), orphans, distinct=False)

    def lift(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and (node.table, node.name) in carried:
            return exp.column(ident(carried[(node.table, node.name)]), table=ident(name))
        return node

    select.set("expressions", [e.transform(lift) for e in select.expressions])
    select.set("where", exp.Where(this=exp.and_(*(c.transform(lift) for c in rest))) if rest else None)
    select.set("joins", None)
    select.set("from_", exp.From(this=exp.alias_(exp.Subquery(this=union), ident(name), table=True)))
    return select.with_(ident(inner_name), as_=matched_rows, copy=False)


def _after(joins: list[exp.Join], alias: str) -> set[str]:
    """`alias` and the aliases joined through it (their ON reads one of these), in join order."""
    found = {alias}
    for join in joins:
        on = join.args.get("on")
        if on is not None and any(c.table in found for c in on.find_all(exp.Column)):
            found.add(join.alias_or_name)
    return found


def _rejects_null(condition: exp.Expr, aliases: set[str]) -> bool:
    node = condition.unnest()
    if isinstance(node, exp.Not) and isinstance(node.this.unnest(), exp.Is):  # x IS NOT NULL
        operand = node.this.unnest()
        return isinstance(operand.expression, exp.Null) and isinstance(operand.this, exp.Column) \
            and operand.this.table in aliases
    return isinstance(node, _NULL_REJECTING) and any(
        isinstance(side, exp.Column) and side.table in aliases for side in (node.this, node.args.get("expression")))


def _reads_only(condition: exp.Expr, alias: str) -> bool:
    return condition.find(exp.Query) is None and all(c.table == alias for c in condition.find_all(exp.Column))


def _only_if(source: exp.Expr, gate: exp.Expr) -> exp.Expr:
    """`(SELECT * FROM source WHERE gate) AS alias`, under the source's own alias."""
    alias = source.args.get("alias")
    rows = exp.select("*").from_(source.copy()).where(gate.copy())
    return exp.Subquery(this=rows, alias=alias.copy() if alias is not None else None)


def _target_key(join: exp.Join) -> exp.Column | None:
    """A column of the joined side of `join`'s ON (key pairs only): after the LEFT join, NULL exactly when nothing
    matched, since equality never matches a NULL."""
    alias = join.alias_or_name
    for left, right in _key_pairs(join.args.get("on")):
        for column in (left, right):
            if column.table == alias:
                return column
    return None
