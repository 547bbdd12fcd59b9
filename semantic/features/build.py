"""FeatureRequest -> one sqlglot SELECT: one row per requested key, in request order, one column per feature.

Point-in-time rules (t = `at`):
- metric feature: the metric over the related entity's events with time <= t (and > t - window);
- latest feature: the related entity's latest row with time <= t, created <= t when it declares `created`, and
  time >= t - ttl; ties go to the greatest created time, then the greatest key; null for a key with no row of its
  own;
- dimension feature: the entity's own dimension, null before the entity's time;
- derived feature: SQL over the other features, computed in the same statement.
Counts of a key that exists at t are 0, not null, when it has no events; unknown keys give nulls throughout.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlglot import exp

from semantic.errors import QueryError
from semantic.features.request import FeatureRequest
from semantic.model import Entity, Feature, Metric, Model
from semantic.plan.planner import OutputColumn, alias_of, plan, time_literal
from semantic.plan.scope import Scope, ident, source_of
from semantic.query import Filter, SemanticQuery
from semantic.sql.build import build

SPINE = "spine"
ROW = "row_number"


def _key_filter(columns: list[exp.Column], keys: tuple[tuple[object, ...], ...]) -> exp.Expr:
    """`customer.customer_id IN (...)`, or an OR of ANDs for composite keys; values as literals."""
    distinct = list(dict.fromkeys(keys))
    if len(columns) == 1:
        return exp.In(this=columns[0].copy(), expressions=[exp.convert(k[0]) for k in distinct])
    return exp.or_(*(exp.and_(*(exp.EQ(this=c.copy(), expression=exp.convert(v))
                                for c, v in zip(columns, k, strict=True))) for k in distinct))


def _spine(entity: Entity, request: FeatureRequest) -> exp.Expr:
    rows = [exp.tuple_(exp.Literal.number(i), *(exp.convert(v) for v in key)) for i, key in enumerate(request.keys)]
    columns = [ident(ROW), *(ident(c) for c in entity.key)]
    values = exp.Values(expressions=rows, alias=exp.TableAlias(this=ident(SPINE), columns=columns))
    return exp.select("*").from_(values)


def _as_of(request: FeatureRequest) -> datetime:
    """The request's time. A request for the latest values (`at` None) is answered from a snapshot, which gives
    it a time before compiling (`Service.features` uses now)."""
    if request.at is None:
        raise QueryError(f"a feature request for {request.entity!r} needs a time `at` to be compiled to SQL; "
                         f"without one it asks for the latest values: use Service.features or an online lookup")
    return request.at


def _metric_feature(model: Model, entity: Entity, feature: Feature, request: FeatureRequest) -> exp.Select:
    at = _as_of(request)
    # String literals: the planner checks them against the time type, as it does for any filter.
    conditions: list[exp.Expr] = [exp.LTE(this=exp.column("time"),
                                          expression=exp.Literal.string(at.isoformat())),
                                   _key_filter([exp.column(c, table=entity.name) for c in entity.key], request.keys)]
    if feature.window is not None:
        start = at - feature.window
        conditions.append(exp.GT(this=exp.column("time"), expression=exp.Literal.string(start.isoformat())))
    query = SemanticQuery(metrics=(feature.ref or "",), dimensions=tuple(f"{entity.name}.{k}" for k in entity.key),
                          where=Filter.of(exp.and_(*conditions)))
    return build(plan(model, query))


def _latest_feature(model: Model, entity: Entity, feature: Feature, request: FeatureRequest) -> exp.Select:
    at = _as_of(request)
    owner_name, _, name = (feature.ref or "").rpartition(".")
    owner = model.entities[owner_name]
    rel = owner.relationship_to(entity.name)
    assert rel is not None
    scope = Scope(model, owner)
    needed = f"feature {entity.name}.{feature.name}"
    event_time = scope.time(owner, needed)
    keys = [exp.column(fk, table=ident(owner.name)) for fk in rel.key]
    conditions: list[exp.Expr] = [exp.LTE(this=event_time.copy(), expression=time_literal(at))]
    order = [exp.Ordered(this=event_time.copy(), desc=True, nulls_first=False)]
    if owner.created is not None:
        created_owner, _, created_name = owner.created.rpartition(".")
        created = scope.dimension(model.entities[created_owner] if created_owner else owner, created_name, needed)
        conditions.append(exp.LTE(this=created, expression=time_literal(at)))
        order.append(exp.Ordered(this=created.copy(), desc=True, nulls_first=False))
    if feature.ttl is not None:
        conditions.append(exp.GTE(this=event_time.copy(), expression=time_literal(at - feature.ttl)))
    order += [exp.Ordered(this=exp.column(k, table=ident(owner.name)), desc=True) for k in owner.key]
    conditions.append(_key_filter(keys, request.keys))
    value = scope.dimension(owner, name, needed)
    rank = exp.Window(this=exp.RowNumber(), partition_by=[k.copy() for k in keys], order=exp.Order(expressions=order))
    source, joins = scope.from_clause()
    inner = exp.select(*(exp.alias_(k, ident(alias_of(f"{entity.name}.{c}")))
                         for k, c in zip(keys, entity.key, strict=True)),
                       exp.alias_(value, ident("value")), exp.alias_(rank, ident("rank")))
    inner = inner.from_(exp.alias_(source, ident(owner.name), table=True))
    for join in joins:
        inner = inner.join(exp.alias_(join.source, ident(join.alias), table=True), on=join.on, join_type="left")
    inner = inner.where(exp.and_(*conditions))
    outer = exp.select(*(exp.column(ident(alias_of(f"{entity.name}.{c}"))) for c in entity.key),
                       exp.column(ident("value")))
    return outer.from_(exp.alias_(exp.Subquery(this=inner), ident("ranked"), table=True)).where(
        exp.EQ(this=exp.column(ident("rank")), expression=exp.Literal.number(1)))


def build_features(model: Model, request: FeatureRequest) -> tuple[exp.Select, tuple[OutputColumn, ...]]:
    """The statement answering a feature request, and its output columns (key columns, then features)."""
    entity = model.entities[request.entity]
    at = time_literal(_as_of(request))
    scope = Scope(model, entity)
    # The entity's own row, for dimension features and to tell known keys (0 events) from unknown ones (null).
    exists = row_exists(entity)
    known = known_at(scope, entity, at)
    final = exp.select(*(exp.column(ident(c), table=ident(SPINE)) for c in entity.key))
    final = final.from_(exp.alias_(exp.Subquery(this=_spine(entity, request)), ident(SPINE), table=True))
    final = final.join(exp.alias_(source_of(entity, model.dialect), ident(entity.name), table=True),
                       on=exp.and_(*(exp.EQ(this=exp.column(ident(c), table=ident(SPINE)),
                                            expression=exp.column(c, table=ident(entity.name))) for c in entity.key)),
                       join_type="left")
    values: dict[str, exp.Expr] = {}
    ctes: list[tuple[str, exp.Select]] = []

    def value_of(name: str, trail: tuple[str, ...]) -> exp.Expr:
        if name in values:
            return values[name]
        if name in trail:
            raise QueryError(f"derived features form a cycle: {' -> '.join((*trail, name))}")
        feature = entity.features[name]
        if feature.kind == "dimension":
            expr = scope.dimension(entity, feature.ref or "", f"feature {entity.name}.{name}")
            values[name] = exp.Case(ifs=[exp.If(this=known.copy(), true=expr)])
        elif feature.kind in ("metric", "latest"):
            cte = f"feature_{name}"
            subquery = (_metric_feature if feature.kind == "metric" else _latest_feature)(model, entity, feature,
                                                                                          request)
            ctes.append((cte, subquery))
            column = exp.column(ident(alias_of(feature.ref or "") if feature.kind == "metric" else "value"),
                                table=ident(cte))
            owner, _, metric_name = (feature.ref or "").rpartition(".")
            metric = model.entities[owner].metrics.get(metric_name) if feature.kind == "metric" else None
            if metric is not None and counts(metric):
                values[name] = exp.Case(ifs=[exp.If(this=known.copy(), true=exp.Coalesce(
                    this=column, expressions=[exp.Literal.number(0)]))])
            elif feature.kind == "latest":  # an unknown key has no latest row, whatever the related table holds
                values[name] = exp.Case(ifs=[exp.If(this=exists.copy(), true=column)])
            else:
                values[name] = column
        else:
            values[name] = derived(feature, lambda other: value_of(other, (*trail, name)))
        return values[name]

    for name in request.names:
        final = final.select(exp.alias_(value_of(name, ()).copy(), ident(name)), copy=False)
    for join in scope.joins.values():
        if join.alias != entity.name:
            final = final.join(exp.alias_(join.source, ident(join.alias), table=True), on=join.on, join_type="left")
    for cte, subquery in ctes:
        on = exp.and_(*(exp.EQ(this=exp.column(ident(c), table=ident(SPINE)),
                               expression=exp.column(ident(alias_of(f"{entity.name}.{c}")), table=ident(cte)))
                        for c in entity.key))
        final = final.join(ident(cte), on=on, join_type="left", copy=False)
        final = final.with_(ident(cte), as_=subquery, copy=False)
    final = final.order_by(exp.column(ident(ROW), table=ident(SPINE)), copy=False)
    columns = tuple(OutputColumn(c, c, entity.dimensions[c].type, "key") for c in entity.key)
    columns += tuple(OutputColumn(n, n, feature_type(model, entity, entity.features[n]), "feature",
                                  entity.features[n].description) for n in request.names)
    return final, columns


def row_exists(entity: Entity) -> exp.Expr:
    """The entity's own row was found (it is LEFT JOINed under its name)."""
    return exp.Not(this=exp.Is(this=exp.column(entity.key[0], table=ident(entity.name)), expression=exp.Null()))


def known_at(scope: Scope, entity: Entity, at: exp.Expr) -> exp.Expr:
    """The entity's row exists at `at`: found, and its time (when it has one) at or before `at`."""
    exists = row_exists(entity)
    if entity.time is None:
        return exists
    return exp.and_(exists, exp.LTE(this=scope.time(entity, f"features of {entity.name}"), expression=at))


def counts(metric: Metric) -> bool:
    """A count is 0, not null, for a key known at t without events."""
    return metric.kind == "simple" and metric.agg in ("count", "count_distinct")


def derived(feature: Feature, value_of: Callable[[str], exp.Expr]) -> exp.Expr:
    """A derived feature's expression with each feature name replaced by that feature's value."""
    if feature.expr is None:
        raise QueryError(f"feature {feature.entity}.{feature.name} has no expression")
    return feature.expr.copy().transform(
        lambda n: exp.Paren(this=value_of(n.name).copy()) if isinstance(n, exp.Column) else n, copy=False)


def feature_type(model: Model, entity: Entity, feature: Feature) -> str:
    """The output type of a feature: string integer number boolean date datetime."""
    if feature.kind == "dimension":
        return _output_type(entity.dimensions[feature.ref or ""].type)
    owner, _, name = (feature.ref or "").rpartition(".")
    if feature.kind == "latest":
        return _output_type(model.entities[owner].dimensions[name].type)
    if feature.kind == "metric":
        return "integer" if counts(model.entities[owner].metrics[name]) else "number"
    return "number"


def _output_type(dimension_type: str) -> str:
    return "datetime" if dimension_type == "time" else dimension_type
