"""Query and feature results checked against hand-written SQL run on the same warehouse (DuckDB and PostgreSQL).

Each test asks the service one semantic question and asks the warehouse the same question in plain SQL, written
independently of the compiler; rows are compared as sorted lists, floats with a relative tolerance of 1e-9.
The hand-written SQL runs on both dialects; where they differ (percentiles) it branches on `service.dialect`.
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from semantic.features.request import FeatureRequest
from semantic.query import Filter, Order, SemanticQuery
from semantic.service import Result, Service

Row = tuple[Any, ...]

# Orders of the example data (seed 7, 3000 orders) placed at exactly midnight: 2024-04-05 (order 1451) and
# 2024-06-15 (order 1795, customer 205); the tests put boundaries on them so inclusive/exclusive ends matter.
EDGE_START, EDGE_END = "2024-04-05", "2024-06-15"
ORDERS_WITH_CUSTOMER = "orders o LEFT JOIN customers c ON c.customer_id = o.customer_id"
REVENUE = "SUM(CASE WHEN o.status <> 'cancelled' THEN o.amount END)"


# --- helpers ---------------------------------------------------------------------------------------------------

def ask(service: Service, metrics: tuple[str, ...] = (), dimensions: tuple[str, ...] = (), where: str | None = None,
        **options: Any) -> Result:
    """Run a semantic query; `where` is filter-language text."""
    return service.query(SemanticQuery(metrics=metrics, dimensions=dimensions,
                                       where=Filter.parse(where) if where else None, **options))


def sql(service: Service, text: str) -> list[Row]:
    """Run hand-written SQL on the service's own warehouse."""
    return list(service.warehouse.run(text).rows)


def quantile(service: Service, fraction: float, expr: str) -> str:
    """A continuous (interpolated) percentile in the warehouse's dialect."""
    if service.dialect == "postgres":
        return f"PERCENTILE_CONT({fraction}) WITHIN GROUP (ORDER BY {expr})"
    # In double precision: over a DECIMAL, DuckDB's QUANTILE_CONT keeps the input's scale and cuts the interpolation.
    return f"QUANTILE_CONT(CAST({expr} AS DOUBLE), {fraction})"


def _sort_key(row: Row) -> tuple[Any, ...]:
    return tuple((value is None, "" if value is None else value) for value in row)


def _same(actual: Any, expected: Any) -> bool:
    if isinstance(actual, float) or isinstance(expected, float):
        return (actual is not None and expected is not None
                and math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9))
    if isinstance(actual, date) or isinstance(expected, date):
        return type(actual) is type(expected) and actual == expected  # a datetime is not the date it starts
    return bool(actual == expected)


def assert_rows(actual: Any, expected: list[Row], *, ordered: bool = False) -> None:
    """Equal row lists (sorted first unless `ordered`); floats within 1e-9 relative, dates not datetimes."""
    actual, expected = list(actual), list(expected)
    if not ordered:
        actual, expected = sorted(actual, key=_sort_key), sorted(expected, key=_sort_key)
    assert len(actual) == len(expected), f"{len(actual)} rows, expected {len(expected)}:\n{actual}\n{expected}"
    for got, want in zip(actual, expected, strict=True):
        assert len(got) == len(want) and all(_same(g, w) for g, w in zip(got, want, strict=True)), \
            f"row {got} != expected {want}"


def grouped(service: Service, select: str, source: str = ORDERS_WITH_CUSTOMER, where: str = "",
            having: str = "") -> list[Row]:
    """`SELECT <select> FROM <source> [WHERE] GROUP BY <the first column>`: the usual one-dimension shape."""
    return sql(service, f"SELECT {select} FROM {source} {f'WHERE {where}' if where else ''} GROUP BY 1 "
                        f"{f'HAVING {having}' if having else ''}")


# --- simple, derived and filtered metrics ------------------------------------------------------------------------

SIMPLE = {  # metric -> its aggregate over `orders o LEFT JOIN customers c`; None: dialect-specific, see below
    "order.revenue": REVENUE,
    "order.gross_amount": "SUM(o.amount)",
    "order.order_count": "COUNT(*)",
    "order.buyers": "COUNT(DISTINCT o.customer_id)",
    "order.average_amount": "AVG(o.amount)",
    "order.smallest_order": "MIN(o.amount)",
    "order.largest_order": "MAX(o.amount)",
    "order.median_amount": None,
    "order.p90_amount": None,
}


@pytest.mark.parametrize("metric", list(SIMPLE))
def test_simple_aggregate_by_region(service: Service, metric: str) -> None:
    """Each simple aggregation kind (sum with filter, count, count_distinct, avg, min, max, median, percentile)."""
    aggregate = SIMPLE[metric] or quantile(service, 0.5 if metric == "order.median_amount" else 0.9, "o.amount")
    assert_rows(ask(service, (metric,), ("customer.region",)).rows, grouped(service, f"c.region, {aggregate}"))


def test_count_and_count_distinct_on_other_entities(service: Service) -> None:
    """customer_count counts customers; visitors ignores anonymous (NULL) viewers, views counts them."""
    assert_rows(ask(service, ("customer.customer_count",), ("customer.segment",)).rows,
                grouped(service, "segment, COUNT(*)", "customers"))
    assert_rows(ask(service, ("page_view.views", "page_view.visitors"), ("page_view.page",)).rows,
                grouped(service, "page, COUNT(*), COUNT(DISTINCT customer_id)", "page_views"))


def test_derived_metric_average_order_value(service: Service) -> None:
    """average_order_value = revenue / order_count, per group."""
    assert_rows(ask(service, ("order.average_order_value",), ("order.channel",)).rows,
                grouped(service, f"o.channel, {REVENUE} / NULLIF(COUNT(*), 0)"))


def test_derived_metric_across_entities_revenue_per_view(service: Service) -> None:
    """revenue_per_view divides order revenue by page views of the same region, each aggregated on its own."""
    expected = sql(service, f"""
        SELECT r.region, r.revenue / NULLIF(v.views, 0)
        FROM (SELECT c.region, {REVENUE} AS revenue FROM {ORDERS_WITH_CUSTOMER} GROUP BY 1) r
        JOIN (SELECT c.region, COUNT(*) AS views
              FROM page_views p LEFT JOIN customers c ON c.customer_id = p.customer_id GROUP BY 1) v
          ON r.region IS NOT DISTINCT FROM v.region""")
    assert_rows(ask(service, ("order.revenue_per_view",), ("customer.region",)).rows, expected)


def test_metric_filter_on_related_entity_enterprise_revenue(service: Service) -> None:
    """enterprise_revenue's filter reads customer.segment through the relationship (orphan orders never match)."""
    assert_rows(ask(service, ("order.enterprise_revenue",), ("order.channel",)).rows, grouped(
        service, "o.channel, SUM(CASE WHEN o.status <> 'cancelled' AND c.segment = 'enterprise' THEN o.amount END)"))


# --- joins, orphans and NULL groups ------------------------------------------------------------------------------

def test_multi_hop_join_units_by_region(service: Service) -> None:
    """order_item.units by customer.region goes order_items -> orders -> customers, orphans under NULL."""
    assert_rows(ask(service, ("order_item.units",), ("customer.region",)).rows, grouped(
        service, "c.region, SUM(i.quantity)",
        "order_items i JOIN orders o ON o.order_id = i.order_id "
        "LEFT JOIN customers c ON c.customer_id = o.customer_id"))


def test_item_revenue_filter_through_join(service: Service) -> None:
    """item_revenue's filter on order.status reaches the parent order; grouped by product.category."""
    assert_rows(ask(service, ("order_item.item_revenue",), ("product.category",)).rows, grouped(
        service, "pr.category, SUM(CASE WHEN o.status <> 'cancelled' THEN i.quantity * i.unit_price END)",
        "order_items i JOIN orders o ON o.order_id = i.order_id JOIN products pr ON pr.product_id = i.product_id"))


def test_orphan_orders_counted_under_null_region(service: Service) -> None:
    """Orders whose customer does not exist still count, under region NULL; no order is lost."""
    result = ask(service, ("order.order_count",), ("customer.region",))
    orphans = sql(service, "SELECT COUNT(*) FROM orders o WHERE NOT EXISTS "
                           "(SELECT 1 FROM customers c WHERE c.customer_id = o.customer_id)")[0][0]
    assert orphans > 0  # the example data has orphan orders; otherwise this test proves nothing
    assert_rows(result.rows, grouped(service, "c.region, COUNT(*)"))
    assert sum(count for _, count in result.rows) == sql(service, "SELECT COUNT(*) FROM orders")[0][0]


def test_null_region_is_a_group_of_its_own(service: Service) -> None:
    """Customers with no region form one NULL group, not dropped and not merged with another."""
    result = ask(service, ("customer.customer_count",), ("customer.region",))
    assert None in [region for region, _ in result.rows]
    assert_rows(result.rows, grouped(service, "region, COUNT(*)", "customers"))


def test_orphan_orders_have_no_customer_id(service: Service) -> None:
    """customer.customer_id of an order whose customer is missing is NULL, like every other customer dimension."""
    assert_rows(ask(service, ("order.order_count",), ("customer.customer_id", "customer.region")).rows,
                sql(service, f"SELECT c.customer_id, c.region, COUNT(*) FROM {ORDERS_WITH_CUSTOMER} GROUP BY 1, 2"))


# --- stitching metrics of several entities -----------------------------------------------------------------------

def stitched(service: Service, *sides: str) -> list[Row]:
    """One row per dimension value found on any side (each `SELECT d, m ...`), with each side's metric or NULL.

    Merged in Python, a full outer join on `d` where NULL matches NULL, independent of the compiler's SQL.
    """
    merged: dict[Any, list[Any]] = {}
    for i, side in enumerate(sides):
        for value, metric in sql(service, side):
            merged.setdefault(value, [None] * len(sides))[i] = metric
    return [(value, *metrics) for value, metrics in merged.items()]


def test_stitch_orders_and_page_views_by_region(service: Service) -> None:
    """order.revenue + page_view.views by customer.region: each aggregated on its own, joined on region."""
    left = f"SELECT c.region AS d, {REVENUE} AS m FROM {ORDERS_WITH_CUSTOMER} GROUP BY 1"
    right = ("SELECT c.region AS d, COUNT(*) AS m FROM page_views p "
             "LEFT JOIN customers c ON c.customer_id = p.customer_id GROUP BY 1")
    assert_rows(ask(service, ("order.revenue", "page_view.views"), ("customer.region",)).rows,
                stitched(service, left, right))


def test_stitch_keeps_groups_present_on_one_side_only(service: Service) -> None:
    """order_count + views by time:hour: hours with orders only, or views only, both survive with a NULL."""
    left = "SELECT DATE_TRUNC('hour', ordered_at) AS d, COUNT(*) AS m FROM orders GROUP BY 1"
    right = "SELECT DATE_TRUNC('hour', viewed_at) AS d, COUNT(*) AS m FROM page_views GROUP BY 1"
    result = ask(service, ("order.order_count", "page_view.views"), ("time:hour",))
    assert any(orders is None for _, orders, _ in result.rows) and any(views is None for _, _, views in result.rows)
    assert_rows(result.rows, stitched(service, left, right))


def test_stitch_three_entities_by_segment(service: Service) -> None:
    """Customer, order and page-view metrics by customer.segment: each aggregated alone, no fan-out (on PostgreSQL
    the NULL padding of three stitched sides must be typed, or the UNION refuses text against bigint)."""
    expected = stitched(
        service, "SELECT segment AS d, COUNT(*) AS m FROM customers GROUP BY 1",
        f"SELECT c.segment AS d, {REVENUE} AS m FROM {ORDERS_WITH_CUSTOMER} GROUP BY 1",
        "SELECT c.segment AS d, COUNT(*) AS m FROM page_views p LEFT JOIN customers c "
        "ON c.customer_id = p.customer_id GROUP BY 1")
    actual = ask(service, ("customer.customer_count", "order.revenue", "page_view.views"), ("customer.segment",))
    assert_rows(actual.rows, expected)


# --- time grains -------------------------------------------------------------------------------------------------

GRAINS = ["day", "week", "month", "quarter", "year"]


@pytest.mark.parametrize("grain", GRAINS)
@pytest.mark.parametrize("dimension", ["order.ordered_at", "time"])
def test_revenue_by_time_grain(service: Service, dimension: str, grain: str) -> None:
    """Revenue per period start (a date; weeks start on Monday), by the order's own time or the reserved `time`."""
    result = ask(service, ("order.revenue",), (f"{dimension}:{grain}",))
    assert_rows(result.rows, grouped(service, f"CAST(DATE_TRUNC('{grain}', o.ordered_at) AS DATE), {REVENUE}"))
    if grain == "week":
        assert {period.isoweekday() for period, _ in result.rows} == {1}


def test_time_month_is_each_metrics_own_time(service: Service) -> None:
    """time:month puts revenue by ordered_at and views by viewed_at on one axis."""
    left = f"SELECT CAST(DATE_TRUNC('month', o.ordered_at) AS DATE) AS d, {REVENUE} AS m " \
           f"FROM orders o GROUP BY 1"
    right = "SELECT CAST(DATE_TRUNC('month', viewed_at) AS DATE) AS d, COUNT(*) AS m FROM page_views GROUP BY 1"
    assert_rows(ask(service, ("order.revenue", "page_view.views"), ("time:month",)).rows,
                stitched(service, left, right))


def test_order_item_time_comes_from_its_order(service: Service) -> None:
    """order_item's time is order.ordered_at, so time:quarter groups units by their order's quarter."""
    assert_rows(ask(service, ("order_item.units",), ("time:quarter",)).rows, grouped(
        service, "CAST(DATE_TRUNC('quarter', o.ordered_at) AS DATE), SUM(i.quantity)",
        "order_items i JOIN orders o ON o.order_id = i.order_id"))


# --- filters -----------------------------------------------------------------------------------------------------

FILTERS = {  # filter language -> the same condition over `orders o LEFT JOIN customers c`
    "customer.segment = 'smb'": "c.segment = 'smb'",
    "order.status in ('completed', 'shipped')": "o.status IN ('completed', 'shipped')",
    f"order.ordered_at between '{EDGE_START}' and '{EDGE_END}'":
        f"o.ordered_at BETWEEN TIMESTAMP '{EDGE_START} 00:00:00' AND TIMESTAMP '{EDGE_END} 00:00:00'",
    f"order.ordered_at:day between '{EDGE_START}' and '{EDGE_END}'":
        f"CAST(o.ordered_at AS DATE) BETWEEN DATE '{EDGE_START}' AND DATE '{EDGE_END}'",
    "time:month >= '2024-11-01'": "o.ordered_at >= TIMESTAMP '2024-11-01 00:00:00'",
    "customer.region is null": "c.region IS NULL",
    "order.channel like 'w%'": "o.channel LIKE 'w%'",
    "not order.status = 'cancelled'": "NOT o.status = 'cancelled'",
    "not (customer.segment in ('smb', 'enterprise') or order.amount > 200)":
        "NOT (c.segment IN ('smb', 'enterprise') OR o.amount > 200)",
}


@pytest.mark.parametrize("condition", list(FILTERS))
def test_dimension_filter(service: Service, condition: str) -> None:
    """A dimension filter applies to the rows before aggregation (=, in, between on time, is null, like, not)."""
    assert_rows(ask(service, ("order.order_count", "order.revenue"), ("order.channel",), condition).rows,
                grouped(service, f"o.channel, COUNT(*), {REVENUE}", where=FILTERS[condition]))


def test_like_filter_on_a_product_name(service: Service) -> None:
    """like on product.name filters order lines before units are summed per category."""
    assert_rows(ask(service, ("order_item.units",), ("product.category",), "product.name like 'Eco%'").rows,
                grouped(service, "pr.category, SUM(i.quantity)",
                        "order_items i JOIN products pr ON pr.product_id = i.product_id", "pr.name LIKE 'Eco%'"))


def test_metric_filter_applies_after_aggregation(service: Service) -> None:
    """order.revenue > 1000 keeps the groups whose total revenue exceeds 1000 (HAVING), not single orders."""
    result = ask(service, ("order.revenue", "order.order_count"), ("order.customer_id",), "order.revenue > 1000")
    assert_rows(result.rows, grouped(service, f"o.customer_id, {REVENUE}, COUNT(*)", having=f"{REVENUE} > 1000"))


def test_metric_and_dimension_filter_together(service: Service) -> None:
    """`order.revenue > 1000 and order.channel = 'web'`: the channel before aggregation, the revenue after."""
    result = ask(service, ("order.revenue",), ("order.customer_id",), "order.revenue > 1000 and order.channel = 'web'")
    assert_rows(result.rows, grouped(service, f"o.customer_id, {REVENUE}", where="o.channel = 'web'",
                                     having=f"{REVENUE} > 1000"))


# --- shape of the result -----------------------------------------------------------------------------------------

def test_order_limit_offset(service: Service) -> None:
    """Order by revenue descending then region ascending, skip 1, take 3: exactly those rows in that order."""
    result = ask(service, ("order.revenue",), ("customer.region",), order_by=(
        Order("order.revenue", descending=True), Order("customer.region")), limit=3, offset=1)
    assert_rows(result.rows, sql(service, f"SELECT c.region, {REVENUE} FROM {ORDERS_WITH_CUSTOMER} GROUP BY 1 "
                                          f"ORDER BY 2 DESC, 1 LIMIT 3 OFFSET 1"), ordered=True)


def test_order_by_dimension_with_limit(service: Service) -> None:
    """Order by a time dimension ascending with a limit: the first five months."""
    result = ask(service, ("order.order_count",), ("order.ordered_at:month",),
                 order_by=(Order("order.ordered_at:month"),), limit=5)
    assert_rows(result.rows, sql(service, "SELECT CAST(DATE_TRUNC('month', ordered_at) AS DATE), COUNT(*) "
                                          "FROM orders GROUP BY 1 ORDER BY 1 LIMIT 5"), ordered=True)


def test_dimensions_only(service: Service) -> None:
    """Dimensions without metrics: the distinct combinations that exist, NULL region included."""
    assert_rows(ask(service, dimensions=("customer.segment", "customer.region")).rows,
                sql(service, "SELECT DISTINCT segment, region FROM customers"))


def test_boolean_dimension(service: Service) -> None:
    """order.is_large (amount > 100) groups into True and False."""
    result = ask(service, ("order.order_count", "order.revenue"), ("order.is_large",))
    assert {flag for flag, *_ in result.rows} == {True, False}
    assert_rows(result.rows, grouped(service, f"o.amount > 100, COUNT(*), {REVENUE}"))


def test_output_columns_follow_the_request(service: Service) -> None:
    """Dimensions first, then metrics, each in the order asked, whatever the canonical order."""
    result = ask(service, ("order.revenue", "order.order_count"), ("order.status", "customer.region"))
    assert [c.name for c in result.columns] == ["order.status", "customer.region", "order.revenue", "order.order_count"]
    assert_rows(result.rows, sql(service, f"SELECT o.status, c.region, {REVENUE}, COUNT(*) "
                                          f"FROM {ORDERS_WITH_CUSTOMER} GROUP BY 1, 2"))


# --- features ----------------------------------------------------------------------------------------------------

FEATURES = ["orders_last_30d", "lifetime_revenue", "region"]
# A plain day; the day of a midnight order (the window's end is inclusive); 30 days later (its start is exclusive).
ATS = [datetime(2024, 6, 1), datetime.fromisoformat(EDGE_END), datetime.fromisoformat(EDGE_END) + timedelta(days=30)]


def expected_features(service: Service, at: datetime) -> dict[int, Row]:
    """customer_id -> (orders_last_30d, lifetime_revenue, region) as of `at`, written out by hand."""
    t, start = f"TIMESTAMP '{at:%Y-%m-%d %H:%M:%S}'", f"TIMESTAMP '{at - timedelta(days=30):%Y-%m-%d %H:%M:%S}'"
    rows = sql(service, f"""
        SELECT c.customer_id,
               CASE WHEN c.signed_up_at <= {t} THEN (SELECT COUNT(*) FROM orders o WHERE o.customer_id = c.customer_id
                                                     AND o.ordered_at > {start} AND o.ordered_at <= {t}) END,
               (SELECT {REVENUE} FROM orders o WHERE o.customer_id = c.customer_id AND o.ordered_at <= {t}),
               CASE WHEN c.signed_up_at <= {t} THEN c.region END
        FROM customers c""")
    return {row[0]: row for row in rows}


@pytest.mark.parametrize("at", ATS, ids=[f"{at:%Y-%m-%d}" for at in ATS])
def test_features_of_every_customer(service: Service, at: datetime) -> None:
    """orders_last_30d counts orders in (at - 30 days, at]; lifetime_revenue up to at; region null before sign-up."""
    expected = expected_features(service, at)
    keys = sorted(expected)
    result = service.features(FeatureRequest.create(service.model, "customer", keys, FEATURES, at))
    assert [c.name for c in result.columns] == ["customer_id", *FEATURES]
    assert_rows(result.rows, [expected[k] for k in keys], ordered=True)


def test_feature_window_boundaries(service: Service) -> None:
    """Customer 205's midnight order counts from its own instant on, and stops counting exactly 30 days later."""
    def count(at: datetime) -> int:
        request = FeatureRequest.create(service.model, "customer", [205], ["orders_last_30d"], at)
        return int(service.features(request).rows[0][1])

    second = timedelta(seconds=1)
    assert count(ATS[1]) - count(ATS[1] - second) == 1
    assert count(ATS[2] - second) - count(ATS[2]) == 1


def test_feature_region_is_null_before_sign_up(service: Service) -> None:
    """The region feature of the last customer to sign up is NULL a second before signed_up_at, set from it on."""
    key, region, signed_up_at = sql(service, "SELECT customer_id, region, signed_up_at FROM customers "
                                             "WHERE region IS NOT NULL ORDER BY signed_up_at DESC LIMIT 1")[0]
    values = [service.features(FeatureRequest.create(service.model, "customer", [key], ["region"], at)).rows[0][1]
              for at in (signed_up_at - timedelta(seconds=1), signed_up_at)]
    assert values == [None, region]


def test_features_unknown_and_duplicate_keys(service: Service) -> None:
    """One row per requested key in request order, duplicates kept, unknown keys all null."""
    at = ATS[0]
    keys = [5, 99_999, 3, 5, -1, 3]
    expected = expected_features(service, at)
    result = service.features(FeatureRequest.create(service.model, "customer", keys, FEATURES, at))
    assert_rows(result.rows, [expected.get(k, (k, None, None, None)) for k in keys], ordered=True)
