"""Resolving model expressions from one base entity: bare columns, related dimensions, and the joins they need.

A `Scope` starts at the entity whose rows are aggregated and adds a LEFT JOIN for each entity a dimension needs,
along the single many-to-one path to it. LEFT, so a fact row whose related row is missing keeps its row, under NULL
dimensions. Each entity appears once, aliased by its name (AMBIGUOUS_PATH refuses a second path).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from semantic.errors import UnknownFieldError, did_you_mean
from semantic.model import Entity, Model
from semantic.plan.paths import all_paths, join_path


def ident(name: str) -> exp.Identifier:
    """Our own aliases are always quoted: entity names such as `order` are keywords in some dialects."""
    return exp.to_identifier(name, quoted=True)


@dataclass(frozen=True)
class Join:
    """A related entity's rows joined under `alias`; `semantic.sql.joins` turns it into SQL (the entity's rows
    come from `source_of` there, the one place that reads them)."""

    alias: str
    entity: str
    on: exp.Expr
    kind: str = "left"  # "inner" only along required relationships from the base: no row can be lost


class Scope:
    """Qualified expressions over one base entity's rows plus the joins they require."""

    def __init__(self, model: Model, base: Entity) -> None:
        self.model = model
        self.base = base
        self.joins: dict[str, Join] = {}

    def reach(self, target: str, needed_for: str, via: tuple[str, ...] = ()) -> str:
        """Join along the path from the base to `target` (the one ending in `via`, target when given); return the
        alias of `target`: its name, or its path (`route__airport`) when several paths lead to it."""
        previous = self.base.name
        path = join_path(self.model, self.base.name, target, needed_for, via)
        for i, rel in enumerate(path):
            entity = self.model.entities[rel.entity]
            alias = rel.entity if len(all_paths(self.model, self.base.name, rel.entity)) == 1 else \
                "__".join(r.entity for r in path[: i + 1])
            if alias not in self.joins:
                on = exp.and_(*(
                    exp.EQ(this=exp.column(fk, table=ident(previous)), expression=exp.column(pk, table=ident(alias)))
                    for fk, pk in zip(rel.key, rel.target_key or entity.key, strict=True)
                ))
                # Inner only if every hop from the base is required: after a LEFT hop the key may be NULL.
                inner = rel.required and (previous == self.base.name or self.joins[previous].kind == "inner")
                self.joins[alias] = Join(alias, entity.name, on, "inner" if inner else "left")
            previous = alias
        return previous

    def dimension(self, owner: Entity, name: str, needed_for: str, via: tuple[str, ...] = ()) -> exp.Expr:
        """`owner.name` as SQL over the base's rows, joining only what is needed.

        A key of a related entity is read from the joined row, not from the foreign key: for a fact whose related
        row is missing, `customer.customer_id` is NULL like every other customer dimension.
        """
        alias = self.reach(owner.name, needed_for, via)
        return self.qualify(owner.dimensions[name].expr, owner, needed_for, alias)

    def time(self, entity: Entity, needed_for: str) -> exp.Expr:
        """The entity's own time (perhaps a related entity's time dimension), unqualified by grain."""
        if entity.time is None:
            raise UnknownFieldError(f"{needed_for}: entity {entity.name!r} has no `time`, so it has no time axis")
        owner_name, _, name = entity.time.rpartition(".")
        owner = self.model.entities[owner_name] if owner_name else entity
        return self.dimension(owner, name, needed_for)

    def qualify(self, tree: exp.Expr, context: Entity, needed_for: str, alias: str | None = None
                ) -> exp.Expr:
        """A model expression written on `context` (joined as `alias`): bare columns are its columns, `e.d`
        related dimensions."""
        alias = alias or self.reach(context.name, needed_for)

        def rewrite(node: exp.Expr) -> exp.Expr:
            if not isinstance(node, exp.Column):
                return node
            if not node.table:
                return exp.column(node.this.copy(), table=ident(alias))
            owner = self.model.entities.get(node.table)
            if owner is None or node.name not in owner.dimensions:
                known = owner.dimensions if owner else self.model.entities
                raise UnknownFieldError(f"{needed_for}: unknown dimension {node.sql()!r}."
                                        f"{did_you_mean(node.name, known)}")
            if owner is context:
                return self.qualify(owner.dimensions[node.name].expr, owner, needed_for, alias)
            resolved = self.dimension(owner, node.name, needed_for)
            return resolved if isinstance(resolved, exp.Column) else exp.Paren(this=resolved)

        return tree.copy().transform(rewrite, copy=False)
