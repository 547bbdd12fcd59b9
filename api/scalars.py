"""The GraphQL leaf types true to the data: `Long` (64-bit integers), `Decimal` (exact digits), `Date`, `DateTime`,
`Temporal` (a time at a grain chosen by argument), and the enums `Fill` and `Dialect`.

`scalar_of` maps the one output-type rule (`semantic.types.ValueType`) to these, so GraphQL types what the planner
and the feature builders type. Each scalar's `serialize` takes what a result row holds (ints, `Decimal` or float,
`date`, `datetime`) and is the whole conversion a response needs; input scalars check their values while the
document is validated, before anything runs.

JSON choices: a `Long` is a JSON number with every digit exact (JavaScript's `JSON.parse` rounds integers past 2^53;
read such fields with a big-integer JSON reader, or see `QueryResult.rows`); a `Decimal` is a JSON string of its
exact digits (`"4949314.81"`), as no JSON reader keeps a decimal number exact.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Sequence
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from itertools import repeat
from math import isfinite
from operator import contains
from typing import Any, NewType

import strawberry
from graphql import (
    SKIP,
    ArgumentNode,
    FloatValueNode,
    GraphQLEnumType,
    GraphQLError,
    GraphQLSchema,
    IntValueNode,
    StringValueNode,
    ValidationContext,
    ValueNode,
    ValuesOfCorrectTypeRule,
    VisitorAction,
)
from graphql.utilities.validate_input_value import validate_input_literal
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema_converter import CustomGraphQLEnumType
from strawberry.types.scalar import ScalarDefinition

from api.shaping import converted_when, integers_within, unchanged_when
from semantic.types import ValueType

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1

Long = NewType("Long", int)
Temporal = NewType("Temporal", object)


def _invalid(kind: str, value: object, hint: str) -> GraphQLError:
    shown = repr(value) if len(repr(value)) <= 80 else f"{repr(value)[:80]}..."
    return GraphQLError(f"{kind} cannot represent {shown}: {hint}")


# -- Long ------------------------------------------------------------------------------------------------------------


def serialize_long(value: Any) -> int:
    """An integer in the 64-bit range; a value past it is an error (as graphql-core's `Int` is past 32 bits)."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or value != int(value):
        raise GraphQLError(f"Long cannot represent the non-integer value {value!r}")
    number = int(value)
    if not LONG_MIN <= number <= LONG_MAX:
        raise GraphQLError(f"the value {number} is past the 64-bit range of Long; the generic `query` field's "
                           f"rows carry integers of any size", extensions={"code": "OUT_OF_RANGE"})
    return number


def parse_long(value: Any) -> int:
    """An integer, or a string of its digits (for clients whose numbers are doubles), in the 64-bit range."""
    if isinstance(value, str) and value.strip().lstrip("+-").isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid("Long", value, "give an integer, or a string of its digits")
    if not LONG_MIN <= value <= LONG_MAX:
        raise _invalid("Long", value, "past the 64-bit range")
    return value


def _literal_long(node: ValueNode, _variables: Any = None) -> int:
    if isinstance(node, IntValueNode | StringValueNode):
        return parse_long(int(node.value) if isinstance(node, IntValueNode) else node.value)
    raise _invalid("Long", getattr(node, "value", node.kind), "give an integer, or a string of its digits")


LONG = ScalarDefinition(
    name="Long",
    description="A 64-bit signed integer (counts, sums of integers, BIGINT columns), as a JSON number with every "
                "digit exact. JavaScript's JSON.parse rounds integers past 2^53 (9007199254740992): read such "
                "values with a big-integer JSON reader. As input, a string of digits is accepted too.",
    specified_by_url=None, serialize=serialize_long, parse_value=parse_long, parse_literal=_literal_long,
)
# An int within the range comes back as it is, so the one-pass completion of typed rows takes such a column whole.
unchanged_when(serialize_long, integers_within(LONG_MIN, LONG_MAX))


# -- Decimal ---------------------------------------------------------------------------------------------------------


def serialize_decimal(value: Any) -> str:
    """Exact digits as text, never in exponent form: `Decimal("4949314.81")` -> "4949314.81"."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int | float):
        raise GraphQLError(f"Decimal cannot represent {value!r}")
    number = value if isinstance(value, Decimal) else Decimal(repr(value) if isinstance(value, float) else value)
    if not number.is_finite():
        raise GraphQLError(f"Decimal cannot represent {value!r}")
    return format(number, "f")


def parse_decimal(value: Any) -> Decimal:
    """A decimal from its digits as a string, or from a JSON number."""
    if isinstance(value, bool) or not isinstance(value, str | int | float | Decimal):
        raise _invalid("Decimal", value, "give a number or a string of digits such as \"19.99\"")
    try:
        number = Decimal(repr(value) if isinstance(value, float) else value)
    except InvalidOperation:
        raise _invalid("Decimal", value, "give a number or a string of digits such as \"19.99\"") from None
    if not number.is_finite():
        raise _invalid("Decimal", value, "give a finite number")
    return number


def _literal_decimal(node: ValueNode, _variables: Any = None) -> Decimal:
    if isinstance(node, IntValueNode | FloatValueNode | StringValueNode):
        return parse_decimal(node.value)
    raise _invalid("Decimal", getattr(node, "value", node.kind), "give a number or a string of digits")


def _decimals_as_text(kinds: set[type], values: Sequence[Any]) -> list[str] | None:
    """`serialize_decimal` of a column of one kind, in C. Decimals: `str`, which writes the same digits unless it
    chooses exponent form (`1E+3`, `1.2E-7`), else `format(value, "f")` (twice the time); floats (features kept
    as floats): `repr`, whose digits `Decimal(repr(value))` keeps, unless in exponent form (`1e-05`); ints: `str`.
    None (value by value) for mixed kinds, or where a value is not finite or a float is in exponent form."""
    if kinds == {Decimal}:
        if not all(map(Decimal.is_finite, values)):
            return None
        texts = list(map(str, values))
        return list(map(format, values, repeat("f"))) if any(map(contains, texts, repeat("E"))) else texts
    if kinds == {float}:
        texts = list(map(repr, values))
        return None if not all(map(isfinite, values)) or any(map(contains, texts, repeat("e"))) else texts
    return list(map(str, values)) if kinds == {int} else None


converted_when(serialize_decimal, _decimals_as_text)

DECIMAL = ScalarDefinition(
    name="Decimal",
    description="An exact decimal number (money, DECIMAL/NUMERIC columns and their sums), as a JSON string of its "
                "digits (\"4949314.81\"), since a JSON number read as a double loses digits. As input, a number "
                "or a string of digits.",
    specified_by_url=None, serialize=serialize_decimal, parse_value=parse_decimal, parse_literal=_literal_decimal,
)


# -- Date, DateTime, Temporal ----------------------------------------------------------------------------------------


def serialize_date(value: Any) -> str:
    """A calendar day, ISO 8601 (`2024-03-01`); a date-time gives its day."""
    if isinstance(value, datetime):
        return value.date().isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise GraphQLError(f"Date cannot represent {value!r}")


def parse_date(value: Any) -> date:
    if not isinstance(value, str):
        raise _invalid("Date", value, "give an ISO 8601 date such as \"2024-03-01\"")
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        raise _invalid("Date", value, "give an ISO 8601 date such as \"2024-03-01\"") from None


def serialize_datetime(value: Any) -> str:
    """ISO 8601 (`2024-03-01T12:30:00`); a date as its day."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, str):
        return value
    raise GraphQLError(f"DateTime cannot represent {value!r}")


def parse_datetime(value: Any) -> datetime:
    """ISO 8601 as `datetime.fromisoformat` reads it, the reading the filter language uses too; a date is its
    midnight."""
    if not isinstance(value, str):
        raise _invalid("DateTime", value, "give an ISO 8601 date-time such as \"2024-03-01T12:00:00\"")
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise _invalid("DateTime", value, "give an ISO 8601 date-time such as \"2024-03-01T12:00:00\" or "
                                          "\"2024-03-01T12:00:00+01:00\"") from None


def _literal_string(parse: Any, kind: str) -> Any:
    def literal(node: ValueNode, _variables: Any = None) -> Any:
        if isinstance(node, StringValueNode):
            return parse(node.value)
        raise _invalid(kind, getattr(node, "value", node.kind), "give an ISO 8601 string")

    return literal


DATE = ScalarDefinition(
    name="Date", description="A calendar day, ISO 8601: 2024-03-01.", specified_by_url=None,
    serialize=serialize_date, parse_value=parse_date, parse_literal=_literal_string(parse_date, "Date"),
)
DATETIME = ScalarDefinition(
    name="DateTime",
    description="A date-time, ISO 8601: 2024-03-01T12:30:00, with an offset (+01:00, Z) or without one (read as "
                "UTC for `at`, in the query's time zone in filters); a date alone means its midnight.",
    specified_by_url=None, serialize=serialize_datetime, parse_value=parse_datetime,
    parse_literal=_literal_string(parse_datetime, "DateTime"),
)
TEMPORAL = ScalarDefinition(
    name="Temporal",
    description="A time at the grain its field was asked for, ISO 8601: a date (2024-03-01) for day and coarser "
                "grains, a date-time (2024-03-01T13:00:00) for finer ones.",
    specified_by_url=None, serialize=lambda v: v.isoformat() if isinstance(v, date | datetime) else v,
    parse_value=lambda v: v, parse_literal=None,
)

SCALARS: dict[object, ScalarDefinition] = {Long: LONG, Decimal: DECIMAL, date: DATE, datetime: DATETIME,
                                           Temporal: TEMPORAL}


def scalar_of(kind: ValueType) -> Any:
    """The GraphQL type of values of `kind`: Int only where every value provably fits 32 bits."""
    if kind.type == "integer":
        return int if kind.bits == 32 else Long
    if kind.type == "number":
        return Decimal if kind.exact else float
    return {"string": str, "boolean": bool, "date": date, "datetime": datetime}[kind.type]


# -- enums -----------------------------------------------------------------------------------------------------------


@strawberry.enum(description="Which periods a result covers when some have no data.")
class Fill(enum.Enum):
    ZERO = strawberry.enum_value("zero", description="Every period of the range; counts and sums 0 where a period "
                                                     "has no data.")
    NULL = strawberry.enum_value("null", description="Every period of the range; metrics null where a period has "
                                                     "no data.")


@strawberry.enum(description="A SQL dialect `compile` can write.")
class Dialect(enum.Enum):
    DUCKDB = strawberry.enum_value("duckdb", description="DuckDB.")
    POSTGRES = strawberry.enum_value("postgres", description="PostgreSQL.")
    SNOWFLAKE = strawberry.enum_value("snowflake", description="Snowflake.")
    BIGQUERY = strawberry.enum_value("bigquery", description="Google BigQuery.")
    TRINO = strawberry.enum_value("trino", description="Trino (and Presto).")
    SPARK = strawberry.enum_value("spark", description="Spark SQL (Databricks too).")


class _Spelled(CustomGraphQLEnumType):
    """An enum that also reads the string spellings it replaced (`fill: "zero"`, `dialect: "postgres"`), as a
    literal or a variable's value, by its values' names in any case; an unknown one is BAD_QUERY with the
    choices."""

    def _by_text(self, text: str) -> Any:
        for name, value in self.values.items():
            if text.casefold() in (name.casefold(), str(getattr(value.value, "value", value.value)).casefold()):
                return self.wrapped_cls(getattr(value.value, "value", value.value))
        choices = ", ".join(str(getattr(v.value, "value", v.value)) for v in self.values.values())
        raise GraphQLError(f"unknown {self.name.lower()} {text[:40]!r}; use one of {choices}",
                           extensions={"code": "BAD_QUERY"})

    def coerce_input_literal(self, value_node: Any, hide_suggestions: bool = False) -> Any:
        if isinstance(value_node, StringValueNode):
            return self._by_text(value_node.value)
        return super().coerce_input_literal(value_node, hide_suggestions)

    def coerce_input_value(self, input_value: Any, hide_suggestions: bool = False) -> Any:
        if isinstance(input_value, str) and input_value not in self.values:
            return self._by_text(input_value)
        return super().coerce_input_value(input_value, hide_suggestions)


def accept_old_spellings(schema: GraphQLSchema, names: tuple[str, ...] = ("Fill", "Dialect")) -> None:
    """Let the enums `names` of a built schema read their former string spellings too (see `_Spelled`)."""
    for name in names:
        found = schema.type_map.get(name)
        if isinstance(found, CustomGraphQLEnumType) and isinstance(found, GraphQLEnumType):
            found.__class__ = _Spelled  # the same object: every argument already points at it


# -- where a bad value is --------------------------------------------------------------------------------------------


class NamedValuesRule(ValuesOfCorrectTypeRule):
    """graphql-core's check of literal values, its messages naming where the value is (`where.orderedAt.gte: ...`),
    as graphql-core already does for variables."""

    def __init__(self, context: ValidationContext) -> None:
        super().__init__(context)
        self.argument: str | None = None

    def enter_argument(self, node: ArgumentNode, *_args: Any) -> None:
        self.argument = node.name.value

    def leave_argument(self, node: ArgumentNode, *_args: Any) -> None:
        self.argument = None

    def is_valid_value_node(self, node: ValueNode, input_type: Any) -> VisitorAction:
        if input_type:
            def on_error(error: GraphQLError, path: list[str | int]) -> None:
                where = ".".join(str(p) for p in ([self.argument] if self.argument else []) + path)
                self.report_error(GraphQLError(f"{where}: {error.message}" if where else error.message, error.nodes,
                                               original_error=error.original_error, extensions=error.extensions))

            validate_input_literal(node, input_type, on_error, None, None, self.context.hide_suggestions)
        return SKIP


class NameValues(SchemaExtension):
    """Validation with `NamedValuesRule` in place of graphql-core's own (listed before the validation cache)."""

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = tuple(NamedValuesRule if rule is ValuesOfCorrectTypeRule else rule
                                         for rule in context.validation_rules)
        yield
