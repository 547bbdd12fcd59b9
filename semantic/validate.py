"""Cross-reference checks over a loaded Model; each rule returns issues instead of raising, so a user sees every
problem at once."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from sqlglot import exp

from semantic.errors import Issue, did_you_mean
from semantic.model import Entity, Metric, Model, Where
from semantic.plan.paths import all_paths

Rule = Callable[[Model], Iterator[Issue]]


def _issue(where: Where, message: str) -> Issue:
    return Issue(message, where.file, where.line)


def check_relationships(model: Model) -> Iterator[Issue]:
    for entity in model.entities.values():
        for rel in entity.relationships:
            target = model.entities.get(rel.entity)
            if target is None:
                yield _issue(rel.where, f"entity {entity.name!r} relates to unknown entity {rel.entity!r}."
                                        f"{did_you_mean(rel.entity, model.entities)}")
            elif rel.key and len(rel.key) != len(target.key):
                yield _issue(rel.where, f"relationship {entity.name} -> {rel.entity}: key has {len(rel.key)} "
                                        f"column(s) but {rel.entity}'s key has {len(target.key)}")


def resolve_dimension(model: Model, entity: Entity, ref: str) -> tuple[Entity, str] | str:
    """`name` or `entity.name` seen from `entity` -> (owning entity, dimension name), or an error message."""
    owner_name, _, name = ref.rpartition(".")
    owner = model.entities.get(owner_name) if owner_name else entity
    if owner is None:
        return f"unknown entity {owner_name!r} in {ref!r}.{did_you_mean(owner_name, model.entities)}"
    if name not in owner.dimensions:
        return f"unknown dimension {name!r} of {owner.name!r}.{did_you_mean(name, owner.dimensions)}"
    if owner is not entity and not all_paths(model, entity.name, owner.name):
        return f"{owner.name!r} is not reachable from {entity.name!r} along many-to-one relationships"
    return owner, name


def check_times(model: Model) -> Iterator[Issue]:
    for entity in model.entities.values():
        for attr in ("time", "created"):
            ref = getattr(entity, attr)
            if ref is None:
                continue
            found = resolve_dimension(model, entity, ref)
            if isinstance(found, str):
                yield _issue(entity.where, f"entity {entity.name!r} `{attr}`: {found}")
            elif found[0].dimensions[found[1]].type != "time":
                yield _issue(entity.where, f"entity {entity.name!r} `{attr}`: {ref!r} is not a time dimension "
                                           f"(declare it with `type: time`)")


def _qualified_refs(tree: exp.Expr) -> Iterator[exp.Column]:
    for column in tree.find_all(exp.Column):
        if column.table:
            yield column


def check_expressions(model: Model) -> Iterator[Issue]:
    """`entity.name` inside dimension and simple-metric SQL must be a dimension reachable many-to-one."""
    for entity in model.entities.values():
        exprs = [(d.where, f"dimension {entity.name}.{d.name}", d.expr) for d in entity.dimensions.values()]
        for m in entity.metrics.values():
            if m.kind == "simple":
                exprs += [(m.where, f"metric {m.qualified}", e) for e in (m.expr, m.filter) if e is not None]
        for where, what, tree in exprs:
            for column in _qualified_refs(tree):
                found = resolve_dimension(model, entity, f"{column.table}.{column.name}")
                if isinstance(found, str):
                    yield _issue(where, f"{what}: {found}")


def check_derived_metrics(model: Model) -> Iterator[Issue]:
    for entity in model.entities.values():
        for metric in entity.metrics.values():
            if metric.kind != "derived" or metric.expr is None:
                continue
            for column in metric.expr.find_all(exp.Column):
                owner = model.entities.get(column.table) if column.table else entity
                if owner is None:
                    yield _issue(metric.where, f"metric {metric.qualified}: unknown entity {column.table!r}."
                                               f"{did_you_mean(column.table, model.entities)}")
                elif column.name not in owner.metrics:
                    yield _issue(metric.where, f"metric {metric.qualified}: unknown metric {column.name!r} of "
                                               f"{owner.name!r}.{did_you_mean(column.name, owner.metrics)}")
    yield from _cycles(model)


def _cycles(model: Model) -> Iterator[Issue]:
    state: dict[str, str] = {}

    def visit(qualified: str, trail: tuple[str, ...]) -> Iterator[Issue]:
        if state.get(qualified) == "done":
            return
        if state.get(qualified) == "active":
            cycle = " -> ".join((*trail[trail.index(qualified):], qualified))
            owner, name = qualified.split(".")
            yield _issue(model.entities[owner].metrics[name].where, f"derived metrics form a cycle: {cycle}")
            return
        owner, name = qualified.split(".")
        metric = model.entities[owner].metrics.get(name)
        if metric is None or metric.kind != "derived" or metric.expr is None:
            return
        state[qualified] = "active"
        for column in metric.expr.find_all(exp.Column):
            ref = f"{column.table or owner}.{column.name}"
            ent = model.entities.get(column.table or owner)
            if ent is not None and column.name in ent.metrics:
                yield from visit(ref, (*trail, qualified))
        state[qualified] = "done"

    for entity in model.entities.values():
        for name in entity.metrics:
            yield from visit(f"{entity.name}.{name}", ())


# Aggregates whose value over several periods follows from the per-period values (sum of sums, max of maxes).
ACCUMULABLE = ("sum", "count", "min", "max")


def check_windowed_metrics(model: Model) -> Iterator[Issue]:
    """Cumulative and offset metrics build on a simple metric of the same entity, on an entity with a time."""
    for entity in model.entities.values():
        for metric in entity.metrics.values():
            if metric.kind not in ("cumulative", "offset"):
                continue
            what = f"metric {metric.qualified}"
            base = entity.metrics.get(metric.base or "")
            if base is None:
                yield _issue(metric.where, f"{what}: unknown metric {metric.base!r} of {entity.name!r}."
                                           f"{did_you_mean(metric.base or '', entity.metrics)}")
                continue
            if entity.time is None:
                yield _issue(metric.where, f"{what}: {entity.name!r} has no `time`, so it has no periods")
            if base.kind != "simple":
                yield _issue(metric.where, f"{what}: {metric.kind} metrics build on a simple metric; "
                                           f"{base.qualified} is {base.kind}")
            elif base.semi_additive is not None:
                yield _issue(metric.where, f"{what}: {base.qualified} is a snapshot (semi_additive), so "
                                           f"accumulating or offsetting it over time is not supported")
            elif metric.kind == "cumulative" and base.agg not in (*ACCUMULABLE, "count_distinct"):
                yield _issue(metric.where, f"{what}: a {base.agg} cannot be accumulated from per-period values; "
                                           f"cumulative metrics build on {', '.join(ACCUMULABLE)} or "
                                           f"count_distinct")


def check_semi_additive(model: Model) -> Iterator[Issue]:
    for entity in model.entities.values():
        for metric in entity.metrics.values():
            if metric.semi_additive is not None and entity.time is None:
                yield _issue(metric.where, f"metric {metric.qualified}: a semi-additive metric takes the value at "
                                           f"the last (or first) time, but {entity.name!r} has no `time`")


def check_features(model: Model) -> Iterator[Issue]:
    for entity in model.entities.values():
        for feature in entity.features.values():
            what = f"feature {entity.name}.{feature.name}"
            if feature.kind == "metric":
                owner_name, _, name = (feature.ref or "").rpartition(".")
                owner = model.entities.get(owner_name)
                if owner is None:
                    yield _issue(feature.where, f"{what}: `metric` must be `entity.metric`; unknown entity "
                                                f"{owner_name!r}.{did_you_mean(owner_name, model.entities)}")
                elif name not in owner.metrics:
                    yield _issue(feature.where, f"{what}: unknown metric {name!r} of {owner.name!r}."
                                                f"{did_you_mean(name, owner.metrics)}")
                elif owner.time is None:
                    yield _issue(feature.where, f"{what}: {owner.name!r} has no `time`, so its events cannot be "
                                                f"placed before or after a point in time")
                elif len(all_paths(model, owner.name, entity.name)) != 1:
                    yield _issue(feature.where, f"{what}: {owner.name!r} must reach {entity.name!r} along exactly "
                                                f"one chain of many-to-one relationships")
                elif (unsupported := _per_period(model, owner.metrics[name], ())) is not None:
                    # Refused here for online lookups and training sets alike: both aggregate the events up to t.
                    yield _issue(feature.where, f"{what}: {unsupported}, which is read per period, not as one "
                                                f"value of the events up to a point in time; build the feature on "
                                                f"a simple metric (with `window:` for a trailing window)")
            elif feature.kind == "dimension":
                if feature.ref not in entity.dimensions:
                    yield _issue(feature.where, f"{what}: unknown dimension {feature.ref!r} of {entity.name!r}."
                                                f"{did_you_mean(feature.ref or '', entity.dimensions)}")
            elif feature.kind == "latest":
                owner_name, _, name = (feature.ref or "").rpartition(".")
                owner = model.entities.get(owner_name)
                if owner is None or name not in owner.dimensions:
                    yield _issue(feature.where, f"{what}: `latest` must be `entity.dimension` of a related "
                                                f"entity, got {feature.ref!r}")
                elif owner.time is None:
                    yield _issue(feature.where, f"{what}: {owner.name!r} has no `time` to find its latest row by")
                elif owner.relationship_to(entity.name) is None:
                    yield _issue(feature.where, f"{what}: {owner.name!r} needs a relationship to {entity.name!r}")
            elif feature.expr is not None:
                for column in feature.expr.find_all(exp.Column):
                    if column.table or column.name not in entity.features or column.name == feature.name:
                        yield _issue(feature.where, f"{what}: {column.sql()!r} is not another feature of "
                                                    f"{entity.name!r}.{did_you_mean(column.name, entity.features)}")


def _per_period(model: Model, metric: Metric, trail: tuple[str, ...]) -> str | None:
    """Why a metric has no single value over the events up to t (cumulative, offset, a snapshot), or None."""
    if metric.kind in ("cumulative", "offset"):
        return f"{metric.qualified} is {'an' if metric.kind == 'offset' else 'a'} {metric.kind} metric"
    if metric.semi_additive is not None:
        return f"{metric.qualified} is a snapshot (semi_additive: {metric.semi_additive})"
    if metric.kind == "derived" and metric.expr is not None and metric.qualified not in trail:
        for column in metric.expr.find_all(exp.Column):
            owner = model.entities.get(column.table or metric.entity)
            found = owner.metrics.get(column.name) if owner is not None else None
            reason = _per_period(model, found, (*trail, metric.qualified)) if found is not None else None
            if reason is not None:
                return f"{metric.qualified} uses {reason}"
    return None


RULES: tuple[Rule, ...] = (check_relationships, check_times, check_expressions, check_derived_metrics,
                           check_windowed_metrics, check_semi_additive, check_features)


def validate(model: Model) -> list[Issue]:
    """Every issue every rule finds, in rule order."""
    return [issue for rule in RULES for issue in rule(model)]
