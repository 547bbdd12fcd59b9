"""dbt semantic models (`semantic_manifest.json`, or the semantic-model and metric YAML) -> Model.

A semantic model becomes an entity (its primary entity's column the key, `node_relation` the table), foreign
entities many-to-one relationships to the semantic model whose primary entity they name, dimensions dimensions,
measures simple metrics (`name` kept), metrics: simple (a measure under the metric's name), ratio (numerator /
NULLIF(denominator, 0)), derived (the expression over the metrics it names), cumulative (a window or grain-to-date
over its measure). What has no counterpart (conversion metrics, metric filters, measure filters, non-additive
dimensions, offsets inside derived metrics) is refused with the file and line it was written at, all at once.
"""

from __future__ import annotations

import re
from typing import Any

import sqlglot
from sqlglot import exp

from semantic.errors import Issue, ModelError
from semantic.model import Dimension, DimensionType, Entity, Metric, Model, Period, Relationship, Where

_AGGS = {"sum": "sum", "count": "count", "count_distinct": "count_distinct", "average": "avg", "avg": "avg",
         "min": "min", "max": "max", "median": "median", "percentile": "percentile", "sum_boolean": "sum"}
_GRAINS = ("second", "minute", "hour", "day", "week", "month", "quarter", "year")
_WINDOW = re.compile(r"^\s*(\d+)\s+(second|minute|hour|day|week|month|quarter|year)s?\s*$", re.IGNORECASE)


def is_dbt(document: Any) -> bool:
    return isinstance(document, dict) and "semantic_models" in document


class _Reader:
    def __init__(self, file: str) -> None:
        self.file = file
        self.issues: list[Issue] = []

    def where(self, node: Any) -> Where:
        return Where(self.file, getattr(node, "line", 0))

    def refuse(self, node: Any, message: str) -> None:
        self.issues.append(Issue(message, self.file, getattr(node, "line", 0)))

    def sql(self, node: Any, text: Any, what: str) -> exp.Expr | None:
        try:
            return sqlglot.parse_one(str(text), read="duckdb")
        except sqlglot.errors.ParseError as error:
            self.refuse(node, f"{what}: cannot parse {text!r}: {str(error).splitlines()[0]}")
            return None


def read_dbt(document: Any, file: str = "<dbt>") -> Model:
    """A dbt semantic manifest (or its YAML) as a Model; ModelError with every problem found."""
    model, issues = read_dbt_issues(document, file)
    if issues:
        raise ModelError(issues)
    return model


def read_dbt_issues(document: Any, file: str = "<dbt>") -> tuple[Model, list[Issue]]:
    """The model, with every part that could be mapped, and every problem: what has no counterpart (at file:line
    where the document kept lines), or, when everything maps, what validating the model finds (a metric refused
    would otherwise be reported again as unknown to each metric built on it)."""
    reader = _Reader(file)
    models = document.get("semantic_models") or []
    primary: dict[str, str] = {}  # dbt entity name -> semantic model whose primary entity it is
    for sm in models:
        for ent in sm.get("entities") or []:
            if ent.get("type") in ("primary", "unique"):
                primary.setdefault(ent["name"], sm["name"])
    entities: dict[str, Entity] = {}
    measures: dict[str, Metric] = {}
    for sm in models:
        entity = _semantic_model(reader, sm, primary)
        if entity is not None:
            entities[entity.name] = entity
            measures.update({m.name: m for m in entity.metrics.values()})
    order = {"simple": 0, "cumulative": 0, "ratio": 1, "derived": 2}  # inputs before the metrics built on them
    for metric_node in sorted(document.get("metrics") or [], key=lambda n: order.get(str(n.get("type")), 3)):
        metric = _metric(reader, metric_node, measures, entities)
        if metric is not None:
            if metric.name in entities[metric.entity].metrics and metric.name not in measures:
                reader.refuse(metric_node, f"metric {metric.name!r} is declared twice")
            entities[metric.entity].metrics[metric.name] = metric
    model = Model(name=str(document.get("project_configuration", {}).get("name", "dbt")) if isinstance(
        document.get("project_configuration"), dict) else "dbt", entities=entities, source=file)
    if reader.issues:
        return model, reader.issues
    from semantic.validate import validate

    return model, list(validate(model))


def _semantic_model(reader: _Reader, sm: Any, primary: dict[str, str]) -> Entity | None:
    name = sm.get("name")
    relation = sm.get("node_relation") or {}
    table = relation.get("relation_name") or relation.get("alias")
    if not isinstance(name, str) or not table:
        reader.refuse(sm, f"semantic model {name!r} needs a name and a node_relation")
        return None
    table = str(table).replace('"', "").replace("`", "")
    where = reader.where(sm)
    key: tuple[str, ...] = ()
    relationships: list[Relationship] = []
    dimensions: dict[str, Dimension] = {}
    for ent in sm.get("entities") or []:
        column = str(ent.get("expr") or ent["name"])
        if ent.get("type") == "primary" or (ent.get("type") == "unique" and not key):
            key = (column,)
        elif ent.get("type") == "foreign":
            target = primary.get(ent["name"])
            if target is None:
                reader.refuse(ent, f"{name}: foreign entity {ent['name']!r} is no semantic model's primary entity")
                continue
            relationships.append(Relationship(target, (column,), "many_to_one", False, reader.where(ent)))
        dimensions.setdefault(column, Dimension(column, name, "string", exp.column(column), where=reader.where(ent)))
    if not key:
        reader.refuse(sm, f"semantic model {name!r} has no primary entity, so its rows have no key")
        return None
    time = None
    defaults = sm.get("defaults") or {}
    for dim in sm.get("dimensions") or []:
        kind: DimensionType = "time" if dim.get("type") == "time" else "string"
        grain = (dim.get("type_params") or {}).get("time_granularity")
        expr = reader.sql(dim, dim.get("expr") or dim["name"], f"dimension {name}.{dim['name']}")
        if expr is not None:
            dimensions[dim["name"]] = Dimension(dim["name"], name, kind, expr, str(dim.get("description") or ""),
                                                grain if grain in _GRAINS and kind == "time" else None,
                                                reader.where(dim))
        if kind == "time" and defaults.get("agg_time_dimension") == dim["name"]:
            time = dim["name"]
    metrics: dict[str, Metric] = {}
    for measure in sm.get("measures") or []:
        what = f"measure {name}.{measure.get('name')}"
        agg = _AGGS.get(str(measure.get("agg", "")).lower())
        if agg is None:
            reader.refuse(measure, f"{what}: agg {measure.get('agg')!r} has no counterpart")
            continue
        if measure.get("non_additive_dimension"):
            reader.refuse(measure, f"{what}: non_additive_dimension (a semi-additive measure over a window of "
                                   f"its own) is not mapped; declare it as a semi_additive metric by hand")
            continue
        text = measure.get("expr") or measure["name"]
        expr = reader.sql(measure, text, what)
        if expr is None:
            continue
        if str(measure.get("agg")).lower() == "sum_boolean":
            expr = exp.Case(ifs=[exp.If(this=expr, true=exp.Literal.number(1))], default=exp.Literal.number(0))
        params = measure.get("agg_params") or {}
        metrics[measure["name"]] = Metric(
            measure["name"], name, "simple", agg=agg, expr=None if agg == "count" and str(text) == "1" else expr,
            percentile=float(params["percentile"]) if agg == "percentile" and "percentile" in params else None,
            description=str(measure.get("description") or ""), where=reader.where(measure))
    return Entity(name=name, key=key, table=table, time=time, description=str(sm.get("description") or ""),
                  dimensions=dimensions, metrics=metrics, relationships=tuple(relationships), where=where)


def _measure_name(value: Any) -> str | None:
    if isinstance(value, dict):
        return value.get("name")
    return value if isinstance(value, str) else None


def _metric(reader: _Reader, node: Any, measures: dict[str, Metric], entities: dict[str, Entity]) -> Metric | None:
    name, kind = node.get("name"), node.get("type")
    what = f"metric {name!r}"
    params = node.get("type_params") or {}
    if node.get("filter"):
        reader.refuse(node, f"{what}: metric filters (Jinja `{{{{ Dimension(...) }}}}` templates) are not mapped")
        return None
    description, where = str(node.get("description") or ""), reader.where(node)
    if kind == "conversion":
        reader.refuse(node, f"{what}: conversion metrics (a funnel between two events within a window) have no "
                            f"counterpart here")
        return None
    if kind in ("simple", "cumulative"):
        measure = measures.get(_measure_name(params.get("measure")) or "")
        if measure is None:
            reader.refuse(node, f"{what}: unknown measure {params.get('measure')!r}")
            return None
        if kind == "simple":
            if name == measure.name:
                return measure
            return Metric(name, measure.entity, "simple", agg=measure.agg, expr=measure.expr,
                          percentile=measure.percentile, description=description, where=where)
        window = params.get("window") or (params.get("cumulative_type_params") or {}).get("window")
        grain_to_date = params.get("grain_to_date") or (params.get("cumulative_type_params") or {}).get(
            "grain_to_date")
        if isinstance(window, dict):
            window = f"{window.get('count')} {window.get('granularity')}"
        period = None
        if window:
            match = _WINDOW.match(str(window))
            if not match:
                reader.refuse(node, f"{what}: window {window!r} is not a length such as '7 days'")
                return None
            period = Period(int(match.group(1)), match.group(2).lower())
        return Metric(name, measure.entity, "cumulative", base=measure.name, window=period,
                      grain_to_date=str(grain_to_date).lower() if grain_to_date else None, description=description,
                      where=where)
    if kind == "ratio":
        parts = [_measure_name(params.get(k)) for k in ("numerator", "denominator")]
        found = [_find(p, measures, entities) for p in parts]
        if None in found:
            reader.refuse(node, f"{what}: unknown numerator or denominator {parts}")
            return None
        num, den = found[0], found[1]
        assert num is not None and den is not None
        expr = exp.Div(this=exp.column(num.name, table=num.entity),
                       expression=exp.Nullif(this=exp.column(den.name, table=den.entity),
                                             expression=exp.Literal.number(0)))
        return Metric(name, num.entity, "derived", expr=expr, description=description, where=where)
    if kind == "derived":
        inputs = params.get("metrics") or []
        aliases: dict[str, Metric] = {}
        for item in inputs:
            ref = _measure_name(item)
            target = _find(ref, measures, entities)
            if target is None:
                reader.refuse(item, f"{what}: unknown input metric {ref!r}")
                return None
            if isinstance(item, dict) and (item.get("offset_window") or item.get("offset_to_grain")):
                reader.refuse(item, f"{what}: offsets inside derived metrics are not mapped; declare an offset "
                                    f"metric by hand")
                return None
            if isinstance(item, dict) and item.get("filter"):
                reader.refuse(item, f"{what}: input filters are not mapped")
                return None
            aliases[str(item.get("alias") or ref) if isinstance(item, dict) else str(ref)] = target
        tree = reader.sql(node, params.get("expr") or "", what)
        if tree is None or not aliases:
            return None

        def rewrite(column: exp.Expr) -> exp.Expr:
            if isinstance(column, exp.Column) and column.name in aliases:
                target = aliases[column.name]
                return exp.column(target.name, table=target.entity)
            return column

        home = next(iter(aliases.values())).entity
        return Metric(name, home, "derived", expr=tree.transform(rewrite), description=description, where=where)
    reader.refuse(node, f"{what}: unknown metric type {kind!r}")
    return None


def _find(name: str | None, measures: dict[str, Metric], entities: dict[str, Entity]) -> Metric | None:
    if name is None:
        return None
    for entity in entities.values():
        if name in entity.metrics:
            return entity.metrics[name]
    return measures.get(name)
