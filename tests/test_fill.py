"""Gap filling against ground truth built in Python from a hand-written per-period query, on both warehouses."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from semantic.errors import QueryError
from semantic.query import Filter, SemanticQuery
from semantic.service import Service

RARE = "o.status = 'returned' AND c.region = 'LATAM'"


def days_with_data(service: Service) -> dict[date, int]:
    rows = service.warehouse.run(  # type: ignore[union-attr]
        f"SELECT CAST(DATE_TRUNC('day', o.ordered_at) AS DATE), COUNT(*) FROM orders o "
        f"LEFT JOIN customers c ON o.customer_id = c.customer_id WHERE {RARE} GROUP BY 1").rows
    return dict(rows)


def query(fill: str, where: str = "") -> SemanticQuery:
    condition = "order.status = 'returned' and customer.region = 'LATAM'" + (f" and {where}" if where else "")
    return SemanticQuery(("order.order_count", "order.average_amount"), ("time:day",), Filter.parse(condition),
                         fill=fill)


def test_fill_zero_between_first_and_last_period_with_data(service: Service) -> None:
    truth = days_with_data(service)
    first, last = min(truth), max(truth)
    every = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    assert len(every) > len(truth)  # the data has gaps to fill
    got = {row[0]: row[1:] for row in service.query(query("zero")).rows}
    assert sorted(got) == every
    for day in every:
        count, average = got[day]
        assert count == truth.get(day, 0)
        assert (average is None) == (day not in truth)  # an empty day has no average, even with fill zero


def test_fill_null_and_filter_bounds_beyond_the_data(service: Service) -> None:
    """The range is the filter's when it gives one: periods before the first and after the last order appear."""
    truth = days_with_data(service)
    got = {row[0]: row[1] for row in service.query(
        query("null", "time:day >= '2022-12-30' and time:day < '2025-01-03'")).rows}
    assert min(got) == date(2022, 12, 30) and max(got) == date(2025, 1, 2)
    assert len(got) == (date(2025, 1, 2) - date(2022, 12, 30)).days + 1
    assert {d: c for d, c in got.items() if c is not None} == truth


def test_fill_with_another_dimension_crosses_its_values(service: Service) -> None:
    q = SemanticQuery(("order.order_count",), ("order.channel", "time:month"),
                      Filter.parse("time:month >= '2022-11-01' and time:month <= '2023-02-01'"), fill="zero")
    rows = service.query(q).rows
    assert len(rows) == 3 * 4  # three channels x four months
    assert all(count == 0 for channel, month, count in rows if month < date(2023, 1, 1))


@pytest.mark.parametrize(("q", "words"), [
    (SemanticQuery(("order.order_count",), ("customer.region",), fill="zero"), "exactly one time dimension"),
    (SemanticQuery(("order.revenue_to_date",), ("time:month",), fill="zero"), "not supported yet"),
])
def test_fill_refusals(service: Service, q: SemanticQuery, words: str) -> None:
    with pytest.raises(QueryError, match=words):
        service.compile(q)


def test_fill_must_be_zero_or_null() -> None:
    with pytest.raises(QueryError, match="'zero' or 'null'"):
        SemanticQuery(("order.order_count",), ("time:day",), fill="zeros")
