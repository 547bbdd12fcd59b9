"""Row fields completed in one pass (`api.shaping`) answer exactly as graphql-core's own completion does.

A property test generates documents against the example model (dimensions, metrics, nested relationships,
aliases, grains, named and inline fragments, `@include`/`@skip` with literals and variables, `__typename`, limit,
orderBy; many of them refused) and compares the whole response of the fast schema with the plain one: data,
errors and the truncation flag. The selection is graphql-core's, so a skipped field is not a group-by: checked
against hand-written SQL.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NewType

import pytest
import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLField,
    GraphQLObjectType,
    GraphQLScalarType,
    get_named_type,
    is_leaf_type,
    is_object_type,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from strawberry.schema.config import StrawberryConfig

from api.schema import build_schema
from api.shaping import (
    _UNCHANGED_COLUMN,
    SHAPED,
    Completions,
    FastExecutor,
    Field,
    Rows,
    coerce_column,
    collect,
    integers_within,
    unchanged_when,
)
from semantic.access import ANONYMOUS
from semantic.execute import SqlWarehouse
from semantic.model import Model
from semantic.online import OnlineStore
from semantic.service import Service


@pytest.fixture(scope="module")
def service(model: Model, duckdb_path: Path) -> Iterator[Service]:
    # No roll-ups: both schemas then read the one cached answer of each query, rows in the same order.
    service = Service(model, SqlWarehouse(f"duckdb:///{duckdb_path}"), rollups=False)
    yield service
    if service.warehouse is not None:
        service.warehouse.close()


@pytest.fixture(scope="module")
def schemas(model: Model) -> tuple[strawberry.Schema, strawberry.Schema]:
    return build_schema(model), build_schema(model, fast=False)


def _response(schema: strawberry.Schema, service: Service, document: str, variables: dict[str, Any]
              ) -> dict[str, Any]:
    context = {"service": service, "online": OnlineStore(service), "access": ANONYMOUS, "max_rows": 40}
    result = asyncio.run(schema.execute(document, variable_values=variables, context_value=context))
    extensions = {k: v for k, v in (result.extensions or {}).items() if k != "cache"}  # hit or miss differ
    return {"data": result.data, "errors": [e.formatted for e in result.errors or []], "extensions": extensions}


def _same(service: Service, schemas: tuple[strawberry.Schema, strawberry.Schema], document: str,
          variables: dict[str, Any]) -> dict[str, Any]:
    fast, plain = (_response(s, service, document, variables) for s in schemas)
    # As JSON text: key order and float spelling count too.
    assert json.dumps(fast) == json.dumps(plain), document
    again = _response(schemas[0], service, document, variables)  # now from the kept completions, where they hold it
    assert json.dumps(again) == json.dumps(plain), document
    return fast


# -- documents ---------------------------------------------------------------------------------------------------

DIRECTIVES = ("", "", "", "", "@skip(if: true)", "@skip(if: false)", "@include(if: false)", "@include(if: true)",
              "@include(if: $on)", "@skip(if: $on)")


class _Document:
    """One generated operation: its fragments and the variables it uses."""

    def __init__(self, draw: Any, schema: Any) -> None:
        self.draw, self.schema = draw, schema
        self.fragments: list[str] = []
        self.variables: dict[str, tuple[str, Any]] = {}  # name -> (GraphQL type, value)

    def directive(self) -> str:
        text: str = self.draw(st.sampled_from(DIRECTIVES))
        if "$on" in text:
            self.variables["on"] = ("Boolean!", self.draw(st.booleans()))
        return text

    def selection(self, object_type: GraphQLObjectType, depth: int) -> str:
        names = [n for n, f in object_type.fields.items() if depth < 2 or not is_object_type(get_named_type(f.type))]
        chosen = self.draw(st.lists(st.sampled_from([*names, "__typename"]), min_size=1, max_size=5))
        parts = []
        for name in chosen:
            part = self.field(object_type, name, depth)
            wrap = self.draw(st.sampled_from(("field", "field", "field", "inline", "bare inline", "named")))
            if wrap == "inline":
                part = f"... on {object_type.name} {self.directive()} {{ {part} }}"
            elif wrap == "bare inline":
                part = f"... {self.directive()} {{ {part} }}"
            elif wrap == "named":
                fragment = f"F{len(self.fragments)}"
                self.fragments.append(f"fragment {fragment} on {object_type.name} {{ {part} }}")
                part = f"...{fragment} {self.directive()}"
            parts.append(part)
        return " ".join(parts)

    def field(self, object_type: GraphQLObjectType, name: str, depth: int) -> str:
        alias = self.draw(st.sampled_from(("", "", "", "a: ", "b: ", f"{name.strip('_')}2: ")))
        if name == "__typename":
            return f"{alias}__typename {self.directive()}"
        field: GraphQLField = object_type.fields[name]
        arguments = ""
        if "grain" in field.args:
            grain_type = get_named_type(field.args["grain"].type)
            assert isinstance(grain_type, GraphQLEnumType)
            grain = self.draw(st.sampled_from((None, "$grain", *grain_type.values)))
            if grain == "$grain":
                self.variables["grain"] = (grain_type.name, self.draw(st.sampled_from(list(grain_type.values))))
            if grain is not None:
                arguments = f"(grain: {grain})"
        target = get_named_type(field.type)
        nested = f"{{ {self.selection(target, depth + 1)} }}" if isinstance(target, GraphQLObjectType) else ""
        return f"{alias}{name}{arguments} {self.directive()} {nested}"

    def root(self) -> str:
        query = self.schema.query_type
        rows = [n for n, f in query.fields.items()
                if n not in ("query", "compile", "features", "catalog") and is_object_type(get_named_type(f.type))]
        name = self.draw(st.sampled_from(rows))
        row_type = get_named_type(query.fields[name].type)
        selection = self.selection(row_type, 0)
        arguments = []
        field = query.fields[name]
        if "keys" in field.args:
            arguments.append(f"keys: {self.draw(st.sampled_from(('[1, 2, 3]', '[5, 5, 99999]', '[]')))}")
        else:
            limit = self.draw(st.sampled_from((None, 0, 1, 3, 12, -1, "$limit")))
            if limit == "$limit":
                self.variables["limit"] = ("Int", self.draw(st.sampled_from((None, 2, 7, 60))))
            if limit is not None:
                arguments.append(f"limit: {limit}")
            if self.draw(st.booleans()):
                order_type = get_named_type(field.args["orderBy"].type)
                leaves = [n for n, f in order_type.fields.items()
                          if is_leaf_type(get_named_type(f.type))]
                # A selected name mostly, so the order is total enough to compare; any name sometimes (refused).
                picked = [n for n in leaves if n in selection] or leaves
                key = self.draw(st.sampled_from(picked if self.draw(st.integers(0, 4)) else leaves))
                arguments.append(f"orderBy: [{{{key}: {self.draw(st.sampled_from(('ASC', 'DESC')))}}}]")
        alias = self.draw(st.sampled_from(("", "", "rows: ")))
        declared = ", ".join(f"${n}: {t}" for n, (t, _) in self.variables.items())
        header = f"query Q({declared})" if declared else "query Q"
        args = f"({', '.join(arguments)})" if arguments else ""
        return " ".join([f"{header} {{ {alias}{name}{args} {{ {selection} }} }}", *self.fragments])


@st.composite
def documents(draw: Any, schema: Any) -> tuple[str, dict[str, Any]]:
    document = _Document(draw, schema)
    text = document.root()
    return text, {n: v for n, (_, v) in document.variables.items()}


def test_generated_documents_answer_alike(service: Service,
                                          schemas: tuple[strawberry.Schema, strawberry.Schema]) -> None:
    seen = {"data": 0, "errors": 0, "rows": 0}

    @settings(max_examples=400, deadline=None, derandomize=True, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(documents(schemas[0]._schema))
    def check(case: tuple[str, dict[str, Any]]) -> None:
        response = _same(service, schemas, *case)
        seen["errors" if response["errors"] else "data"] += 1
        seen["rows"] += sum(len(v or ()) for v in (response["data"] or {}).values())

    check()
    # The corpus answers and refuses both, with rows to compare.
    assert seen["data"] >= 100 and seen["errors"] >= 50 and seen["rows"] >= 1000, seen


@pytest.mark.parametrize("document", [
    "{ order(limit: 5, orderBy: [{orderId: ASC}]) { orderId status revenue customer { region __typename } "
    "__typename } }",
    "{ order(orderBy: [{status: ASC}]) { status m: orderedAt(grain: MONTH) y: orderedAt(grain: YEAR) revenue } }",
    "query { order(orderBy: [{status: ASC}]) { ... on Order { status } ...F } } fragment F on Order { buyers }",
    "{ order(limit: 3) { status customer { __typename } } }",
    "{ customerFeatures(keys: [1, 2, 3, 1]) { customerId a: lifetimeRevenue lifetimeRevenue region __typename } }",
    "{ a: order(limit: 2, orderBy: [{orderId: ASC}]) { orderId } b: order(limit: 2, orderBy: [{orderId: DESC}]) "
    "{ orderId } }",
    "{ order(limit: -3) { status } }",
    "{ order { revenueRolling7d } }",
])
def test_chosen_documents_answer_alike(service: Service, schemas: tuple[strawberry.Schema, strawberry.Schema],
                                       document: str) -> None:
    _same(service, schemas, document, {})


# -- values the plain path reports as errors ---------------------------------------------------------------------

@strawberry.type
class Item:
    count: int | None
    name: str
    share: float | None


PLAIN: list[tuple[Any, ...]] = []  # the rows made into plain objects, for graphql-core to complete


def _plain(row: tuple[Any, ...]) -> Item:
    PLAIN.append(row)
    return Item(count=row[0], name=row[1], share=row[2])


def _items(info: strawberry.Info) -> Any:
    rows = [(1, "a", 0.5), (2 ** 40, "b", 1.0), (3, None, float("inf")), (None, "d", None)]
    index = {"count": 0, "name": 1, "share": 2}

    def column(_: tuple[str, ...], field: Field) -> int:
        return index[field.name]

    return Rows(collect(info._raw_info), rows, column, _plain)


@strawberry.type
class _Query:
    items: list[Item] = strawberry.field(resolver=_items)


@pytest.mark.parametrize("document, fast_path", [
    ("{ items { count } }", False),  # 2 ** 40 is no 32-bit Int
    ("{ items { name } }", False),  # a null for String!: the row, then the list, then the field are null
    ("{ items { share } }", False),  # inf is no Float
    ("{ items { c: count @skip(if: true) __typename } }", True),
    ("{ items { name @skip(if: true) count @include(if: false) } }", True),
])
def test_values_graphql_refuses_give_its_errors(document: str, fast_path: bool) -> None:
    answers, made = [], []
    for schema in (strawberry.Schema(query=_Query, execution_context_class=FastExecutor),
                   strawberry.Schema(query=_Query)):
        PLAIN.clear()
        result = schema.execute_sync(document)
        answers.append(json.dumps({"data": result.data, "errors": [e.formatted for e in result.errors or []]}))
        made.append(len(PLAIN))
    assert answers[0] == answers[1]
    assert ("errors\": []" in answers[0]) == fast_path, answers[0]
    # The plain schema always makes the 4 plain objects; the fast one only to report an error.
    assert made == [0 if fast_path else 4, 4]


def test_the_fast_path_makes_no_plain_objects() -> None:
    PLAIN.clear()
    result = strawberry.Schema(query=_Query, execution_context_class=FastExecutor).execute_sync(
        "{ items { c: count @skip(if: true) __typename } }")
    assert result.data == {"items": [{"__typename": "Item"}] * 4} and PLAIN == []


CALLS: list[Any] = []


def _serialize_count(value: Any) -> int:
    CALLS.append(value)
    if not isinstance(value, int) or value < 0:
        raise ValueError(f"not a count: {value!r}")
    return value


Count = NewType("Count", int)
COUNTS = StrawberryConfig(scalar_map={Count: strawberry.scalar(name="Count", serialize=_serialize_count,
                                                                parse_value=int)})


@strawberry.type
class Tally:
    n: Count | None


def _tallies(info: strawberry.Info) -> Any:
    rows = [(v,) for v in info.context["values"]]
    return Rows(collect(info._raw_info), rows, lambda _, field: 0, lambda row: Tally(n=row[0]))


@strawberry.type
class _Tallies:
    tallies: list[Tally] = strawberry.field(resolver=_tallies)


def test_a_scalar_declared_unchanged_is_taken_whole() -> None:
    fast = strawberry.Schema(query=_Tallies, execution_context_class=FastExecutor, config=COUNTS)
    plain = strawberry.Schema(query=_Tallies, config=COUNTS)

    def answers(values: list[Any]) -> list[str]:
        found = []
        for schema in (fast, plain):
            result = schema.execute_sync("{ tallies { n } }", context_value={"values": values})
            found.append(json.dumps({"data": result.data, "errors": [e.formatted for e in result.errors or []]}))
        return found

    CALLS.clear()
    good, bad = [3, None, 5], [3, -1, 5]
    assert len(set(answers(good))) == 1 and len(CALLS) == 4  # not declared: a call per value on both paths
    unchanged_when(_serialize_count, integers_within(0, 2 ** 63 - 1))
    CALLS.clear()
    assert len(set(answers(good))) == 1 and len(CALLS) == 2  # declared: the plain path's calls only
    CALLS.clear()
    first, second = answers(bad)
    assert first == second and "not a count" in first  # outside the check: the scalar's own error, as before


EDGES = (0, 2 ** 31 - 1, 2 ** 31, -(2 ** 31), -(2 ** 31) - 1, 2 ** 53 + 1, 2 ** 63 - 1, 2 ** 63, -(2 ** 63),
         -(2 ** 63) - 1)
KINDS = (st.booleans(), st.integers(-(2 ** 70), 2 ** 70) | st.sampled_from(EDGES), st.floats(), st.text(max_size=3),
         st.decimals(places=2, allow_nan=False, allow_infinity=False), st.decimals())  # the last: 1E+3, NaN too


@settings(max_examples=500, deadline=None, database=None)
@given(st.data())
def test_a_column_coerces_as_its_values_do(schemas: tuple[strawberry.Schema, strawberry.Schema], data: Any) -> None:
    """Any column of any leaf type of the schema: taken whole, coerced, or refused, exactly as value by value."""
    leaves = sorted(n for n, t in schemas[0]._schema.type_map.items() if is_leaf_type(t) and not n.startswith("__"))
    leaf = schemas[0]._schema.type_map[data.draw(st.sampled_from(leaves))]
    assert isinstance(leaf, GraphQLScalarType | GraphQLEnumType)
    # Mostly one kind of value per column, as a result column has; sometimes mixed.
    kind = data.draw(st.sampled_from((*KINDS, st.one_of(*KINDS))))
    column = data.draw(st.lists(st.none() | kind, max_size=6))
    try:
        expected: list[Any] | None = [None if v is None else leaf.coerce_output_value(v) for v in column]
    except Exception:  # noqa: BLE001 - whatever the scalar raises, graphql-core reports
        expected = None
    if expected is not None and any(v is not None and e is None for v, e in zip(column, expected, strict=True)):
        expected = None
    found = coerce_column(leaf, column)
    assert (list(column) if found is _UNCHANGED_COLUMN else found) == expected


# -- skipped fields do not group ---------------------------------------------------------------------------------

def _hand(service: Service, sql: str) -> list[tuple[Any, ...]]:
    """A hand-written query straight on the warehouse: the answer the layer must agree with."""
    return sorted(service.warehouse.run(sql).rows)  # type: ignore[union-attr]


@pytest.mark.parametrize("document, variables", [
    ("{ order { status channel @skip(if: true) orderCount } }", {}),
    ("query($on: Boolean!) { order { status channel @include(if: $on) orderCount } }", {"on": False}),
    ("query($on: Boolean!) { order { status ... @skip(if: $on) { channel } orderCount } }", {"on": True}),
    ("{ order { status ...C @include(if: false) orderCount } } fragment C on Order { channel }", {}),
    ("{ order { status customer @skip(if: true) { region } orderCount } }", {}),
])
def test_skipped_fields_do_not_group(service: Service, schemas: tuple[strawberry.Schema, strawberry.Schema],
                                     document: str, variables: dict[str, Any]) -> None:
    response = _same(service, schemas, document, variables)
    assert not response["errors"]
    rows = sorted((r["status"], r["orderCount"]) for r in response["data"]["order"])
    assert all(set(r) == {"status", "orderCount"} for r in response["data"]["order"])
    assert rows == _hand(service, "SELECT status, count(*) FROM orders GROUP BY status")


def test_included_fields_group(service: Service, schemas: tuple[strawberry.Schema, strawberry.Schema]) -> None:
    response = _same(service, schemas, "query($on: Boolean!) { order { status channel @include(if: $on) "
                                        "orderCount } }", {"on": True})
    rows = sorted((r["status"], r["channel"], r["orderCount"]) for r in response["data"]["order"])
    assert rows == _hand(service, "SELECT status, channel, count(*) FROM orders GROUP BY status, channel")


def test_a_cache_hit_is_answered_on_the_event_loop(service: Service, schemas: tuple[strawberry.Schema, ...],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Typed and generic fields answer a hit from memory without a worker thread, whose hand-off costs more than
    the answer on a busy machine; the same response as through the thread."""
    import anyio.to_thread

    documents = ["{ order(limit: 5) { orderId revenue customer { region } } }",
                 '{ query(metrics: ["order.revenue"], dimensions: ["order.status"]) { rows } }']
    first = [_response(schemas[0], service, d, {}) for d in documents]

    def no_thread(*_: Any, **__: Any) -> Any:
        raise AssertionError("a worker thread for a cache hit")

    monkeypatch.setattr(anyio.to_thread, "run_sync", no_thread)
    assert [_response(schemas[0], service, d, {}) for d in documents] == first
    assert not any(r["errors"] for r in first)


def _data(schema: strawberry.Schema, service: Service, document: str, access: Any = ANONYMOUS) -> Any:
    context = {"service": service, "online": OnlineStore(service), "access": access, "max_rows": 10_000}
    result = asyncio.run(schema.execute(document, context_value=context))
    assert not result.errors, result.errors
    return result.data


def test_a_repeated_request_reads_its_kept_completion_until_the_rows_change(
        service: Service, schemas: tuple[strawberry.Schema, strawberry.Schema]) -> None:
    """The completed list is kept beside the rows it was made of: the same list for the same rows and selection,
    a new one once the cache is cleared (new rows), another for another selection of the same rows."""
    document = "{ order(limit: 50) { orderId revenue customer { region __typename } } }"
    first = _data(schemas[0], service, document)["order"]
    assert _data(schemas[0], service, document)["order"] is first
    aliased = _data(schemas[0], service, document.replace("revenue", "r: revenue"))["order"]
    assert [row["r"] for row in aliased] == [row["revenue"] for row in first]
    service.clear_cache()
    fresh = _data(schemas[0], service, document)["order"]
    assert fresh is not first and fresh == first
    assert _data(schemas[1], service, document)["order"] == first  # the plain path agrees


def test_a_kept_completion_is_never_another_readers(model_path_policied: Path, duckdb_path: Path) -> None:
    from semantic.access import Access
    from semantic.loader import load

    service = Service(load(model_path_policied), SqlWarehouse(f"duckdb:///{duckdb_path}"))
    schema = build_schema(service.model)
    document = "{ order { customer { region } orderCount } }"
    try:
        answers = {region: _data(schema, service, document,
                                 Access.from_claims({"sub": region, "roles": ["analyst"], "region": region}))
                   for region in ("EU", "NA", "EU ")}
    finally:
        service.warehouse.close()  # type: ignore[union-attr]
    assert {r["customer"]["region"] for r in answers["EU"]["order"]} == {"EU"}
    assert {r["customer"]["region"] for r in answers["NA"]["order"]} == {"NA"}
    assert answers["EU "]["order"] == []  # a reader of no region's rows: its own, empty answer


@pytest.fixture
def model_path_policied(tmp_path: Path) -> Path:
    from tests.tenants import policied_model

    return policied_model(tmp_path)


def test_kept_completions_are_bounded_by_cells_and_rows() -> None:
    kept = Completions(max_cells=10, max_rows=3)
    kind = GraphQLObjectType("T", {})
    selection = (("a", "a", 0), ("b", "b", (("c", "c", 1),)))  # two leaves
    rows = [((1, 2),) * n for n in range(1, 6)]
    for each in rows:
        kept.put(each, kind, selection, [{}] * len(each))
    # 2, 4 and 6 cells: the first goes once past 10; answers of more than 3 rows are not kept
    assert [kept.get(each, kind, selection) is not None for each in rows] == [False, True, True, False, False]
    kept.get(rows[1], kind, selection)
    kept.put(rows[0], kind, selection, [{}])  # the least recently used goes: the third
    assert [kept.get(each, kind, selection) is not None for each in rows[:3]] == [True, True, False]
    assert kept.get(rows[1], GraphQLObjectType("T", {}), selection) is None  # another schema's type
    assert kept.get(tuple([*rows[1]]), kind, selection) is None  # equal rows, another object
    assert kept.get(rows[1], kind, (("a", "a", 1), ("b", "b", (("c", "c", 1),)))) is None  # another column
    assert SHAPED.max_rows >= 1000


def test_answers_of_a_service_without_a_cache_are_not_kept(model: Model, duckdb_path: Path,
                                                           schemas: tuple[strawberry.Schema, ...]) -> None:
    """Without a result cache each answer has new rows: keeping their completions would only hold memory."""
    from semantic.cache import ResultCache

    uncached = Service(model, SqlWarehouse(f"duckdb:///{duckdb_path}"), ResultCache(enabled=False))
    SHAPED.clear()
    try:
        document = "{ order(limit: 5) { orderId revenue } }"
        first, second = (_data(schemas[0], uncached, document)["order"] for _ in range(2))
    finally:
        uncached.warehouse.close()  # type: ignore[union-attr]
    assert first == second and first is not second and not SHAPED._entries
