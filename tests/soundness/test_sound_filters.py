"""Filters: conditions on dimensions apply to rows before aggregation, conditions on metrics to groups after.

Rows (every expected number below is read off them by hand):

    customers  id region      orders  id customer amount status
               1  EU                  1  1        10     paid
               2  NA                  2  1        50     refunded
                                      3  1        30     paid
                                      4  2        5      paid
                                      5  2        60     refunded

All orders: EU 10 + 50 + 30 = 90 over 3 orders (mean 30), NA 5 + 60 = 65 over 2.
Paid orders: EU 10 + 30 = 40 over 2 (mean 20), NA 5 over 1.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Ask = Callable[..., dict[Any, Any]]  # the `ask` fixture of conftest.py

MODEL = """
version: 1
name: filters
entities:
  - name: customer
    table: customers
    key: customer_id
    dimensions:
      - {name: region}
  - name: order
    table: orders
    key: order_id
    relationships:
      - {entity: customer, key: customer_id}
    dimensions:
      - {name: status}
      - {name: amount, type: integer}
    metrics:
      - {name: revenue, agg: sum, expr: amount}
      - {name: order_count, agg: count}
      - {name: mean_amount, agg: avg, expr: amount}
      - {name: mean_order, expr: "revenue / order_count"}
"""

TABLES = {
    "customers": ({"customer_id": "INTEGER", "region": "VARCHAR"}, [(1, "EU"), (2, "NA")]),
    "orders": ({"order_id": "INTEGER", "customer_id": "INTEGER", "amount": "INTEGER", "status": "VARCHAR"},
               [(1, 1, 10, "paid"), (2, 1, 50, "refunded"), (3, 1, 30, "paid"), (4, 2, 5, "paid"),
                (5, 2, 60, "refunded")]),
}

METRICS = ("order.revenue", "order.order_count", "order.mean_amount", "order.mean_order")


def test_dimension_filter_applies_before_aggregation(ask: Ask) -> None:
    """Trap: filtering aggregated groups (impossible for a dimension not grouped by, and wrong for an average) or
    filtering after a join that already multiplied rows. Only paid orders are aggregated: EU 40 over 2 orders."""
    assert ask(METRICS, ("customer.region",), "order.status = 'paid'") == {
        "EU": (40, 2, 20, 20),  # not the mean of all EU orders, 30
        "NA": (5, 1, 5, 5),
    }
    # A filter on a related entity's dimension selects that entity's facts, then aggregates them.
    assert ask(METRICS, ("order.status",), "customer.region = 'EU'") == {
        "paid": (40, 2, 20, 20),
        "refunded": (50, 1, 50, 50),
    }


def test_metric_filter_applies_after_aggregation(ask: Ask) -> None:
    """Trap: applying `order.revenue > 70` to each order (no single order is over 70, so nothing would be left)
    instead of to each group's total: EU 90 stays, NA 65 goes."""
    assert ask(("order.revenue",), ("customer.region",), "order.revenue > 70") == {"EU": 90}
    # On a metric that is not selected: EU has 3 orders, NA 2.
    assert ask(("order.revenue",), ("customer.region",), "order.order_count >= 3") == {"EU": 90}
    # On a derived metric, from the group totals: EU 90 / 3 = 30, NA 65 / 2 = 32.5 (32 in integer division).
    assert ask(("order.revenue",), ("customer.region",), "order.mean_order > 32.2") == {"NA": 65}


def test_dimension_and_metric_filters_together(ask: Ask) -> None:
    """Trap: mixing up the two stages. Rows first (paid: EU 40, NA 5), then groups (over 30): only EU, with 40; a
    metric filter before the row filter would keep both regions (90 and 65 are over 30)."""
    assert ask(("order.revenue",), ("customer.region",), "order.status = 'paid' and order.revenue > 30") == {
        "EU": 40}
    assert ask(("order.revenue",), (), "order.status = 'paid' and order.revenue > 30") == {(): 45}
    assert ask(("order.revenue",), (), "order.status = 'paid' and order.revenue > 50") == {}
