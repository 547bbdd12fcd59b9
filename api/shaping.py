"""Typed rows in one pass: a root field's result columns shaped straight into the response.

graphql-core completes a list of objects field by field: for 1,000 rows of 5 fields that is 5,000 resolver calls,
each with its own resolve info, path and completion. The row fields here know their whole selection before any SQL
runs, so they answer with `Rows` (the result rows plus the selection) and `FastExecutor` completes it in one pass,
column by column, instead of graphql-core walking each row.

What stays graphql-core's, so both paths answer alike:

- the selection: `collect` runs graphql-core's own field collection (fragments, `@include`/`@skip` with variables,
  fields merged under one response key), and the resolvers read the same tree to build their query;
- leaf values: each column goes through its GraphQL type's `coerce_output_value`, so a scalar changed in the schema
  changes both paths; where that function is declared (`unchanged_when`) to return a column's values unchanged
  (strings for `String`, 32-bit ints for `Int`, finite floats for `Float`, bools for `Boolean`), a column that
  passes the check is taken whole, without a call per value; `converted_when` declares a whole-column equivalent
  for other kinds of values (Decimals for `Float`; in `api/scalars.py`, a column of one kind for `Decimal`);
- errors: a value its type refuses, or a null where the type forbids one, sends the whole field back to
  graphql-core's plain completion (`Rows` iterates as the plain row objects), which reports it as it always does.

A repeated request is not shaped again: completed lists are kept (`SHAPED`) by the rows object they were made of,
which the service keeps one per stored answer and reader's view, so a kept list is never stale nor another reader's.

`Rows` is an iterable of plain objects, so a schema without `FastExecutor` answers through graphql-core alone; the
property test in `tests/test_shaping.py` compares the two over generated documents.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache, partial
from itertools import starmap
from math import isfinite
from operator import is_not, itemgetter
from types import NoneType
from typing import Any

from cachetools import LRUCache
from graphql import (
    GraphQLBoolean,
    GraphQLFloat,
    GraphQLID,
    GraphQLInt,
    GraphQLLeafType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLResolveInfo,
    GraphQLString,
    Undefined,
    get_named_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetails, FragmentDetails, collect_subfields
from graphql.execution.values import VariableValues, get_argument_values
from graphql.type.scalars import GRAPHQL_MAX_INT, GRAPHQL_MIN_INT
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

TYPENAME = "__typename"


@dataclass(frozen=True, eq=False)
class Field:
    """One response key of a selection, as graphql-core collected it: `key` is the alias (or the name), `type` the
    field's GraphQL type, `arguments` coerced, `children` the selection of an object field (None for a leaf)."""

    key: str
    name: str
    type: GraphQLOutputType
    arguments: Mapping[str, Any]
    children: tuple[Field, ...] | None


def collect(info: GraphQLResolveInfo[Any]) -> tuple[Field, ...]:
    """The selection under the field being resolved, as graphql-core will complete it."""
    raw: Any = info.variable_values  # strawberry passes the coerced dict, graphql-core its VariableValues
    variables: dict[str, Any] = getattr(raw, "coerced", raw)
    context = _Collect(info, VariableValues({}, variables),
                       {name: FragmentDetails(node) for name, node in info.fragments.items()})
    object_type = get_named_type(info.return_type)
    if not isinstance(object_type, GraphQLObjectType):
        return ()
    return context.fields(object_type, [FieldDetails(node, None) for node in info.field_nodes])


@dataclass(frozen=True)
class _Collect:
    info: GraphQLResolveInfo[Any]
    variables: VariableValues
    fragments: dict[str, FragmentDetails]

    def fields(self, object_type: GraphQLObjectType, details: list[FieldDetails]) -> tuple[Field, ...]:
        grouped = collect_subfields(self.info.schema, self.fragments, self.variables, self.info.operation,
                                    object_type, details).grouped_field_set
        found = []
        for key, group in grouped.items():
            node = group[0].node
            name = node.name.value
            if name == TYPENAME:
                found.append(Field(key, name, GraphQLString, {}, None))
                continue
            definition = object_type.fields[name]  # validation saw to it that the field exists
            arguments = get_argument_values(definition, node, self.variables) if node.arguments else {}
            named = get_named_type(definition.type)
            children = self.fields(named, group) if isinstance(named, GraphQLObjectType) else None
            found.append(Field(key, name, definition.type, arguments, children))
        return tuple(found)


Path = tuple[str, ...]


def leaves(fields: tuple[Field, ...], path: Path = ()) -> Iterator[tuple[Path, Field]]:
    """The leaf fields of a selection (`__typename` too) with their response paths below the row."""
    for field in fields:
        if field.children is None:
            yield (*path, field.key), field
        else:
            yield from leaves(field.children, (*path, field.key))


class Rows:
    """A row field's answer: result rows (tuples) and the selection they answer. `column(path, field)` is the index
    of the column a leaf reads (`path` is its response path below the row); iterated, it gives graphql-core the
    plain row objects `plain(row)` makes."""

    def __init__(self, fields: tuple[Field, ...], rows: Sequence[tuple[Any, ...]],
                 column: Callable[[Path, Field], int], plain: Callable[[tuple[Any, ...]], Any],
                 kept: bool = False) -> None:
        """`kept`: the rows are the one object their source keeps for this answer (`Service.query`'s rows, one
        per stored entry and reader's view), so their completions may be kept too (`SHAPED`)."""
        self.fields, self.rows, self.column, self.plain, self.kept = fields, rows, column, plain, kept
        self._read: dict[int, list[Any]] = {}

    def __iter__(self) -> Iterator[Any]:
        return map(self.plain, self.rows)

    def shape(self, return_type: GraphQLOutputType) -> list[Any] | None:
        """The completed list, or None where graphql-core must complete it (an error to report, or a type this
        does not shape)."""
        list_type = return_type.of_type if is_non_null_type(return_type) else return_type
        if not is_list_type(list_type):
            return None
        row_type = get_named_type(list_type)
        if not is_object_type(row_type):
            return None
        if not self.kept:
            return self._objects(row_type, self.fields, ())
        selection = self._selection(self.fields, ())
        found = SHAPED.get(self.rows, return_type, selection)
        if found is None:
            found = self._objects(row_type, self.fields, ())
            if found is not None:
                SHAPED.put(self.rows, return_type, selection, found)
        return found

    def _selection(self, fields: tuple[Field, ...], path: Path) -> tuple[Any, ...]:
        """What the completion reads, as a hashable value: each field's key and name, and the column it reads (a
        leaf; -1 for `__typename`) or the selection under it. With the return type, this decides the completion
        of given rows: each leaf's type is its object type's field of that name."""
        return tuple((f.key, f.name, -1 if f.name == TYPENAME else self.column((*path, f.key), f))
                     if f.children is None else (f.key, f.name, self._selection(f.children, (*path, f.key)))
                     for f in fields)

    def _objects(self, object_type: GraphQLObjectType, fields: tuple[Field, ...], path: Path
                 ) -> list[dict[str, Any]] | None:
        """One object per row; each field's values taken whole (a column, a nested list, a constant), then made
        into the rows' dicts by one function call per row."""
        count = len(self.rows)
        if not count:
            return []
        keys: list[str] = []
        values: list[Sequence[Any]] = []
        straight: list[int] = []  # the row's columns that the fields read unchanged
        for field in fields:
            keys.append(field.key)
            if field.name == TYPENAME:
                values.append([object_type.name] * count)
            elif field.children is not None:
                nested = self._objects(get_named_type(field.type), field.children,  # type: ignore[arg-type]
                                       (*path, field.key))
                if nested is None:
                    return None
                values.append(nested)
            else:
                index = self.column((*path, field.key), field)
                column = self._column(index)
                coerced = coerce_column(field.type, column)
                if coerced is None:
                    return None
                if coerced is _UNCHANGED_COLUMN:
                    straight.append(index)
                    values.append(column)
                else:
                    values.append(coerced)
        if not keys:
            return [{} for _ in range(count)]
        if len(straight) == len(keys):  # the common case: each object straight from its row's columns
            return list(starmap(_object_maker(tuple(keys), tuple(straight), len(self.rows[0])), self.rows))
        return list(starmap(_object_maker(tuple(keys), tuple(range(len(keys))), len(keys)),
                            zip(*values, strict=True)))

    def _column(self, index: int) -> list[Any]:
        """A column of the rows, read once (in C): each check then reads a list, not every row again."""
        found = self._read.get(index)
        if found is None:
            found = self._read[index] = list(map(itemgetter(index), self.rows))
        return found


@lru_cache(maxsize=256)
def _object_maker(keys: tuple[str, ...], columns: tuple[int, ...], width: int) -> Callable[..., dict[str, Any]]:
    """A function of a row's `width` values that makes the object of `keys`, the value of each read from its column:
    a dict display, the fastest way CPython builds a dict (half the time of `dict(zip(keys, row))`). Its source is
    made here, as `collections.namedtuple` makes its methods'; keys are GraphQL names, written with `repr`."""
    names = [f"_{i}" for i in range(width)]
    display = ", ".join(f"{key!r}: {names[column]}" for key, column in zip(keys, columns, strict=True))
    maker: Callable[..., dict[str, Any]] = eval(f"lambda {', '.join(names)}: {{{display}}}", {})  # noqa: S307
    return maker


class Completions:
    """Completed lists of recent answers, so that a repeated request (a dashboard's, a poller's) is not shaped
    again; by the rows object, the return type and the selection read from the rows.

    Correct because a completion is a function of those alone and rows are immutable tuples that their source
    keeps one object per answer: `Service.query` gives one per stored entry and reader's view (their cache key
    holds the view's fingerprint) and a new one once the entry is cleared, refreshed or past its ttl, so a kept
    completion is never another reader's nor a stale one. An entry holds its rows and return type, so their
    identities cannot pass to other objects while it lives. Bounded by cells (rows x leaves); an answer past
    `max_rows` rows is not kept. The lists are shared by the responses that read them: read-only."""

    def __init__(self, max_cells: int = 500_000, max_rows: int = 10_000) -> None:
        self.max_rows = max_rows
        self._entries: LRUCache[tuple[int, int, tuple[Any, ...]], tuple[Any, Any, list[Any], int]] = LRUCache(
            maxsize=max_cells, getsizeof=itemgetter(3))
        self._lock = threading.Lock()

    def get(self, rows: Sequence[Any], return_type: GraphQLOutputType, selection: tuple[Any, ...]
            ) -> list[Any] | None:
        with self._lock:
            found = self._entries.get((id(rows), id(return_type), selection))
        return found[2] if found is not None and found[0] is rows and found[1] is return_type else None

    def put(self, rows: Sequence[Any], return_type: GraphQLOutputType, selection: tuple[Any, ...],
            completed: list[Any]) -> None:
        if len(rows) > self.max_rows:
            return
        cells = max(1, len(rows) * _leaves(selection))
        if cells <= self._entries.maxsize:
            with self._lock:
                self._entries[(id(rows), id(return_type), selection)] = (rows, return_type, completed, cells)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


def _leaves(selection: tuple[Any, ...]) -> int:
    return sum(_leaves(read) if isinstance(read, tuple) else 1 for _, _, read in selection)


SHAPED = Completions()


_UNCHANGED_COLUMN: list[Any] = []  # coerce_column's answer for a column its type returns value for value


def coerce_column(field_type: GraphQLOutputType, column: Sequence[Any]) -> list[Any] | None:
    """Column values as graphql-core completes them for `field_type`, nulls staying null: `_UNCHANGED_COLUMN` if
    they are the values themselves, None if one of them would be an error."""
    leaf: GraphQLLeafType = get_named_type(field_type)  # type: ignore[assignment]
    kinds = set(map(type, column))
    nulls = NoneType in kinds
    if nulls and is_non_null_type(field_type):
        return None
    coerce = leaf.coerce_output_value
    present = kinds - {NoneType}
    values = list(filter(partial(is_not, None), column)) if nulls else column
    unchanged = _UNCHANGED.get(coerce)
    if unchanged is not None and unchanged(present, values):
        return _UNCHANGED_COLUMN
    convert = _CONVERTED.get(coerce)
    converted = convert(present, values) if convert is not None else None
    if converted is not None:
        if not nulls:
            return converted
        each = iter(converted)
        return [None if value is None else next(each) for value in column]
    out: list[Any] = []
    try:
        for value in column:
            if value is None:
                out.append(None)
                continue
            coerced = coerce(value)
            if coerced is None or coerced is Undefined:
                return None
            out.append(coerced)
    except Exception:  # noqa: BLE001 - a scalar may raise anything; graphql-core reports it, on the plain path
        return None
    return out


ColumnCheck = Callable[[set[type], Sequence[Any]], bool]
"""(the types of a column's values, nulls left out; those values) -> whether a scalar's coercion returns every one
of them unchanged. Checks run in C (a set of types, min and max, isfinite), never a call per value."""

# By the coercion function itself, so a scalar whose function changes (in the schema or in graphql-core) is no
# longer passed whole: its values go through the new function, one by one.
_UNCHANGED: dict[Callable[[Any], Any], ColumnCheck] = {}


def unchanged_when(coerce: Callable[[Any], Any], check: ColumnCheck) -> None:
    """Declare when the scalar coercion `coerce` (a GraphQL scalar's `coerce_output_value`, i.e. its `serialize`)
    returns a whole column unchanged, so the one-pass completion passes such columns whole."""
    _UNCHANGED[coerce] = check


ColumnConversion = Callable[[set[type], Sequence[Any]], list[Any] | None]
"""(the types of a column's values, nulls left out; those values) -> what a scalar's coercion makes of each of
them, in order, computed in C; None where it cannot tell (the values then go through the coercion one by one)."""

_CONVERTED: dict[Callable[[Any], Any], ColumnConversion] = {}


def converted_when(coerce: Callable[[Any], Any], conversion: ColumnConversion) -> None:
    """Declare a whole-column equivalent of the scalar coercion `coerce` for some kinds of values."""
    _CONVERTED[coerce] = conversion


def _decimals_as_floats(kinds: set[type], values: Sequence[Any]) -> list[Any] | None:
    """graphql-core's `Float` makes a Decimal `float(value)` when that is finite (and refuses it otherwise)."""
    if kinds != {Decimal}:
        return None
    try:
        floats = list(map(float, values))
    except ValueError:  # a signalling NaN: refused, value by value
        return None
    return floats if all(map(isfinite, floats)) else None


def integers_within(low: int, high: int) -> ColumnCheck:
    """A check for an integer scalar: every value an int (not a bool) from `low` to `high`."""

    def check(kinds: set[type], values: Sequence[Any]) -> bool:
        return not kinds or (kinds == {int} and min(values) >= low and max(values) <= high)

    return check


unchanged_when(GraphQLString.coerce_output_value, lambda kinds, _: kinds <= {str})
unchanged_when(GraphQLID.coerce_output_value, lambda kinds, _: kinds <= {str})
unchanged_when(GraphQLBoolean.coerce_output_value, lambda kinds, _: kinds <= {bool})
unchanged_when(GraphQLInt.coerce_output_value, integers_within(GRAPHQL_MIN_INT, GRAPHQL_MAX_INT))
unchanged_when(GraphQLFloat.coerce_output_value,
               lambda kinds, values: kinds <= {float} and all(map(isfinite, values)))
converted_when(GraphQLFloat.coerce_output_value, _decimals_as_floats)


def plain_objects(fields: tuple[Field, ...], column: Callable[[Path, Field], int]
                  ) -> Callable[[tuple[Any, ...]], dict[str, Any]]:
    """row -> the plain row object: dicts keyed by response keys, one per object field (also when it selects
    only `__typename`), for resolvers that read `root[info.path.key]`."""

    def build(row: tuple[Any, ...], fields: tuple[Field, ...] = fields, path: Path = ()) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for field in fields:
            if field.name == TYPENAME:
                continue
            key = (*path, field.key)
            out[field.key] = row[column(key, field)] if field.children is None else build(row, field.children, key)
        return out

    return build


class FastExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with `Rows` completed in one pass (`Rows.shape`) where it can be."""

    def complete_value(self, return_type: GraphQLOutputType, field_details_list: Any,
                       info: GraphQLResolveInfo[Any], path: Any, result: Any, position_context: Any) -> Any:
        if isinstance(result, Rows):
            shaped = result.shape(return_type)
            if shaped is not None:
                return shaped
            result = list(result)
        return super().complete_value(return_type, field_details_list, info, path, result, position_context)
