"""Time: grains in a per-query time zone, and time filters at a grain, against hand-written SQL on both warehouses.

The hand-written SQL truncates every row and compares, the slow obvious way; the library rewrites filters at a grain
into ranges on the raw time. Both must agree.
"""

from __future__ import annotations

from typing import Any

import pytest

from semantic.errors import QueryError
from semantic.query import Filter, SemanticQuery
from semantic.service import Service

REVENUE = "SUM(CASE WHEN status <> 'cancelled' THEN amount END)"


def rows(service: Service, sql: str) -> list[tuple[Any, ...]]:
    return sorted(((p, float(v) if v is not None else None) for p, v in service.warehouse.run(sql).rows),  # type: ignore[union-attr]
                  key=repr)


def ours(service: Service, dimension: str, where: str | None = None, timezone: str | None = None
         ) -> list[tuple[Any, ...]]:
    q = SemanticQuery(("order.revenue",), (dimension,), Filter.parse(where) if where else None, timezone=timezone)
    return sorted(((p, float(v) if v is not None else None) for p, v in service.query(q).rows), key=repr)


def same(got: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> None:
    assert [g[0] for g in got] == [e[0] for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert (g[1] is None and e[1] is None) or g[1] == pytest.approx(e[1], rel=1e-9)


@pytest.mark.parametrize(("where", "hand_where"), [
    ("time:month >= '2024-02-15'", "DATE_TRUNC('month', ordered_at) >= TIMESTAMP '2024-02-15 00:00:00'"),
    ("time:month > '2024-02-01'", "DATE_TRUNC('month', ordered_at) > TIMESTAMP '2024-02-01 00:00:00'"),
    ("time:month <= '2024-02-15'", "DATE_TRUNC('month', ordered_at) <= TIMESTAMP '2024-02-15 00:00:00'"),
    ("time:month < '2024-02-15'", "DATE_TRUNC('month', ordered_at) < TIMESTAMP '2024-02-15 00:00:00'"),
    ("time:day = '2024-02-29'", "DATE_TRUNC('day', ordered_at) = TIMESTAMP '2024-02-29 00:00:00'"),
    ("time:day = '2024-02-29T12:00:00'", "DATE_TRUNC('day', ordered_at) = TIMESTAMP '2024-02-29 12:00:00'"),
    ("order.ordered_at:week between '2024-03-06' and '2024-03-20'",
     "DATE_TRUNC('week', ordered_at) BETWEEN TIMESTAMP '2024-03-06 00:00:00' AND TIMESTAMP '2024-03-20 00:00:00'"),
    ("time:quarter >= '2024-04-01' and time:quarter < '2024-10-01'",
     "DATE_TRUNC('quarter', ordered_at) >= TIMESTAMP '2024-04-01 00:00:00' "
     "AND DATE_TRUNC('quarter', ordered_at) < TIMESTAMP '2024-10-01 00:00:00'"),
    ("time:hour <> '2024-03-01T10:00:00'", "DATE_TRUNC('hour', ordered_at) <> TIMESTAMP '2024-03-01 10:00:00'"),
])
def test_filters_at_a_grain(service: Service, where: str, hand_where: str) -> None:
    expected = rows(service, f"SELECT CAST(DATE_TRUNC('day', ordered_at) AS DATE), {REVENUE} FROM orders "
                             f"WHERE {hand_where} GROUP BY 1")
    same(ours(service, "time:day", where), expected)


def test_filter_at_a_grain_is_a_raw_range(service: Service) -> None:
    """No truncation of every row in the WHERE clause: the warehouse can skip blocks by their min/max."""
    sql = service.compile(SemanticQuery(("order.revenue",), (), Filter.parse("time:month >= '2024-02-15'"))).sql
    where = sql[sql.index("WHERE"):]
    assert "DATE_TRUNC" not in where and "CAST('2024-03-01 00:00:00' AS TIMESTAMP)" in where


@pytest.mark.parametrize("timezone", ["America/New_York", "Asia/Kolkata", "UTC"])
def test_periods_in_a_time_zone(service: Service, timezone: str) -> None:
    """Naive stored times are UTC; periods are cut in the query's zone (an order at 23:30 UTC on Jan 31 is
    February in Kolkata)."""
    local = f"ordered_at AT TIME ZONE 'UTC' AT TIME ZONE '{timezone}'"
    expected = rows(service, f"SELECT CAST(DATE_TRUNC('month', {local}) AS DATE), {REVENUE} FROM orders "
                             f"WHERE DATE_TRUNC('day', {local}) >= TIMESTAMP '2024-03-01 00:00:00' GROUP BY 1")
    same(ours(service, "time:month", "time:day >= '2024-03-01'", timezone), expected)


def test_raw_time_literals_are_instants(service: Service) -> None:
    """A naive literal on a raw time is UTC; one with an offset is converted, whatever the query's zone."""
    expected = rows(service, f"SELECT CAST(DATE_TRUNC('month', ordered_at) AS DATE), {REVENUE} FROM orders "
                             f"WHERE ordered_at >= TIMESTAMP '2024-02-29 22:00:00' GROUP BY 1")
    same(ours(service, "order.ordered_at:month", "order.ordered_at >= '2024-03-01T00:00:00+02:00'"), expected)
    assert ours(service, "order.ordered_at:month", "order.ordered_at >= '2024-02-29T22:00:00'") == \
        ours(service, "order.ordered_at:month", "order.ordered_at >= '2024-03-01T00:00:00+02:00'")


def test_unknown_time_zone_is_refused() -> None:
    with pytest.raises(QueryError, match="Europe/Paris"):
        SemanticQuery(("order.revenue",), ("time:day",), timezone="Europe/Pariss")
