"""Requests that cannot be answered correctly are refused before any SQL reaches the warehouse."""

from __future__ import annotations

from pathlib import Path

import pytest

from semantic.errors import AmbiguousPathError, FanoutError, QueryError, UnknownFieldError
from semantic.features.build import build_features
from semantic.features.request import FeatureRequest
from semantic.loader import load
from semantic.model import Model
from semantic.plan.planner import plan
from semantic.query import Filter, Order, SemanticQuery

ROOT = Path(__file__).resolve().parents[1]

TWO_PATHS = """
version: 1
name: flights
entities:
  - name: airport
    table: airports
    key: code
    dimensions: [{name: city}]
  - name: flight
    table: flights
    key: flight_id
    relationships:
      - {entity: airport, key: origin}
      - {entity: route, key: route_id}
    dimensions: [{name: departed_at, type: time, grain: day}]
    metrics: [{name: flights, agg: count}]
  - name: route
    table: routes
    key: route_id
    relationships: [{entity: airport, key: destination}]
"""


@pytest.fixture(scope="module")
def shop() -> Model:
    return load(ROOT / "examples" / "shop")


@pytest.fixture(scope="module")
def flights(tmp_path_factory: pytest.TempPathFactory) -> Model:
    path = tmp_path_factory.mktemp("model") / "flights.yaml"
    path.write_text(TWO_PATHS)
    return load(path)


def q(metrics: tuple[str, ...] = (), dimensions: tuple[str, ...] = (), where: str | None = None,
      **kwargs: object) -> SemanticQuery:
    return SemanticQuery(metrics, dimensions, Filter.parse(where) if where else None, **kwargs)  # type: ignore[arg-type]


def test_fanout_names_the_path_and_the_alternative(shop: Model) -> None:
    with pytest.raises(FanoutError, match="order -> customer is many-to-one") as error:
        plan(shop, q(("customer.customer_count",), ("order.status",)))
    assert "instead" in error.value.message


def test_filter_on_an_unrelated_entity_is_refused(shop: Model) -> None:
    with pytest.raises(QueryError, match="not related to page_view"):
        plan(shop, q(("page_view.views",), ("customer.region",), "order.status = 'completed'"))


def test_two_paths_to_one_entity_are_ambiguous(flights: Model) -> None:
    with pytest.raises(AmbiguousPathError, match="flight -> airport; flight -> route -> airport"):
        plan(flights, q(("flight.flights",), ("airport.city",)))


def test_grain_finer_than_the_data_is_refused(flights: Model) -> None:
    with pytest.raises(QueryError, match="finer than the data"):
        plan(flights, q(("flight.flights",), ("flight.departed_at:hour",)))
    assert plan(flights, q(("flight.flights",), ("flight.departed_at:month",)))


@pytest.mark.parametrize(("where", "words"), [
    ("order.ordered_at >= 'not-a-date'", "not a date"),
    ("order.amount > '10'", "is a number"),
    ("order.is_large = 'yes'", "boolean"),
    ("order.status = 3", "quote the value"),
    ("order.amount like '1%'", "LIKE needs a string"),
    ("order.revenue > 'a lot'", "compare them with a number"),
    ("order.revenue > 10 or order.status = 'x'", "mixes metrics and dimensions"),
])
def test_literals_are_checked_against_types(shop: Model, where: str, words: str) -> None:
    with pytest.raises(QueryError, match=words):
        plan(shop, q(("order.revenue",), ("order.status",), where))


@pytest.mark.parametrize(("query", "error", "words"), [
    (dict(metrics=("order.revnue",)), UnknownFieldError, "Did you mean 'order.revenue'"),
    (dict(metrics=("revenue",)), QueryError, "order.revenue"),
    (dict(metrics=("order.status",)), UnknownFieldError, "is a dimension"),
    (dict(metrics=("order.revenue",), dimensions=("customer.regoin",)), UnknownFieldError, "customer.region"),
    (dict(metrics=("ordr.revenue",)), UnknownFieldError, "'order'"),
    (dict(metrics=("order.revenue",), dimensions=("customer.region:month",)), QueryError, "not a time"),
    (dict(dimensions=("time:month",)), QueryError, "needs at least one metric"),
    (dict(metrics=("order.revenue",), dimensions=("time",)), QueryError, "needs a grain"),
])
def test_unknown_and_misused_names(shop: Model, query: dict[str, tuple[str, ...]], error: type[Exception],
                                   words: str) -> None:
    with pytest.raises(error, match=words):
        plan(shop, SemanticQuery(**query))  # type: ignore[arg-type]


def test_order_limit_and_offset_are_checked(shop: Model) -> None:
    with pytest.raises(QueryError, match="not selected"):
        plan(shop, q(("order.revenue",), ("customer.region",), order_by=(Order.parse("order.order_count"),)))
    for bad in ({"limit": -1}, {"offset": -5}, {"limit": True}):
        with pytest.raises(QueryError, match="whole number"):
            SemanticQuery(("order.revenue",), **bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("where", [
    "order.status in (select status from orders)",
    "read_csv('/etc/passwd') is not null",
    "order.status = 'a'; drop table orders",
    "cast(order.amount as int) > 1",
    "status = 'x'",
])
def test_filters_outside_the_language_are_refused(shop: Model, where: str) -> None:
    with pytest.raises(QueryError):
        plan(shop, q(("order.revenue",), (), where))


def test_a_feature_request_without_a_time_is_not_compiled(shop: Model) -> None:
    """`at` None asks for the latest values, which a snapshot answers; the SQL needs a time to be as of."""
    request = FeatureRequest.create(shop, "customer", [1], None, None)
    with pytest.raises(QueryError, match="needs a time `at`"):
        build_features(shop, request)


def test_query_identity_ignores_item_order() -> None:
    a = SemanticQuery(("order.revenue", "order.order_count"), ("customer.region", "order.status"))
    b = SemanticQuery(("order.order_count", "order.revenue"), ("order.status", "customer.region"))
    assert a == b and hash(a) == hash(b) and a.canonical() == b.canonical()
    assert a != SemanticQuery(("order.revenue",), ("customer.region", "order.status"))


def test_the_name_picks_one_of_two_paths(flights: Model) -> None:
    """`route.airport.city` is the airport reached through route; `flight.airport.city` the direct one."""
    with pytest.raises(AmbiguousPathError, match=r"'flight\.airport\.<dimension>' or 'route\.airport\.<dimension>'"):
        plan(flights, q(("flight.flights",), ("airport.city",)))
    both = plan(flights, q(("flight.flights",), ("flight.airport.city", "route.airport.city"),
                           "route.airport.city = 'Oslo'"))
    (aggregate,) = both.aggregates
    assert {j.alias for j in aggregate.joins} == {"airport", "route", "route__airport"}
    assert [a for a, _ in aggregate.groups] == ["flight__airport__city", "route__airport__city"]
    assert '"route__airport".city = \'Oslo\'' in aggregate.where.sql()  # type: ignore[union-attr]


def test_a_path_that_does_not_exist_is_refused(flights: Model) -> None:
    with pytest.raises(QueryError, match="no path from flight to airport goes through"):
        plan(flights, q(("flight.flights",), ("airport.airport.city",)))


def test_picked_paths_give_the_right_numbers(flights: Model, tmp_path: Path) -> None:
    """Two flights from Oslo: one on a route to Rome, one on a route to Oslo; counted once per group."""
    import duckdb

    from semantic.execute import SqlWarehouse
    from semantic.service import Service

    path = tmp_path / "flights.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE airports AS SELECT * FROM (VALUES ('OSL', 'Oslo'), ('FCO', 'Rome')) t(code, city)")
        con.execute("CREATE TABLE routes AS SELECT * FROM (VALUES (1, 'FCO'), (2, 'OSL')) t(route_id, destination)")
        con.execute("CREATE TABLE flights AS SELECT * FROM (VALUES (10, 'OSL', 1, DATE '2024-01-01'), "
                    "(11, 'OSL', 2, DATE '2024-01-02'), (12, 'FCO', 1, DATE '2024-01-03')) "
                    "t(flight_id, origin, route_id, departed_at)")
    service = Service(flights, SqlWarehouse(f"duckdb:///{path}"))
    rows = service.query(q(("flight.flights",), ("flight.airport.city", "route.airport.city"))).rows
    assert sorted(rows) == [("Oslo", "Oslo", 1), ("Oslo", "Rome", 1), ("Rome", "Rome", 1)]
    service.warehouse.close()  # type: ignore[union-attr]
