"""Cumulative and period-over-period metrics against hand-written SQL, on DuckDB and PostgreSQL.

Ground truth is a per-period series written by hand and a correlated subquery per period: the window is read
straight off DESIGN.md ("the value as of the end of the period"), independently of the window-function SQL.
"""

from __future__ import annotations

from typing import Any

import pytest

from semantic.errors import QueryError
from semantic.query import Filter, SemanticQuery
from semantic.service import Service

REVENUE = "SUM(CASE WHEN o.status <> 'cancelled' THEN o.amount END)"


def series(grain: str) -> str:
    """Per region and period: revenue, orders and the largest order."""
    return f"""SELECT c.region, CAST(DATE_TRUNC('{grain}', o.ordered_at) AS DATE) AS p, {REVENUE} AS r,
                      COUNT(*) AS n, MAX(o.amount) AS big
               FROM orders o LEFT JOIN customers c ON o.customer_id = c.customer_id GROUP BY 1, 2"""


SAME = "(b.region = a.region OR (b.region IS NULL AND a.region IS NULL))"


def hand(service: Service, sql: str) -> list[tuple[Any, ...]]:
    return sorted(service.warehouse.run(sql).rows, key=repr)  # type: ignore[union-attr]


def ours(service: Service, metric: str, grain: str, where: str | None = None) -> list[tuple[Any, ...]]:
    q = SemanticQuery((metric,), ("customer.region", f"time:{grain}"), Filter.parse(where) if where else None)
    return sorted(service.query(q).rows, key=repr)


def same(got: list[tuple[Any, ...]], expected: list[tuple[Any, ...]]) -> None:
    assert len(got) == len(expected)
    for g, e in zip(got, expected, strict=True):
        assert g[:-1] == e[:-1]
        assert (g[-1] is None and e[-1] is None) or g[-1] == pytest.approx(float(e[-1]), rel=1e-9), (g, e)


def test_trailing_7_days_at_day_grain(service: Service) -> None:
    """The day and the six before it; days without orders are not reported."""
    expected = hand(service, f"""WITH s AS ({series('day')})
        SELECT a.region, a.p, (SELECT SUM(b.r) FROM s b WHERE {SAME} AND b.p > a.p - 7 AND b.p <= a.p) FROM s a""")
    same(ours(service, "order.revenue_rolling_7d", "day"), expected)


def test_trailing_3_months_at_month_grain(service: Service) -> None:
    expected = hand(service, f"""WITH s AS ({series('month')})
        SELECT a.region, a.p, (SELECT SUM(b.r) FROM s b WHERE {SAME} AND b.p > a.p - INTERVAL '3 month'
                                                           AND b.p <= a.p) FROM s a""")
    same(ours(service, "order.revenue_rolling_3m", "month"), expected)


def test_trailing_7_days_at_week_grain(service: Service) -> None:
    """A 7-day window reported per ISO week is the week itself."""
    expected = hand(service, f"""WITH s AS ({series('week')}) SELECT a.region, a.p, a.r FROM s a""")
    same(ours(service, "order.revenue_rolling_7d", "week"), expected)


@pytest.mark.parametrize(("metric", "grain", "window"), [
    ("order.revenue_rolling_3m", "week", "INTERVAL '3 month'"),
    ("order.revenue_rolling_3m", "day", "INTERVAL '3 month'"),
    ("order.revenue_rolling_7d", "month", "INTERVAL '7 day'"),
])
def test_windows_that_are_not_whole_periods(service: Service, metric: str, grain: str, window: str) -> None:
    """3 months per week: the days in [week end - 3 months, week end), for each week with data."""
    step = {"week": "INTERVAL '7 day'", "day": "INTERVAL '1 day'", "month": "INTERVAL '1 month'"}[grain]
    expected = hand(service, f"""WITH d AS ({series('day')}),
        r AS (SELECT DISTINCT region, CAST(DATE_TRUNC('{grain}', p) AS DATE) AS p FROM d)
        SELECT a.region, a.p, (SELECT SUM(b.r) FROM d b WHERE {SAME} AND b.p >= a.p + {step} - {window}
                                                       AND b.p < a.p + {step}) FROM r a""")
    same(ours(service, metric, grain), expected)


def test_unbounded_running_total(service: Service) -> None:
    expected = hand(service, f"""WITH s AS ({series('month')})
        SELECT a.region, a.p, (SELECT SUM(b.n) FROM s b WHERE {SAME} AND b.p <= a.p) FROM s a""")
    got = ours(service, "order.orders_to_date", "month")
    same(got, expected)
    assert all(isinstance(row[-1], int) for row in got)


def test_month_to_date_at_day_grain(service: Service) -> None:
    expected = hand(service, f"""WITH s AS ({series('day')})
        SELECT a.region, a.p, (SELECT SUM(b.r) FROM s b WHERE {SAME} AND b.p <= a.p
                               AND DATE_TRUNC('month', b.p) = DATE_TRUNC('month', a.p)) FROM s a""")
    same(ours(service, "order.revenue_mtd", "day"), expected)


def test_trailing_max(service: Service) -> None:
    expected = hand(service, f"""WITH s AS ({series('day')})
        SELECT a.region, a.p, (SELECT MAX(b.big) FROM s b WHERE {SAME} AND b.p > a.p - 7 AND b.p <= a.p) FROM s a""")
    same(ours(service, "order.largest_order_7d", "day"), expected)


def test_time_filter_selects_periods_but_windows_reach_back(service: Service) -> None:
    """Periods from 2024-03-01 are reported; their windows still include February's orders."""
    expected = hand(service, f"""WITH s AS ({series('day')})
        SELECT a.region, a.p, (SELECT SUM(b.r) FROM s b WHERE {SAME} AND b.p > a.p - 7 AND b.p <= a.p)
        FROM s a WHERE a.p >= DATE '2024-03-01'""")
    got = ours(service, "order.revenue_rolling_7d", "day", "time:day >= '2024-03-01'")
    same(got, expected)
    first = [row for row in got if row[1].isoformat() == "2024-03-01"]
    plain = ours(service, "order.revenue", "day", "time:day >= '2024-03-01'")
    assert first and any(row not in plain for row in first)  # the window reached into February


def test_offset_one_year_at_month_grain(service: Service) -> None:
    """NULL where the earlier period has no data."""
    expected = hand(service, f"""WITH s AS ({series('month')})
        SELECT a.region, a.p, (SELECT b.r FROM s b WHERE {SAME} AND b.p = a.p - INTERVAL '1 year') FROM s a""")
    got = ours(service, "order.revenue_last_year", "month")
    same(got, expected)
    assert any(row[-1] is None for row in got) and any(row[-1] is not None for row in got)


def test_offset_one_month_at_day_grain_clamps_month_ends(service: Service) -> None:
    """2024-03-31 looks back to 2024-02-29, 2024-03-29 also to 2024-02-29 (calendar arithmetic clamps)."""
    expected = hand(service, f"""WITH s AS ({series('day')})
        SELECT a.region, a.p, (SELECT b.r FROM s b WHERE {SAME}
                               AND b.p = CAST(a.p - INTERVAL '1 month' AS DATE)) FROM s a""")
    same(ours(service, "order.revenue_last_month", "day"), expected)


def test_growth_over_offset(service: Service) -> None:
    expected = hand(service, f"""WITH s AS ({series('quarter')}),
        y AS (SELECT a.region, a.p, a.r, (SELECT b.r FROM s b WHERE {SAME} AND b.p = a.p - INTERVAL '1 year') AS ly
              FROM s a)
        SELECT region, p, CAST(r AS DOUBLE PRECISION) / NULLIF(ly, 0) - 1 FROM y""")
    same(ours(service, "order.revenue_growth_yoy", "quarter"), expected)


def test_stitched_with_other_entities(service: Service) -> None:
    """A cumulative metric beside a page-view metric on one time axis keeps every period of both."""
    q = SemanticQuery(("order.revenue_to_date", "page_view.views"), ("time:month",))
    got = {row[0]: row[1:] for row in service.query(q).rows}
    totals = hand(service, """WITH s AS (SELECT CAST(DATE_TRUNC('month', ordered_at) AS DATE) AS p,
                                                 SUM(CASE WHEN status <> 'cancelled' THEN amount END) AS r
                                          FROM orders GROUP BY 1)
        SELECT a.p, (SELECT SUM(b.r) FROM s b WHERE b.p <= a.p) FROM s a""")
    views = dict(hand(service, "SELECT CAST(DATE_TRUNC('month', viewed_at) AS DATE), COUNT(*) FROM page_views GROUP BY 1"))
    assert set(got) == {p for p, _ in totals} | set(views)
    for p, total in totals:
        assert got[p][0] == pytest.approx(float(total), rel=1e-9)
    for p, count in views.items():
        assert got[p][1] == count


@pytest.mark.parametrize(("metric", "dims", "words"), [
    ("order.revenue_rolling_7d", ("customer.region",), "exactly one time dimension"),
    ("order.revenue_last_month", ("time:week",), "does not land on the start of a week"),
    ("order.revenue_mtd", ("time:week",), "do not nest"),
])
def test_unanswerable_windows_are_refused(service: Service, metric: str, dims: tuple[str, ...], words: str) -> None:
    with pytest.raises(QueryError, match=words):
        service.compile(SemanticQuery((metric,), dims))


@pytest.mark.parametrize("where", ["time:month >= '2024-03-01'", "time:day >= '2024-03-15'", None])
def test_plain_and_windowed_metrics_together(service: Service, where: str | None) -> None:
    """Revenue beside revenue a year earlier: one scan when the filter keeps whole months, and the same numbers as
    asking for each alone either way (a day filter cuts March for revenue but only picks periods for the offset)."""
    dims = ("customer.region", "time:month")
    condition = Filter.parse(where) if where else None
    both = {r[:2]: r[2:] for r in service.query(SemanticQuery(("order.revenue", "order.revenue_last_year"), dims,
                                                               condition)).rows}
    alone = {r[:2]: r[2] for r in service.query(SemanticQuery(("order.revenue",), dims, condition)).rows}
    offset = {r[:2]: r[2] for r in service.query(SemanticQuery(("order.revenue_last_year",), dims, condition)).rows}
    assert set(both) == set(alone) | set(offset)
    for key, (revenue, last_year) in both.items():
        assert revenue == alone.get(key) and last_year == offset.get(key)
    scans = service.compile(SemanticQuery(("order.revenue", "order.revenue_last_year"), dims, condition)).sql
    assert scans.count("FROM orders") == (2 if where and "time:day" in where else 1)
