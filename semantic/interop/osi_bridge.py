"""Many-to-many through a bridge dataset (D-026/D-027): a measure of M grouped by dimensions of D, where a bridge B
points at both (B -> M and B -> D, many-to-one each) and no path joins M and D directly.

The answer aggregates each M row once per distinct combination of the asked D dimensions it is linked to: M LEFT
JOIN B LEFT JOIN D, then DISTINCT over (M's columns, the D dimensions), so a movie of two 170 cm actors counts once
for 170. That row set is a query-specific entity (`M__via__B`) holding M's columns, dimensions and metrics and the D
dimensions as its own; the planner then aggregates it like any entity, so every aggregate (AVG, MEDIAN, COUNT
DISTINCT) is well defined in one pass.
"""

from __future__ import annotations

from dataclasses import replace

from sqlglot import exp

from semantic.model import Dimension, Entity, Model, Relationship


def bridge_between(model: Model, home: str, target: str) -> tuple[Entity, Relationship, Relationship] | None:
    """The one entity with a relationship to each of `home` and `target`, with both relationships."""
    found = []
    for entity in model.entities.values():
        to_home, to_target = entity.relationship_to(home), entity.relationship_to(target)
        if to_home is not None and to_target is not None and entity.name not in (home, target):
            found.append((entity, to_home, to_target))
    return found[0] if len(found) == 1 else None


def bridged(model: Model, home: str, target: str, dims: list[str]) -> tuple[Model, dict[str, str]]:
    """`model` plus the entity of `home` rows per distinct `target` dimensions `dims` (`target.field`), and the
    renaming of the query's items onto it (`home.metric` and `target.field` -> `entity.name`)."""
    found = bridge_between(model, home, target)
    assert found is not None
    bridge, to_home, to_target = found
    m, d = model.entities[home], model.entities[target]
    name = f"{home}__via__{bridge.name}"
    aliases = {dim: f"{target}__{dim.split('.', 1)[1]}" for dim in dims}
    on_home = exp.and_(*(exp.column(fk, "b").eq(exp.column(pk, "m")) for fk, pk in zip(to_home.key, m.key,
                                                                                           strict=True)))
    on_target = exp.and_(*(exp.column(fk, "b").eq(exp.column(pk, "d")) for fk, pk in zip(to_target.key, d.key,
                                                                                             strict=True)))
    select = exp.select(exp.column(exp.Star(), "m"),
                        *(exp.alias_(_raw(d, dim.split(".", 1)[1], "d"), alias, quoted=True)
                          for dim, alias in aliases.items())).distinct()
    select = select.from_(exp.alias_(_source(m), "m")).join(exp.alias_(_source(bridge), "b"), on=on_home,
                                                             join_type="left")
    select = select.join(exp.alias_(_source(d), "d"), on=on_target, join_type="left")

    def rehome(tree: exp.Expr | None) -> exp.Expr | None:
        if tree is None:
            return None

        def rewrite(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column) and node.table == home:
                return exp.column(node.name, table=name)
            return node

        return tree.copy().transform(rewrite, copy=False)

    dimensions = {n: replace(dim, entity=name, expr=rehome(dim.expr) or dim.expr) for n, dim in m.dimensions.items()}
    for alias in aliases.values():
        dimensions[alias] = Dimension(alias, name, "string", exp.column(alias))
    metrics = {n: replace(metric, entity=name, expr=rehome(metric.expr), filter=rehome(metric.filter))
               for n, metric in m.metrics.items()}
    entity = Entity(name=name, key=(*m.key, *aliases.values()), sql=select.sql(dialect=model.dialect),
                    dimensions=dimensions, metrics=metrics, relationships=m.relationships)
    renames = {f"{home}.{n}": f"{name}.{n}" for n in m.metrics} | {dim: f"{name}.{a}" for dim, a in aliases.items()}
    return replace(model, entities={**model.entities, name: entity}), renames


def _source(entity: Entity) -> exp.Expr:
    if entity.table is not None:
        return exp.to_table(entity.table)
    return exp.Subquery(this=exp.maybe_parse(entity.sql or ""))


def _raw(entity: Entity, name: str, alias: str) -> exp.Expr:
    """A dimension as SQL over `alias`'s columns, other dimensions of the entity expanded."""

    def rewrite(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column):
            if node.table == entity.name and node.name in entity.dimensions:
                return exp.Paren(this=_raw(entity, node.name, alias))
            if not node.table:
                return exp.column(node.name, table=alias)
        return node

    return entity.dimensions[name].expr.copy().transform(rewrite, copy=False)

