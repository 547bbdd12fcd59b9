"""Roll-ups: coarse answers computed in process from a finer cached result, equal to the warehouse's own answer,
per metric kind, on DuckDB and PostgreSQL; and every kind that must never be rolled up, listed and refused."""

from __future__ import annotations

import math
from datetime import date
from typing import Any

import pyarrow as pa
import pytest

from semantic.cache import ResultCache, Source
from semantic.execute import SqlWarehouse
from semantic.model import Model
from semantic.query import Filter, SemanticQuery
from semantic.rollup import rollup_plan, run, why_not, widen
from semantic.service import Result, Service

FINE = ("order.ordered_at:day", "customer.region", "order.status")
ROLLABLE = (
    "order.revenue",  # sum with a filter
    "order.gross_amount",  # sum
    "order.order_count",  # count
    "order.largest_order",  # max
    "order.smallest_order",  # min
    "order.average_amount",  # avg, from a stored sum and count
    "order.average_order_value",  # derived over a sum and a count
    "order.enterprise_revenue",  # sum with a filter on a related entity
)
# Coarser questions a FINE result implies: (dimensions, filter).
COARSER = (
    (("order.ordered_at:month", "customer.region"), None),
    (("order.ordered_at:week",), None),
    (("order.ordered_at:year", "order.status"), "customer.region = 'EU'"),
    (("customer.region",), "order.status in ('completed', 'shipped') and order.ordered_at:month >= '2024-03-15'"),
    (("order.ordered_at:quarter",), "customer.region is null or customer.region <> 'NA'"),
    ((), "order.ordered_at:day between '2024-02-10' and '2024-05-20'"),
    (("order.ordered_at:quarter",), "order.ordered_at:month not in ('2024-03-01', '2024-05-01') and "
                                    "order.ordered_at:week >= '2024-02-07'"),
)
# Never rolled up, whatever is cached: (metric, what makes it so).
NEVER = (
    ("order.buyers", "distinct count"),
    ("order.median_amount", "percentile"),
    ("order.p90_amount", "percentile"),
    ("inventory.on_hand", "semi-additive"),
    ("inventory.opening_stock", "semi-additive"),
    ("order.revenue_rolling_7d", "cumulative"),
    ("order.revenue_to_date", "cumulative"),
    ("order.revenue_mtd", "cumulative"),
    ("order.revenue_last_month", "offset"),
    ("order.revenue_growth_yoy", "derived over an offset"),
)


def _query(metrics: tuple[str, ...], dimensions: tuple[str, ...], where: str | None = None,
           **options: Any) -> SemanticQuery:
    return SemanticQuery(metrics, dimensions, Filter.parse(where) if where else None, **options)


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is None, "" if v is None else str(v)) for v in row)


def assert_same(actual: Result, expected: Result) -> None:
    assert [c.name for c in actual.columns] == [c.name for c in expected.columns]
    left, right = sorted(actual.rows, key=_key), sorted(expected.rows, key=_key)
    assert len(left) == len(right) and left, "no rows: the comparison would prove nothing"
    for a_row, e_row in zip(left, right, strict=True):
        for a, e in zip(a_row, e_row, strict=True):
            if isinstance(a, float) or isinstance(e, float):
                assert a is not None and e is not None and math.isclose(a, e, rel_tol=1e-9), (a_row, e_row)
            else:
                assert type(a) is type(e) or {type(a), type(e)} <= {int, float}, (a_row, e_row)
                if isinstance(a, date):
                    assert type(a) is type(e)
                assert a == e, (a_row, e_row)


@pytest.fixture(scope="module")
def warehouse(warehouse_url: str) -> Any:
    found = SqlWarehouse(warehouse_url)
    yield found
    found.close()


@pytest.fixture
def cached(model: Model, warehouse: SqlWarehouse) -> Service:
    """A service with a fresh cache: what it answers from cache it has computed in this test."""
    return Service(model, warehouse, ResultCache())


@pytest.fixture(scope="module")
def truth(model: Model, warehouse: SqlWarehouse) -> Service:
    """The warehouse's own answers: no cache at all."""
    return Service(model, warehouse, ResultCache(enabled=False))


@pytest.mark.parametrize("metric", ROLLABLE)
def test_rolled_up_answers_equal_the_warehouse(cached: Service, truth: Service, metric: str) -> None:
    assert cached.query(_query((metric,), FINE)).cache_source is Source.WAREHOUSE
    for dimensions, where in COARSER:
        query = _query((metric,), dimensions, where)
        rolled = cached.query(query)
        assert rolled.cache_source is Source.ROLLUP, (dimensions, where)
        assert_same(rolled, truth.query(query))
        assert cached.query(query).cache_source is Source.EXACT  # a rolled-up answer is cached like any other


def test_several_metrics_and_entities_roll_up_together(cached: Service, truth: Service) -> None:
    """A derived metric over two entities (revenue per page view), with an order, a limit and a metric filter
    applied after the roll-up as the warehouse applies them."""
    metrics = ("order.revenue_per_view", "order.average_amount", "order.order_count")
    cached.query(_query(metrics, ("time:day", "customer.region")))
    for query in (_query(metrics, ("time:month",)),
                  _query(metrics, ("customer.region",), "order.order_count > 100 and time:month < '2024-07-01'")):
        rolled = cached.query(query)
        assert rolled.cache_source is Source.ROLLUP
        assert_same(rolled, truth.query(query))
    # Metrics of fewer entities than the cached result: its rows include groups only the other entity has.
    fewer = _query(("order.revenue",), ("time:month",))
    assert cached.query(fewer).cache_source is Source.WAREHOUSE


def test_conditions_match_as_resolved_not_as_written(cached: Service, truth: Service) -> None:
    """Months from mid-March on are the months from April on: the same resolved condition, written differently,
    so the cached result (filtered by it) serves the question."""
    cached.query(_query(("order.revenue",), FINE, "order.ordered_at:month >= '2024-03-15'"))
    query = _query(("order.revenue",), ("customer.region",), "order.ordered_at:month >= '2024-04-01'")
    rolled = cached.query(query)
    assert rolled.cache_source is Source.ROLLUP
    assert_same(rolled, truth.query(query))
    other = _query(("order.revenue",), ("customer.region",), "order.ordered_at:month >= '2024-03-01'")
    assert cached.query(other).cache_source is Source.WAREHOUSE  # March is not in the cached rows


def test_order_and_limit_apply_after_the_roll_up(cached: Service, truth: Service) -> None:
    from semantic.query import Order

    cached.query(_query(("order.revenue",), FINE))
    query = _query(("order.revenue",), ("order.ordered_at:month",), order_by=(Order("order.revenue", True),),
                   limit=5)
    rolled = cached.query(query)
    assert rolled.cache_source is Source.ROLLUP
    assert rolled.rows == truth.query(query).rows  # same order, same five


def test_a_limit_the_answer_stays_under_cuts_nothing(cached: Service, truth: Service) -> None:
    """The server's row cap adds a limit to every query: an answer under it is whole, and serves roll-ups."""
    cached.query(_query(("order.revenue",), FINE, limit=100_001))
    query = _query(("order.revenue",), ("customer.region",), limit=100_001)
    rolled = cached.query(query)
    assert rolled.cache_source is Source.ROLLUP
    assert_same(rolled, truth.query(query))


def test_time_zones_roll_up_only_within_the_same_zone(cached: Service, truth: Service) -> None:
    cached.query(_query(("order.revenue",), ("order.ordered_at:hour",), timezone="Asia/Kolkata"))
    same = _query(("order.revenue",), ("order.ordered_at:day",), timezone="Asia/Kolkata")
    rolled = cached.query(same)
    assert rolled.cache_source is Source.ROLLUP
    assert_same(rolled, truth.query(same))
    assert cached.query(_query(("order.revenue",), ("order.ordered_at:day",))).cache_source is Source.WAREHOUSE


@pytest.mark.parametrize(("fine", "coarse"), [
    # weeks do not nest in months, nor months in weeks
    ((("order.revenue",), ("order.ordered_at:week",), None), (("order.revenue",), ("order.ordered_at:month",), None)),
    ((("order.revenue",), ("order.ordered_at:month",), None), (("order.revenue",), ("order.ordered_at:week",), None)),
    # a filter the cached result lacks a dimension for, or that it applied and the question does not
    ((("order.revenue",), ("customer.region",), None), (("order.revenue",), (), "order.status = 'completed'")),
    ((("order.revenue",), FINE, "order.channel = 'web'"), (("order.revenue",), ("customer.region",), None)),
    # a raw time comparison: the cached rows hold days, not instants
    ((("order.revenue",), FINE, None), (("order.revenue",), (), "order.ordered_at >= '2024-03-01 12:00:00'")),
    # string order follows the warehouse's collation
    ((("order.revenue",), FINE, None), (("order.revenue",), (), "customer.region < 'M'")),
    # a cached result with a limit is not a whole result
    ((("order.revenue",), FINE, None, 10), (("order.revenue",), ("customer.region",), None)),
    # a metric the cached result does not hold
    ((("order.revenue",), FINE, None), (("order.order_count",), ("customer.region",), None)),
])
def test_what_is_not_implied_goes_to_the_warehouse(cached: Service, truth: Service, fine: tuple[Any, ...],
                                                   coarse: tuple[Any, ...]) -> None:
    limit = fine[3] if len(fine) > 3 else None
    cached.query(_query(fine[0], fine[1], fine[2], limit=limit))
    query = _query(*coarse)
    answer = cached.query(query)
    assert answer.cache_source is Source.WAREHOUSE
    assert_same(answer, truth.query(query))


@pytest.mark.parametrize(("metric", "kind"), NEVER)
def test_kinds_that_cannot_roll_up_never_do(model: Model, cached: Service, metric: str, kind: str) -> None:
    owner, _, name = metric.partition(".")
    found = model.entities[owner].metrics[name]
    if found.kind in ("simple", "cumulative", "offset"):
        assert why_not(model, found) is not None
    time = "inventory.snapshot_date" if owner == "inventory" else "order.ordered_at"
    fine = _query((metric,), (f"{time}:day",))
    coarse = _query((metric,), (f"{time}:month",))
    assert widen(model, cached.compile(fine).plan) is None, kind  # never even stored as a roll-up source
    cached.query(fine)
    assert cached.query(coarse).cache_source is Source.WAREHOUSE


def test_rollups_off_means_exact_matches_only(model: Model, warehouse: SqlWarehouse) -> None:
    exact = Service(model, warehouse, ResultCache(), rollups=False)
    exact.query(_query(("order.revenue",), FINE))
    assert exact.query(_query(("order.revenue",), ("customer.region",))).cache_source is Source.WAREHOUSE
    assert exact.query(_query(("order.revenue",), FINE)).cache_source is Source.EXACT


def test_a_roll_up_duckdb_refuses_leaves_the_answer_to_the_warehouse(model: Model, cached: Service) -> None:
    fine = cached.compile(_query(("order.revenue",), FINE))
    plan = rollup_plan(model, cached.compile(_query(("order.revenue",), ("customer.region",))).plan,
                       fine.widened or fine.plan)
    assert plan is not None
    assert run(plan, pa.table({"unrelated": [1]})) is None  # no such columns: DuckDB refuses, nothing raised
