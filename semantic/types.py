"""The one rule deciding output types: every metric and feature is `string integer number boolean date datetime`,
refined by `ValueType` for consumers that type more finely (GraphQL): whether an integer provably fits 32 bits, and
whether a number is a decimal the warehouse holds exactly (money).

- counts and distinct counts are integers; sums, minimums and maximums take their input's type (a sum of integers
  is an integer, a sum of decimals or doubles a number; the minimum of a time is a time); cumulative and offset
  metrics take their base metric's type; averages, medians and percentiles are numbers;
- derived metrics are numbers unless provably integers (sqlglot's `annotate_types` over the metrics' types:
  `a + b` of two counts is an integer, `a / b` never is);
- features take their metric's or dimension's type; derived features are typed by their expression
  (`coalesce(region, 'unknown')` is a string, `a > b` a boolean).

Input columns are typed by the warehouse where it told us (`Model.column_types`, read at serve time from
`catalog.py`), else by the declared type of the dimension over that column. The planner, the feature builders,
the CLI and the GraphQL schema all ask here: `metric_type`, `feature_type`, `output_type`, `time_kind`, and their
refined forms `metric_value_type`, `feature_value_type`, `dimension_value_type`, `value_type`.

Widths and exactness: an integer fits 32 bits only where the warehouse says so of the column it comes from (an
INTEGER column, its minimum or maximum); counts, sums and anything derived are 64-bit, as is an integer whose
column type is unknown. A number is exact where the warehouse holds a decimal (DECIMAL/NUMERIC) and nothing
floating enters it: sums of decimals, their cumulative and offset metrics, decimal arithmetic without division;
averages, medians and percentiles are doubles.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Literal

from sqlglot import exp
from sqlglot.optimizer.annotate_types import annotate_types

from semantic.model import Entity, Feature, Metric, Model

OUTPUT_TYPES: tuple[str, ...] = ("string", "integer", "number", "boolean", "date", "datetime")

T = exp.DataType.Type
INTEGERS = exp.DataType.INTEGER_TYPES | {T.UBIGINT, T.UINT, T.USMALLINT, T.UTINYINT, T.UINT128, T.UINT256}
NUMBERS = exp.DataType.REAL_TYPES
INT32 = {T.INT, T.MEDIUMINT, T.SMALLINT, T.TINYINT, T.BIT, T.UMEDIUMINT, T.USMALLINT, T.UTINYINT}
DECIMALS = {T.DECIMAL, T.DECIMAL32, T.DECIMAL64, T.DECIMAL128, T.DECIMAL256, T.BIGDECIMAL, T.UDECIMAL, T.DECFLOAT,
            T.MONEY, T.SMALLMONEY}
FLOATS = {T.DOUBLE, T.FLOAT, T.UDOUBLE}
DATES = {T.DATE, T.DATE32}
_TIMESTAMPTZ = {T.TIMESTAMPTZ, T.TIMESTAMPLTZ}
TIMESTAMPS = {T.DATETIME, T.DATETIME64, T.TIMESTAMP, T.TIMESTAMPNTZ, T.TIMESTAMP_S, T.TIMESTAMP_MS,
               T.TIMESTAMP_NS} | _TIMESTAMPTZ
_DECLARED = {"string": "TEXT", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN", "time": "TIMESTAMP"}
_OUTPUT_SQL = {"string": "TEXT", "integer": "BIGINT", "number": "DOUBLE", "boolean": "BOOLEAN", "date": "DATE",
               "datetime": "TIMESTAMP"}


@dataclass(frozen=True)
class ValueType:
    """An output type (`type`, one of OUTPUT_TYPES) with what finer type systems need beyond it."""

    type: str
    bits: int = 64  # an integer: 32 where every value provably fits 32 bits, else 64
    exact: bool = False  # a number: a decimal whose digits are exact (money), not a double

    def sql(self) -> exp.DataType:
        """A SQL type of this kind, to type expressions over it."""
        if self.type == "integer":
            return exp.DataType.build("INT" if self.bits == 32 else "BIGINT")
        if self.type == "number" and self.exact:
            return exp.DataType.build("DECIMAL(38, 9)")
        return exp.DataType.build(_OUTPUT_SQL[self.type])


def _scale(kind: exp.DataType) -> int | None:
    """A decimal's declared scale, or None when it declares none."""
    if len(kind.expressions) != 2:
        return None
    scale = kind.expressions[1].this
    return int(scale.this) if isinstance(scale, exp.Literal) and scale.this.isdigit() else None


def _precision(kind: exp.DataType) -> int | None:
    if not kind.expressions:
        return None
    precision = kind.expressions[0].this
    return int(precision.this) if isinstance(precision, exp.Literal) and precision.this.isdigit() else None


def value_type(kind: exp.DataType | None, default: str = "number") -> ValueType:
    """A SQL type as a refined output type; `default` when unknown (a 64-bit integer, a double)."""
    found = output_type(kind, default)
    if kind is None or found not in ("integer", "number"):
        return ValueType(found)
    if found == "integer":
        precision = _precision(kind) if kind.this == T.DECIMAL else None
        return ValueType(found, 32 if kind.this in INT32 or (precision is not None and precision <= 9) else 64)
    return ValueType(found, exact=kind.this in DECIMALS)


def is_integer(kind: exp.DataType) -> bool:
    """Whole numbers only: the integer types, and decimals of scale 0."""
    if kind.this in INTEGERS:
        return True
    return kind.this == T.DECIMAL and _scale(kind) == 0


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
        if known is not None and dim.type != "string" and (
                output_type(known, "") in ("integer", "date", "datetime") or known.this in DECIMALS):
            return known  # the warehouse refines a declared number or time (INTEGER, DECIMAL, DATE, TIMESTAMPTZ)
    if dim.type == "time" and dim.storage == "date":
        return exp.DataType.build("DATE")
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


def expression_value_type(tree: exp.Expr, typed: Callable[[exp.Column], exp.DataType | None], dialect: str
                          ) -> ValueType:
    """`expression_type` refined: integers 64-bit (arithmetic may pass 32 bits), decimals exact only when no
    double enters (sqlglot calls DECIMAL + DOUBLE a decimal; warehouses make it a double) and nothing divides."""
    inputs: list[exp.DataType | None] = []

    def noting(column: exp.Column) -> exp.DataType | None:
        inputs.append(typed(column))
        return inputs[-1]

    kind = expression_type(tree, noting, dialect)
    found = value_type(kind)
    if found.type == "integer" and tree.find(exp.Div) is not None:
        return ValueType("number")  # true division
    if found.type == "integer" and not isinstance(tree, exp.Column):
        return ValueType("integer")
    if found.exact and (tree.find(exp.Div) is not None or any(k is not None and k.this in FLOATS for k in inputs)):
        return ValueType("number")
    return found


def _measure_input(model: Model, entity: Entity, tree: exp.Expr) -> ValueType:
    def typed(column: exp.Column) -> exp.DataType | None:
        if not column.table:
            return column_type(model, entity, column.name)
        owner = model.entities.get(column.table)
        return _dimension_sql_type(model, owner, column.name) if owner is not None else None

    return expression_value_type(tree, typed, model.dialect)


def metric_value_type(model: Model, metric: Metric, _trail: tuple[str, ...] = ()) -> ValueType:
    """The refined output type of a metric's values."""
    entity = model.entities[metric.entity]
    if metric.kind in ("cumulative", "offset"):
        base = entity.metrics.get(metric.base or "")
        return metric_value_type(model, base, _trail) if base is not None else ValueType("number")
    if metric.kind == "derived":
        if metric.expr is None or metric.qualified in _trail or metric.expr.find(exp.Div) is not None:
            return ValueType("number")

        def typed(column: exp.Column) -> exp.DataType | None:
            owner = model.entities.get(column.table) if column.table else entity
            found = owner.metrics.get(column.name) if owner is not None else None
            if found is None:
                return None
            return metric_value_type(model, found, (*_trail, metric.qualified)).sql()

        kind = expression_value_type(metric.expr, typed, model.dialect)
        return kind if kind.type == "integer" or (kind.type == "number" and kind.exact) else ValueType("number")
    if metric.agg in ("count", "count_distinct"):
        return ValueType("integer")  # BIGINT in every warehouse: a table may hold more than 2^31 rows
    if metric.agg in ("sum", "min", "max") and metric.expr is not None:
        found = _measure_input(model, entity, metric.expr)
        if metric.agg == "sum":
            if found.type == "integer":
                return ValueType("integer")  # a sum of 32-bit values passes 32 bits
            return found if found.type == "number" and found.exact else ValueType("number")
        return found
    return ValueType("number")


def metric_type(model: Model, metric: Metric) -> str:
    """The output type of a metric's values."""
    return metric_value_type(model, metric).type


def dimension_value_type(model: Model, owner: Entity, name: str) -> ValueType:
    """A dimension's raw values (no grain), refined: its declared type, made exact (a DECIMAL) or 32-bit (an
    INTEGER) by the warehouse's column type; a time is a `datetime`, or a `date` over a DATE."""
    dim = owner.dimensions[name]
    found = value_type(_dimension_sql_type(model, owner, name), "")
    if dim.type == "time":
        return ValueType("date" if found.type == "date" else "datetime")
    if dim.type == "integer":
        return found if found.type == "integer" else ValueType("integer")
    if dim.type == "number":
        return ValueType("number", exact=found.type == "number" and found.exact)
    return ValueType(dim.type)


def feature_value_type(model: Model, entity: Entity, feature: Feature, _trail: tuple[str, ...] = ()
                       ) -> ValueType:
    """The refined output type of a feature's values."""
    owner_name, _, name = (feature.ref or "").rpartition(".")
    if feature.kind == "dimension":
        return dimension_value_type(model, entity, feature.ref or "")
    if feature.kind == "latest":
        return dimension_value_type(model, model.entities[owner_name], name)
    if feature.kind == "metric":
        return metric_value_type(model, model.entities[owner_name].metrics[name])
    if feature.expr is None or feature.name in _trail:
        return ValueType("number")

    def typed(column: exp.Column) -> exp.DataType | None:
        other = entity.features.get(column.name)
        if other is None:
            return None
        return feature_value_type(model, entity, other, (*_trail, feature.name)).sql()

    return expression_value_type(feature.expr, typed, model.dialect)


def feature_type(model: Model, entity: Entity, feature: Feature) -> str:
    """The output type of a feature's values."""
    return feature_value_type(model, entity, feature).type


def with_column_types(model: Model, types: dict[str, dict[str, exp.DataType]]) -> Model:
    """The model with the warehouse's column types (entity -> case-folded column -> type) for the rule above."""
    return replace(model, column_types=types)
