"""A model checked against the data: model + warehouse -> every issue, each with the file:line of the node.

What is checked: each entity's table (or query) exists; every column the model names (keys, dimension and metric
expressions and filters, relationship keys) exists; columns fit their declared dimension types; entity keys are
unique (a non-unique many-to-one target double counts every metric joined through it); orphan and null foreign
keys are counted, and `required: true` is suggested where there are none. Each statement is built with sqlglot
(identifiers quoted with the warehouse's own spelling, no values pasted) and is cheap: one metadata read per
schema, one `GROUP BY key HAVING COUNT(*) > 1 LIMIT 1` per entity, one counting join per relationship.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlglot import exp

from semantic.catalog import Catalog, Relation, read_catalog
from semantic.errors import Issue, WarehouseError, did_you_mean
from semantic.execute import Warehouse
from semantic.model import Entity, Model, Relationship, Where
from semantic.plan.timemodel import storage_of
from semantic.sql.render import render
from semantic.types import DATES, INTEGERS, NUMBERS, TIMESTAMPS, is_integer

FITS = {"number": NUMBERS | INTEGERS, "boolean": {exp.DataType.Type.BOOLEAN}, "time": DATES | TIMESTAMPS}


def _issue(where: Where, message: str, level: str = "error") -> Issue:
    return Issue(message, where.file, where.line, level)


def _ident(name: str) -> exp.Identifier:
    return exp.to_identifier(name, quoted=True)


def _fits(declared: str, kind: exp.DataType) -> bool:
    if declared == "integer":
        return is_integer(kind)
    return declared not in FITS or kind.this in FITS[declared]


@dataclass(frozen=True)
class _Use:
    column: str
    where: Where
    what: str  # the node that uses the column, for messages


def columns_used(entity: Entity) -> Iterator[_Use]:
    """Every bare column of the entity's rows the model uses, with the node that uses it."""
    for column in entity.key:
        yield _Use(column, entity.where, f"entity {entity.name!r} key")
    for dim in entity.dimensions.values():
        for col in dim.expr.find_all(exp.Column):
            if not col.table:
                yield _Use(col.name, dim.where, f"dimension {entity.name}.{dim.name}")
    for metric in entity.metrics.values():
        if metric.kind == "simple":
            for tree in (metric.expr, metric.filter):
                for col in tree.find_all(exp.Column) if tree is not None else ():
                    if not col.table:
                        yield _Use(col.name, metric.where, f"metric {metric.qualified}")
    for rel in entity.relationships:
        for column in rel.key:
            yield _Use(column, rel.where, f"relationship {entity.name} -> {rel.entity} key")


def _column_issues(model: Model, entity: Entity, relation: Relation) -> Iterator[Issue]:
    seen: set[tuple[str, int, str]] = set()
    for use in columns_used(entity):
        if relation.column(use.column) is None and (use.column, use.where.line, use.what) not in seen:
            seen.add((use.column, use.where.line, use.what))
            names = [c.name for c in relation.columns.values()]
            yield _issue(use.where, f"{use.what}: column {use.column!r} does not exist in "
                                    f"{_source_name(entity)}.{did_you_mean(use.column, names)}")
    for dim in entity.dimensions.values():
        if not isinstance(dim.expr, exp.Column) or dim.expr.table:
            continue
        found = relation.column(dim.expr.name)
        if found is None or found.type is None:
            continue
        if dim.name in entity.key and dim.type == "string" and is_integer(found.type):
            yield _issue(dim.where, f"key {entity.name}.{dim.name} is typed string (the default) but column "
                                    f"{found.name!r} holds {found.type.sql(model.dialect)}; declare "
                                    f"`{{name: {dim.name}, type: integer}}` so keys are given as integers", "note")
        stored = storage_of(found.type.sql("postgres")) if dim.type == "time" else None
        if stored is not None and stored != (dim.storage or "timestamp"):  # docs/time.md: each kind read its way
            yield _issue(dim.where, f"dimension {entity.name}.{dim.name}: column {found.name!r} holds "
                                    f"{found.type.sql(model.dialect)}, so declare `storage: {stored}` (read as "
                                    f"{dim.storage or 'timestamp'}, its periods would be cut wrongly)")
        if _fits(dim.type, found.type):
            continue
        hint = {"time": f"; write `expr: CAST({dim.expr.name} AS TIMESTAMP)` if it holds times as text",
                "integer": "; declare it `type: number`"}.get(dim.type, "")
        yield _issue(dim.where, f"dimension {entity.name}.{dim.name} is declared {dim.type} but column "
                                f"{found.name!r} holds {found.type.sql(model.dialect)}{hint}")


def _source_name(entity: Entity) -> str:
    return f"table {entity.table!r}" if entity.table else f"the `sql` of {entity.name!r}"


def _columns(relation: Relation, names: tuple[str, ...]) -> list[str] | None:
    found = [relation.column(n) for n in names]
    return [c.name for c in found if c is not None] if all(found) else None


def duplicate_key(warehouse: Warehouse, relation: Relation, key: list[str]) -> tuple[tuple[object, ...], int] | None:
    """One key value held by more than one row, and how many rows hold it; None when the key is unique."""
    columns = [exp.column(_ident(k)) for k in key]
    count = exp.Count(this=exp.Star())
    query = (exp.select(*columns, count).from_(exp.alias_(relation.source.copy(), _ident("t"), table=True))
             .where(exp.and_(*(exp.Not(this=exp.Is(this=c.copy(), expression=exp.Null())) for c in columns)))
             .group_by(*(c.copy() for c in columns)).having(exp.GT(this=count.copy(), expression=exp.Literal.number(1)))
             .limit(1))
    rows = warehouse.run(render(query, warehouse.dialect)).rows
    return (tuple(rows[0][:-1]), int(rows[0][-1])) if rows else None


def _value(key: list[str], values: tuple[object, ...]) -> str:
    return ", ".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}" for k, v in zip(key, values, strict=True))


def _orphans(warehouse: Warehouse, source: Relation, fk: list[str], target: Relation, pk: list[str]
             ) -> tuple[int, int, int]:
    """(rows whose foreign key matches no target row, rows with a null foreign key, all rows)."""
    s, t = _ident("s"), _ident("t")
    fk_cols = [exp.column(_ident(c), table=s) for c in fk]
    pk_cols = [exp.column(_ident(c), table=t) for c in pk]
    any_null = exp.or_(*(exp.Is(this=c.copy(), expression=exp.Null()) for c in fk_cols))
    missing = exp.and_(exp.Not(this=exp.Paren(this=any_null.copy())),
                       exp.Is(this=pk_cols[0].copy(), expression=exp.Null()))

    def tally(condition: exp.Expr) -> exp.Expr:
        return exp.Sum(this=exp.Case(ifs=[exp.If(this=condition, true=exp.Literal.number(1))],
                                     default=exp.Literal.number(0)))

    targets = exp.select(*(exp.column(_ident(c)) for c in pk)).distinct().from_(
        exp.alias_(target.source.copy(), _ident("u"), table=True))
    query = (exp.select(tally(missing), tally(any_null), exp.Count(this=exp.Star()))
             .from_(exp.alias_(source.source.copy(), s, table=True))
             .join(exp.alias_(exp.Subquery(this=targets), t, table=True), join_type="left",
                   on=exp.and_(*(exp.EQ(this=f, expression=p) for f, p in zip(fk_cols, pk_cols, strict=True)))))
    row = warehouse.run(render(query, warehouse.dialect)).rows[0]
    return int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)


def _relationship_issues(warehouse: Warehouse, entity: Entity, rel: Relationship, catalog: Catalog, model: Model,
                         duplicates: dict[str, tuple[list[str], tuple[object, ...], int]]) -> Iterator[Issue]:
    target = model.entities[rel.entity]
    what = f"relationship {entity.name} -> {target.name}"
    if target.name in duplicates:
        key, values, count = duplicates[target.name]
        yield _issue(rel.where, f"{what}: {target.name}'s key is not unique in the data ({_value(key, values)} is "
                                f"held by {count} rows), so every {entity.name} metric grouped or filtered by a "
                                f"{target.name} dimension would count those {entity.name} rows {count} times; "
                                f"make the key unique (deduplicate the table, or define {target.name!r} with `sql:` "
                                f"selecting one row per key)")
        return
    source, dest = catalog.relations[entity.name], catalog.relations[target.name]
    fk, pk = _columns(source, rel.key), _columns(dest, target.key)
    if fk is None or pk is None or len(fk) != len(pk):
        return
    orphans, nulls, total = _orphans(warehouse, source, fk, dest, pk)
    if rel.required and (orphans or nulls):
        yield _issue(rel.where, f"{what} is `required: true`, but {orphans} of {total} {entity.name} rows have a "
                                f"{'/'.join(fk)} matching no {target.name} and {nulls} have none; joins along a "
                                f"required relationship are inner and would drop them: remove `required`, or fix "
                                f"the data")
    elif orphans or nulls:
        parts = [f"{orphans} have a {'/'.join(fk)} matching no {target.name}" if orphans else "",
                 f"{nulls} have no {'/'.join(fk)}" if nulls else ""]
        yield _issue(rel.where, f"{what}: of {total} {entity.name} rows, {' and '.join(p for p in parts if p)}; "
                                f"they still count, under NULL {target.name} dimensions", "warning")
    elif not rel.required and total:
        yield _issue(rel.where, f"{what}: every one of the {total} {entity.name} rows has a matching "
                                f"{target.name}; declare `required: true` so joins along it can be inner (the "
                                f"engine may then reorder them)", "note")


def check_data(model: Model, warehouse: Warehouse) -> list[Issue]:
    """Every issue the data shows, entities in model order, then relationships.

    Raises:
        WarehouseError: the warehouse cannot be reached or cannot answer.
    """
    catalog = read_catalog(model, warehouse)
    issues: list[Issue] = []
    duplicates: dict[str, tuple[list[str], tuple[object, ...], int]] = {}
    for entity in model.entities.values():
        if entity.name in catalog.missing:
            issues.append(_issue(entity.where, f"entity {entity.name!r}: {catalog.missing[entity.name]}"))
            continue
        relation = catalog.relations.get(entity.name)
        if relation is None:
            continue
        issues += _column_issues(model, entity, relation)
        key = _columns(relation, entity.key)
        if key is None:
            continue
        found = duplicate_key(warehouse, relation, key)
        if found is not None:
            duplicates[entity.name] = (key, *found)
            # Its own features would repeat spine rows; joins to it are reported on each relationship. Otherwise
            # (a table of facts or snapshots nothing joins to) no number is wrong, but the key is not a key.
            issues.append(_issue(entity.where, f"entity {entity.name!r}: key ({', '.join(key)}) is not unique in "
                                               f"the data: {_value(key, found[0])} is held by {found[1]} rows",
                                 "error" if entity.features else "warning"))
    for entity in model.entities.values():
        for rel in entity.relationships:
            if entity.name in catalog.relations and rel.entity in catalog.relations:
                issues += _relationship_issues(warehouse, entity, rel, catalog, model, duplicates)
    return issues


def check_reachable(model: Model, warehouse: Warehouse) -> tuple[list[Issue], str | None]:
    """`check_data`, or no issues and why the data could not be checked."""
    try:
        return check_data(model, warehouse), None
    except WarehouseError as error:
        return [], error.message
