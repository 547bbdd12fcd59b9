"""OSI semantic queries (JSON) -> SemanticQuery, and their SQL.

Two shapes (D-010): an aggregation query (`dimensions` + `measures`) is our query as it is; a scalar query
(`fields`) is one row per row of its `dataset`, so it groups by that dataset's primary key too (hidden from the
answer). The answer's columns are named as OSI names them (a dimension by its field name, a measure by its `name`),
and ordered by OSI's rule: NULLs sort high, so last ascending and first descending (D-029).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, TokenError

from semantic.access import TRUSTED, Access
from semantic.errors import SemanticError
from semantic.interop.osi_bridge import bridge_between, bridged
from semantic.interop.osi_model import OsiError, OsiModel, has_aggregate, has_window
from semantic.model import Entity, Model
from semantic.plan.paths import all_paths
from semantic.query import Filter, SemanticQuery
from semantic.service import Compiled, Service
from semantic.sql.render import render

_QUERY_KEYS = ("dataset", "dimensions", "measures", "fields", "filters", "where", "qualify", "having", "order_by",
               "limit", "description", "name")
# Our error codes as OSI's, for errors the planner raises on an OSI query.
_CODES = {"AMBIGUOUS_PATH": "E_AMBIGUOUS_PATH", "UNKNOWN_FIELD": "E_NAME_NOT_FOUND",
          "FANOUT": "E_UNSAFE_REAGGREGATION", "BAD_QUERY": "E_INVALID_QUERY", "BAD_MODEL": "E_INVALID_MODEL",
          "COMPILE_ERROR": "E_UNSUPPORTED"}


@dataclass(frozen=True)
class OsiQuery:
    query: SemanticQuery
    columns: tuple[tuple[str, str], ...]  # (our item, e.g. `customers.region`, its OSI output name)
    order: tuple[tuple[str, bool], ...]  # (output name, descending)
    limit: int | None
    model: Model | None = None  # the model with a query's own bridge entity (`osi_bridge`), when it needs one


def read_query(document: Any, osi: OsiModel) -> OsiQuery:
    """Check an OSI query against the model and translate it; errors carry OSI codes."""
    if not isinstance(document, dict):
        raise OsiError("E_INVALID_QUERY", "an OSI query is a JSON object")
    for key in document:
        if key not in _QUERY_KEYS:
            raise OsiError("E_DEFERRED_KEY_REJECTED", f"query key {key!r} is not part of OSI Foundation v0.1 "
                                                      f"(deferred, §10)")
    model = osi.model
    dims, measures, fields = (_list(document, k) for k in ("dimensions", "measures", "fields"))
    if "fields" in document and (dims or measures):
        raise OsiError("E_MIXED_QUERY_SHAPE", "a query has either `fields` (scalar) or `dimensions`/`measures` "
                                              "(aggregation), not both")
    root = document.get("dataset")
    if root is not None and root not in model.entities:
        raise OsiError("E_NAME_NOT_FOUND", f"query dataset {root!r} is not in the model")
    where = _where(document, osi)
    columns: list[tuple[str, str]] = []
    metrics: tuple[str, ...]
    bridge: tuple[Model, dict[str, str]] | None = None
    if "fields" in document:
        if not fields:
            raise OsiError("E_EMPTY_SCALAR_QUERY", "the scalar query's `fields` is empty; name at least one field")
        home = model.entities[root] if root else _entity_of(osi, _text(fields[0], "a field"))
        refs = [_field(osi, _text(f, "a field"), home) for f in fields]
        columns = [(ref, _short(ref, refs)) for ref in refs]
        hidden = [f"{home.name}.{k}" for k in home.key if f"{home.name}.{k}" not in refs]
        query_dims, metrics = (*refs, *hidden), ()
    else:
        if not dims and not measures:
            raise OsiError("E_EMPTY_AGGREGATION_QUERY", "the aggregation query has neither dimensions nor "
                                                        "measures")
        refs = [_dimension(osi, _text(d, "a dimension")) for d in dims]
        columns = [(ref, _short(ref, refs)) for ref in refs]
        metrics_list = []
        for m in measures:
            metric = _measure_metric(osi, m)
            label = str(m["name"]) if isinstance(m, dict) and isinstance(m.get("name"), str) else metric.split(".")[1]
            metrics_list.append(metric)
            columns.append((metric, label))
        bridge = _bridge(osi, refs, metrics_list)
        if bridge is not None:
            renames = bridge[1]
            refs = [renames.get(r, r) for r in refs]
            metrics_list = [renames.get(m, m) for m in metrics_list]
            columns = [(renames.get(ref, ref), label) for ref, label in columns]
        else:
            _check_paths(osi, refs, metrics_list)
        query_dims, metrics = tuple(refs), tuple(dict.fromkeys(metrics_list))
    if bridge is not None:  # measures named in `qualify` are the bridge entity's now
        osi = OsiModel(bridge[0], {k: bridge[1].get(v, v) for k, v in osi.metrics.items()}, osi.refused)
    having = _having(document, osi, columns)
    conditions = [c for c in (where, having) if c is not None]
    condition = Filter.of(exp.and_(*conditions)) if conditions else None
    labels = {label: label for _, label in columns} | {ref: label for ref, label in columns}
    order = tuple(_order(o, labels) for o in _list(document, "order_by"))
    limit = document.get("limit")
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 0):
        raise OsiError("E_INVALID_QUERY", f"`limit` must be a whole number >= 0, got {limit!r}")
    try:
        query = SemanticQuery(metrics=metrics, dimensions=tuple(query_dims), where=condition)
    except SemanticError as error:
        raise as_osi(error) from None
    return OsiQuery(query, tuple(columns), order, limit, bridge[0] if bridge is not None else None)


def compile_query(service: Service, osi_query: OsiQuery, dialect: str, access: Access = TRUSTED, *,
                  pretty: bool = False) -> str:
    """The SQL answering an OSI query as `access` may read it: our compiled query, its columns renamed, ordered
    and limited as OSI says."""
    if osi_query.model is not None:
        service = Service(osi_query.model, service.warehouse, service.cache)
    try:
        compiled = service.compile(osi_query.query, dialect, access)
        return render(wrap(compiled, osi_query), dialect, pretty=pretty, comments=pretty)
    except OsiError:
        raise
    except SemanticError as error:
        raise as_osi(error) from None


def wrap(compiled: Compiled, osi_query: OsiQuery) -> exp.Expr:
    aliases = {c.name: c.alias for c in compiled.plan.columns}
    select = exp.select(*(exp.alias_(exp.column(aliases[ref], table="answer", quoted=True), label, quoted=True)
                          for ref, label in osi_query.columns))
    select = select.from_(exp.Subquery(this=compiled.tree.copy(), alias=exp.TableAlias(
        this=exp.to_identifier("answer"))))
    if osi_query.order:
        select = select.order_by(*(exp.Ordered(this=exp.to_identifier(label, quoted=True), desc=desc,
                                               nulls_first=desc) for label, desc in osi_query.order))
    if osi_query.limit is not None:
        select = select.limit(osi_query.limit)
    return select


def as_osi(error: SemanticError) -> OsiError:
    if isinstance(error, OsiError):
        return error
    return OsiError(_CODES.get(error.code, "E_INVALID_QUERY"), error.message)


def _list(document: Mapping[str, Any], key: str) -> list[Any]:
    value = document.get(key) or []
    if not isinstance(value, list):
        raise OsiError("E_INVALID_QUERY", f"`{key}` must be a list")
    return value


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise OsiError("E_INVALID_QUERY", f"{what} must be a name such as \"orders.status\", got {value!r}")
    return value


def _short(ref: str, refs: list[str]) -> str:
    """A dimension's output name: its field name, or `dataset_field` when two datasets share the name."""
    name = ref.split(".")[-1]
    return name if sum(r.split(".")[-1] == name for r in refs) == 1 else ref.replace(".", "_")


def _split(osi: OsiModel, text: str, what: str) -> tuple[Entity, str]:
    owner, _, name = text.partition(".")
    if not name or owner not in osi.model.entities:
        raise OsiError("E_NAME_NOT_FOUND", f"{what} {text!r}: write `dataset.field` with a dataset of the model")
    entity = osi.model.entities[owner]
    if name not in entity.dimensions:
        raise OsiError("E_NAME_NOT_FOUND", f"{what} {text!r}: dataset {owner!r} has no field {name!r}")
    return entity, name


def _entity_of(osi: OsiModel, text: str) -> Entity:
    return _split(osi, text, "field")[0]


def _dimension(osi: OsiModel, text: str) -> str:
    entity, name = _split(osi, text, "dimension")
    return f"{entity.name}.{name}"


def _metric_name(osi: OsiModel, name: str) -> str:
    if name in osi.refused:
        raise osi.refused[name]
    if name in osi.metrics:
        return osi.metrics[name]
    owner, _, short = name.partition(".")
    if short and owner in osi.model.entities and short in osi.model.entities[owner].metrics:
        return name
    raise OsiError("E_NAME_NOT_FOUND", f"no metric {name!r} in the model (metric names are global; a metric "
                                       f"scoped to a dataset is not found by its bare name)")


def _measure_metric(osi: OsiModel, measure: Any) -> str:
    if isinstance(measure, str):
        return _metric_name(osi, measure)
    if not isinstance(measure, dict) or not isinstance(measure.get("metric"), str):
        raise OsiError("E_INVALID_QUERY", f"a measure is {{\"name\": ..., \"metric\": ...}}, got {measure!r}")
    return _metric_name(osi, measure["metric"])


def _field(osi: OsiModel, text: str, home: Entity) -> str:
    if "." not in text and (text in osi.metrics or text in osi.refused):
        raise OsiError("E_AGGREGATE_IN_SCALAR_QUERY", f"{text!r} is a metric; a scalar query lists row-level "
                                                      f"fields only (ask for metrics in an aggregation query)")
    owner = text.partition(".")[0]
    if owner in osi.model.entities and text.partition(".")[2] in osi.model.entities[owner].metrics:
        raise OsiError("E_AGGREGATE_IN_SCALAR_QUERY", f"{text!r} is a metric; a scalar query lists fields only")
    entity, name = _split(osi, text, "field")
    if not all_paths(osi.model, home.name, entity.name):
        if all_paths(osi.model, entity.name, home.name):
            raise OsiError("E_FAN_OUT_IN_SCALAR_QUERY",
                           f"field {text!r}: {entity.name} has many rows per {home.name} row, so a scalar query "
                           f"over {home.name} cannot list it; aggregate it in a metric")
        raise OsiError("E_NO_PATH", f"field {text!r}: no relationship path from {home.name} to {entity.name}")
    return f"{entity.name}.{name}"


def _check_paths(osi: OsiModel, dims: list[str], metrics: list[str]) -> None:
    """Every metric's dataset reaches every dimension's; metrics of unrelated datasets need a shared dimension."""
    model = osi.model
    homes = list(dict.fromkeys(m.split(".")[0] for m in metrics))
    for home in homes:
        for dim in dims:
            target = dim.split(".")[0]
            if all_paths(model, home, target) or all_paths(model, target, home):
                continue  # reachable; or a fan-out, which the planner explains
            message = f"no relationship path from {home} (of the measures) to {target} (of {dim})"
            if not _shared(model, home, target):
                message += ("; E3013_NO_STITCHING_DIMENSION: the two datasets share no dimension to stitch on, "
                            "so combining them would be a Cartesian product")
            raise OsiError("E_NO_PATH", message)
    if not dims:
        for i, a in enumerate(homes):
            for b in homes[i + 1:]:
                if not _shared(model, a, b):
                    raise OsiError("E3013_NO_STITCHING_DIMENSION",
                                   f"measures of {a} and {b}: the datasets share no dimension to stitch on, so "
                                   f"combining them would be a Cartesian product")


def _bridge(osi: OsiModel, dims: list[str], metrics: list[str]) -> tuple[Model, dict[str, str]] | None:
    """The bridged model when every measure is of one dataset that reaches the dimensions it cannot reach only
    through one bridge dataset (a many-to-many), else None."""
    model = osi.model
    homes = {m.split(".")[0] for m in metrics}
    if len(homes) != 1:
        return None
    home = homes.pop()
    far = [d for d in dims if not all_paths(model, home, d.split(".")[0])]
    targets = {d.split(".")[0] for d in far}
    if len(targets) != 1 or all_paths(model, targets.copy().pop(), home):
        return None
    target = targets.pop()
    if bridge_between(model, home, target) is None:
        return None
    return bridged(model, home, target, far)


def _shared(model: Any, a: str, b: str) -> bool:
    return any(all_paths(model, a, e) and all_paths(model, b, e) for e in model.entities)


def _parse(text: Any, what: str) -> exp.Expr:
    if not isinstance(text, str) or not text.strip():
        raise OsiError("E_INVALID_QUERY", f"{what} must be SQL text, got {text!r}")
    try:
        return sqlglot.parse_one(text, read="duckdb")
    except (ParseError, TokenError) as error:
        raise OsiError("E_INVALID_QUERY", f"cannot parse {what} {text!r}: {str(error).splitlines()[0]}") from None


def _predicates(document: Mapping[str, Any], keys: tuple[str, ...]) -> list[tuple[str, exp.Expr]]:
    found = []
    for key in keys:
        value = document.get(key)
        items = [value] if isinstance(value, str) else _list(document, key)
        found += [(item if isinstance(item, str) else "", _parse(item, f"a `{key}` predicate")) for item in items]
    return found


def _where(document: Mapping[str, Any], osi: OsiModel) -> exp.Expr | None:
    """`filters` (or `where`): row-level predicates, ANDed (a list is a conjunction)."""
    trees = []
    for text, tree in _predicates(document, ("filters", "where")):
        if has_window(tree):
            raise OsiError("E_WINDOW_IN_WHERE", f"filter {text!r}: a window function cannot filter rows (windows "
                                                f"run after the row filter); expose it as a field and filter that")
        if has_aggregate(tree) or _metric_refs(tree, osi):
            raise OsiError("E_AGGREGATE_IN_WHERE", f"filter {text!r} aggregates; put it in `qualify` (having)")
        trees.append(tree)
    return exp.and_(*trees) if trees else None


def _metric_refs(tree: exp.Expr, osi: OsiModel, labels: Mapping[str, str] | None = None) -> list[exp.Column]:
    labels = labels or {}
    return [c for c in tree.find_all(exp.Column)
            if (not c.table and (c.name in osi.metrics or c.name in labels)) or
            (c.table in osi.model.entities and c.name in osi.model.entities[c.table].metrics)]


def _having(document: Mapping[str, Any], osi: OsiModel, columns: list[tuple[str, str]]) -> exp.Expr | None:
    """`qualify` (or `having`): predicates over measures, by their names or their metrics' names."""
    labels = {label: ref for ref, label in columns if ref.split(".")[1] in
              osi.model.entities[ref.split(".")[0]].metrics}
    trees = []
    for text, tree in _predicates(document, ("qualify", "having")):
        parts = list(tree.flatten()) if isinstance(tree, exp.And | exp.Or) else [tree]
        levels = {bool(has_aggregate(p) or _metric_refs(p, osi, labels)) for p in parts}
        if levels == {True, False}:
            raise OsiError("E_MIXED_PREDICATE_LEVEL", f"predicate {text!r} mixes row-level and aggregate "
                                                      f"conditions; put the row-level half in `filters`")
        if levels == {False}:
            raise OsiError("E_NON_AGGREGATE_IN_HAVING", f"predicate {text!r} is row-level; put it in `filters`")
        if has_aggregate(tree):
            raise OsiError("E_UNSUPPORTED", f"predicate {text!r}: name the measure or metric instead of writing "
                                            f"the aggregate")

        def rewrite(node: exp.Expr) -> exp.Expr:
            if isinstance(node, exp.Column) and not node.table:
                ref = labels.get(node.name) or osi.metrics.get(node.name)
                if ref is not None:
                    owner, _, name = ref.partition(".")
                    return exp.column(name, table=owner)
            return node

        trees.append(tree.transform(rewrite))
    return exp.and_(*trees) if trees else None


def _order(item: Any, labels: Mapping[str, str]) -> tuple[str, bool]:
    if isinstance(item, str):
        item = {"target": item}
    if not isinstance(item, dict):
        raise OsiError("E_INVALID_QUERY", f"an order_by item is {{\"target\": ..., \"direction\": ...}}, got "
                                          f"{item!r}")
    target = item.get("target", item.get("field"))
    direction = str(item.get("direction", "ASC")).upper()
    if direction not in ("ASC", "DESC"):
        raise OsiError("E_INVALID_QUERY", f"order_by direction must be ASC or DESC, got {direction!r}")
    if not isinstance(target, str) or target not in labels:
        raise OsiError("E_ORDER_BY_NOT_IN_OUTPUT", f"order_by target {target!r} is not a dimension, field or "
                                                   f"measure of the query; use one of {', '.join(labels)}")
    return labels[target], direction == "DESC"
