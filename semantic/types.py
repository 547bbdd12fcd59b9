"""The one rule deciding output types: every metric and feature is `string integer number boolean date datetime`.

- counts and distinct counts are integers; sums, minimums and maximums take their input's type (a sum of integers
  is an integer, a sum of decimals or doubles a number; the minimum of a time is a time); cumulative and offset
  metrics take their base metric's type; averages, medians and percentiles are numbers;
- derived metrics are numbers unless provably integers (sqlglot's `annotate_types` over the metrics' types:
  `a + b` of two counts is an integer, `a / b` never is);
- features take their metric's or dimension's type; derived features are typed by their expression
  (`coalesce(region, 'unknown')` is a string, `a > b` a boolean).

Input columns are typed by the warehouse where it told us (`Model.column_types`, read at serve time from
`catalog.py`), else by the declared type of the dimension over that column. The planner, the feature builders,
the CLI and the GraphQL schema all ask here: `metric_type`, `feature_type`, `output_type`, `time_kind`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Literal

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types

from semantic.model import Entity, Feature, Metric, Model

OUTPUT_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean", "date", "datetime")

T = exp.DataType.Type
INTEGERS = exp.DataType.INTEGER_TYPES | {T.UBIGINT, T.UINT, T.USMALLINT, T.UTINYINT, T.UINT128, T.UINT256}
NUMBERS = exp.DataType.REAL_TYPES
DATES = {T.DATE, T.DATE32}
_TIMESTAMPTZ = {T.TIMESTAMPTZ, T.TIMESTAMPLTZ}
TIMESTAMPS = {T.DATETIME, T.DATETIME64, T.TIMESTAMP, T.TIMESTAMPNTZ, T.TIMESTAMP_S, T.TIMESTAMP_MS,
               T.TIMESTAMP_NS} | _TIMESTAMPTZ
_DECLARED = {"string": "TEXT", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN", "time": "TIMESTAMP"}
_OUTPUT_SQL = {"string": "TEXT", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN", "date": "DATE",
               "datetime": "TIMESTAMP"}


def is_integer(kind: exp.DataType) -> bool:
    """Whole numbers only: the integer types, and decimals of scale 0."""
    if kind.this in INTEGERS:
        return True
    if kind.this == T.DECIMAL and len(kind.expressions) == 2:
        scale = kind.expressions[1].this
        return isinstance(scale, exp.Literal) and scale.this == "0"
    return False


def output_type(kind: exp.DataType | None, default: str = "number") -> str:
    """A SQL type as an output type; `default` when unknown."""
    if kind is None or kind.this in (T.UNKNOWN, T.NULL):
        return default
    if is_integer(kind):
        return "integer"
    if kind.this in NUMBERS:
        return "number"
    if kind.this == T.BOOLEAN:
        return "boolean"
    if kind.this in DATES:
        return "date"
    if kind.this in TIMESTAMPS:
        return "datetime"
    if kind.is_type(*exp.DataType.TEXT_TYPES) or kind.this in (T.UUID, T.ENUM):
        return "string"
    return default


def time_kind(kind: exp.DataType | None) -> Literal["date", "timestamp", "timestamptz"] | None:
    """How a warehouse time column is read (docs/time.md): a calendar day, a naive UTC instant, or an instant."""
    if kind is None:
        return None
    if kind.this in DATES:
        return "date"
    if kind.this in _TIMESTAMPTZ:
        return "timestamptz"
    return "timestamp" if kind.this in TIMESTAMPS else None


def column_type(model: Model, entity: Entity, column: str) -> exp.DataType | None:
    """A column of the entity's rows: the warehouse's type when known, else the declared type of the dimension
    over exactly that column, else None."""
    known = model.column_types.get(entity.name, {}).get(column.casefold())
    if known is not None:
        return known
    for dim in entity.dimensions.values():
        if isinstance(dim.expr, exp.Column) and not dim.expr.table and dim.expr.name == column:
            return exp.DataType.build(_DECLARED[dim.type])
    return None


def _dimension_sql_type(model: Model, owner: Entity, name: str) -> exp.DataType | None:
    dim = owner.dimensions.get(name)
    if dim is None:
        return None
    if isinstance(dim.expr, exp.Column) and not dim.expr.table:
        known = model.column_types.get(owner.name, {}).get(dim.expr.name.casefold())
        if known is not None and output_type(known, "") in ("integer", "date", "datetime") and dim.type != "string":
            return known  # the warehouse refines a declared number or time (integer, DATE, TIMESTAMPTZ)
    return exp.DataType.build(_DECLARED[dim.type])


def expression_type(tree: exp.Expr, typed: Callable[[exp.Column], exp.DataType | None], dialect: str
                    ) -> exp.DataType | None:
    """The type sqlglot infers for `tree` with each column typed by `typed` (None: unknown)."""

    def placeholder(node: exp.Expr) -> exp.Expr:
        if not isinstance(node, exp.Column):
            return node
        kind = typed(node)
        return exp.cast(exp.Null(), kind) if kind is not None else exp.Null()

    try:
        annotated = annotate_types(tree.copy().transform(placeholder, copy=False), dialect=dialect)
    except Exception:  # noqa: BLE001 - a function sqlglot cannot type leaves the type unknown
        return None
    return annotated.type


def _measure_input(model: Model, entity: Entity, tree: exp.Expr) -> exp.DataType | None:
    def typed(column: exp.Column) -> exp.DataType | None:
        if not column.table:
            return column_type(model, entity, column.name)
        owner = model.entities.get(column.table)
        return _dimension_sql_type(model, owner, column.name) if owner is not None else None

    return expression_type(tree, typed, model.dialect)


def metric_type(model: Model, metric: Metric, _trail: tuple[str, ...] = ()) -> str:
    """The output type of a metric's values."""
    entity = model.entities[metric.entity]
    if metric.kind in ("cumulative", "offset"):
        base = entity.metrics.get(metric.base or "")
        return metric_type(model, base, _trail) if base is not None else "number"
    if metric.kind == "derived":
        if metric.expr is None or metric.qualified in _trail or metric.expr.find(exp.Div) is not None:
            return "number"

        def typed(column: exp.Column) -> exp.DataType | None:
            owner = model.entities.get(column.table) if column.table else entity
            found = owner.metrics.get(column.name) if owner is not None else None
            if found is None:
                return None
            return exp.DataType.build(_OUTPUT_SQL[metric_type(model, found, (*_trail, metric.qualified))])

        kind = expression_type(metric.expr, typed, model.dialect)
        return "integer" if kind is not None and is_integer(kind) else "number"
    if metric.agg in ("count", "count_distinct"):
        return "integer"
    if metric.agg in ("sum", "min", "max") and metric.expr is not None:
        found = output_type(_measure_input(model, entity, metric.expr))
        if metric.agg == "sum":
            return "integer" if found == "integer" else "number"
        return found
    return "number"


def dimension_output_type(model: Model, owner: Entity, name: str) -> str:
    """A dimension's raw values (no grain): its declared type, a time as `datetime` (`date` over a DATE)."""
    dim = owner.dimensions[name]
    if dim.type == "time":
        return "date" if output_type(_dimension_sql_type(model, owner, name), "") == "date" else "datetime"
    return dim.type


def feature_type(model: Model, entity: Entity, feature: Feature, _trail: tuple[str, ...] = ()) -> str:
    """The output type of a feature's values."""
    owner_name, _, name = (feature.ref or "").rpartition(".")
    if feature.kind == "dimension":
        return dimension_output_type(model, entity, feature.ref or "")
    if feature.kind == "latest":
        return dimension_output_type(model, model.entities[owner_name], name)
    if feature.kind == "metric":
        return metric_type(model, model.entities[owner_name].metrics[name])
    if feature.expr is None or feature.name in _trail:
        return "number"

    def typed(column: exp.Column) -> exp.DataType | None:
        other = entity.features.get(column.name)
        if other is None:
            return None
        return exp.DataType.build(_OUTPUT_SQL[feature_type(model, entity, other, (*_trail, feature.name))])

    found = output_type(expression_type(feature.expr, typed, model.dialect))
    return "number" if found == "integer" and feature.expr.find(exp.Div) is not None else found  # true division


def with_column_types(model: Model, types: dict[str, dict[str, exp.DataType]]) -> Model:
    """The model with the warehouse's column types (entity -> case-folded column -> type) for the rule above."""
    return replace(model, column_types=types)
