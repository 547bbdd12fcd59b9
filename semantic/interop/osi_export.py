"""Model -> OSI (the Foundation's flat form: datasets, relationships, metrics), so other tools can read our models.

Entities become datasets of the same name, dimensions fields (the model's expressions written as ANSI-style SQL
with dataset-qualified references in metrics), relationships relationships to the target's key, metrics top-level
metrics named as ours when the name is unique and `entity_metric` otherwise. A metric filter becomes a CASE inside
the aggregate. What OSI cannot say (cumulative and period-over-period metrics, percentiles, semi-additive
metrics, features) is left out and listed in `skipped`, each with the reason, and in the document's
`custom_extensions`, so nothing disappears silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlglot import exp

from semantic.model import Entity, Metric, Model

VENDOR = "semantic-graphql"
_DATATYPES = {"string": "String", "integer": "Integer", "number": "Decimal", "boolean": "Boolean",
              "time": "DateTime"}
_AGGS = {"sum": "SUM", "avg": "AVG", "min": "MIN", "max": "MAX", "count": "COUNT", "median": "MEDIAN"}


@dataclass(frozen=True)
class Exported:
    document: dict[str, Any]
    skipped: tuple[str, ...]  # "entity.metric: why"


def export(model: Model) -> Exported:
    counts: dict[str, int] = {}
    for entity in model.entities.values():
        for name in entity.metrics:
            counts[name] = counts.get(name, 0) + 1

    def global_name(metric: Metric) -> str:
        return metric.name if counts[metric.name] == 1 else f"{metric.entity}_{metric.name}"

    datasets, relationships, metrics, skipped = [], [], [], []
    left_out = _left_out(model)
    for entity in model.entities.values():
        datasets.append(_dataset(entity))
        for rel in entity.relationships:
            relationships.append({"name": f"{entity.name}_to_{rel.entity}", "from": entity.name, "to": rel.entity,
                                  "from_columns": list(rel.key),
                                  "to_columns": list(model.entities[rel.entity].key)})
        for metric in entity.metrics.values():
            body, why = (None, left_out[metric.qualified]) if metric.qualified in left_out else \
                _metric(model, entity, metric, global_name)
            if body is None:
                skipped.append(f"{metric.qualified}: {why}")
                continue
            item = {"name": global_name(metric), "expression": body}
            if metric.description:
                item["description"] = metric.description
            metrics.append(item)
        if entity.features:
            skipped.append(f"{entity.name} features ({', '.join(entity.features)}): OSI has no point-in-time "
                           f"features")
    document: dict[str, Any] = {"name": model.name, "datasets": datasets, "relationships": relationships,
                                "metrics": metrics}
    if model.description:
        document["description"] = model.description
    if skipped:
        document["custom_extensions"] = [{"vendor_name": VENDOR, "data": "not exported: " + "; ".join(skipped)}]
    return Exported(document, tuple(skipped))


def _left_out(model: Model) -> dict[str, str]:
    """Metrics OSI cannot say, and derived metrics built on them (to a fixed point): `entity.metric` -> why."""
    why: dict[str, str] = {}
    for entity in model.entities.values():
        for metric in entity.metrics.values():
            if metric.kind in ("cumulative", "offset"):
                why[metric.qualified] = f"{metric.kind} metrics have no OSI Foundation form"
            elif metric.semi_additive is not None:
                why[metric.qualified] = "semi-additive metrics are deferred in OSI Foundation v0.1"
            elif metric.agg == "percentile":
                why[metric.qualified] = ("ordered-set aggregates (PERCENTILE_CONT ... WITHIN GROUP) are deferred in "
                                         "OSI Foundation v0.1")
    changed = True
    while changed:
        changed = False
        for entity in model.entities.values():
            for metric in entity.metrics.values():
                if metric.kind != "derived" or metric.qualified in why or metric.expr is None:
                    continue
                uses = [f"{c.table or entity.name}.{c.name}" for c in metric.expr.find_all(exp.Column)]
                missing = [u for u in uses if u in why]
                if missing:
                    why[metric.qualified] = f"it is built on {', '.join(missing)}, which is not exported"
                    changed = True
    return why


def _dataset(entity: Entity) -> dict[str, Any]:
    item: dict[str, Any] = {"name": entity.name, "source": entity.table or f"({entity.sql})",
                            "primary_key": list(entity.key), "fields": []}
    if entity.description:
        item["description"] = entity.description
    for dim in entity.dimensions.values():
        field: dict[str, Any] = {"name": dim.name, "expression": dim.expr.sql(), "dimension": {},
                                 "datatype": _DATATYPES[dim.type]}
        if dim.type == "time":
            field["dimension"] = {"is_time": True}
        if dim.description:
            field["description"] = dim.description
        item["fields"].append(field)
    facts = sorted({c.name for m in entity.metrics.values() for tree in (m.expr, m.filter) if tree is not None
                    and m.kind == "simple" for c in tree.find_all(exp.Column) if not c.table} - set(entity.dimensions))
    item["fields"] += [{"name": name, "expression": name} for name in facts]  # columns metrics read: facts
    return item


def _qualify(tree: exp.Expr, entity: Entity) -> exp.Expr:
    """Bare columns are the entity's: OSI metric bodies name the dataset."""

    def rewrite(node: exp.Expr) -> exp.Expr:
        if isinstance(node, exp.Column) and not node.table:
            return exp.column(node.name, table=entity.name)
        return node

    return tree.copy().transform(rewrite, copy=False)


def _metric(model: Model, entity: Entity, metric: Metric, global_name: Any) -> tuple[str | None, str]:
    if metric.kind == "derived":
        assert metric.expr is not None

        def rewrite(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column):
                owner = model.entities[node.table] if node.table else entity
                return exp.column(global_name(owner.metrics[node.name]))
            return node

        return metric.expr.copy().transform(rewrite, copy=False).sql(), ""
    value: exp.Expr = _qualify(metric.expr, entity) if metric.expr is not None else exp.Star()
    if metric.filter is not None:
        if isinstance(value, exp.Star):
            value = exp.column(entity.key[0], table=entity.name)
        value = exp.Case(ifs=[exp.If(this=_qualify(metric.filter, entity), true=value)])
    if metric.agg == "count_distinct":
        return f"COUNT(DISTINCT {value.sql()})", ""
    if isinstance(value, exp.Star):
        value = exp.column(entity.key[0], table=entity.name)  # COUNT(*) of the entity: its key is never null
    return f"{_AGGS[metric.agg or 'sum']}({value.sql()})", ""
