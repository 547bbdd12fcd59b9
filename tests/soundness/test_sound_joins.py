"""Joins that multiply or drop rows: fan-out, the chasm trap, orphan facts, distinct counts, stitching, ratios.

Rows (every expected number below is summed by hand from them):

    customers  id region credit    orders  id customer amount ordered_at       tickets  id  customer opened_at
               1  EU     100               10  1        10     2024-01-05                100 1        2024-01-10
               2  EU     200               11  1        20     2024-02-10                101 1        2024-03-05
               3  NA     400               12  1        30     2024-02-20                102 3        2024-03-06
               4  APAC   800               13  2        40     2024-01-15                103 4        2024-04-01
                                           14  3        50     2024-03-01                104 4        2024-04-02
                                           15  3        60     2024-03-02                105 4        2024-04-03
                                           16  99       70     2024-01-31 23:59:59       106 NULL     2024-02-15
                                           17  NULL     80     2024-02-01 00:00:00

(there is no customer 99). Per region: orders EU 10+20+30+40 = 100 (4 orders), NA 50+60 = 110 (2), none in APAC,
orphans 70+80 = 150 (2); tickets EU 2, NA 1, APAC 3, orphan 1; credit EU 100+200 = 300, NA 400, APAC 800.
Totals: revenue 360 over 8 orders, 7 tickets.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest

from semantic.errors import FanoutError
from semantic.query import Filter, SemanticQuery
from semantic.service import Service

Ask = Callable[..., dict[Any, Any]]  # the `ask` fixture of conftest.py
t, d = datetime.fromisoformat, date.fromisoformat

MODEL = """
version: 1
name: joins
entities:
  - name: customer
    table: customers
    key: customer_id
    dimensions:
      - {name: customer_id, type: integer}
      - {name: region}
    metrics:
      - {name: total_credit, agg: sum, expr: credit_limit}
      - {name: revenue_per_ticket, expr: "order.revenue / nullif(ticket.ticket_count, 0)"}
  - name: order
    table: orders
    key: order_id
    relationships:
      - {entity: customer, key: customer_id}
    time: ordered_at
    dimensions:
      - {name: order_id, type: integer}
      - {name: amount, type: integer}
      - {name: ordered_at, type: time, grain: second}
    metrics:
      - {name: revenue, agg: sum, expr: amount}
      - {name: order_count, agg: count}
      - {name: buyers, agg: count_distinct, expr: customer_id}
      - {name: median_amount, agg: median, expr: amount}
      - {name: p90_amount, agg: percentile, percentile: 0.9, expr: amount}
  - name: ticket
    table: tickets
    key: ticket_id
    time: opened_at
    dimensions:
      - {name: opened_at, type: time, grain: second}
    relationships:
      - {entity: customer, key: customer_id}
    metrics:
      - {name: ticket_count, agg: count}
      - {name: ticketing_customers, agg: count_distinct, expr: customer_id}
"""

ORDERS: list[tuple[int, int | None, int, datetime]] = [
    (10, 1, 10, t("2024-01-05")), (11, 1, 20, t("2024-02-10")), (12, 1, 30, t("2024-02-20")),
    (13, 2, 40, t("2024-01-15")), (14, 3, 50, t("2024-03-01")), (15, 3, 60, t("2024-03-02")),
    (16, 99, 70, t("2024-01-31 23:59:59")), (17, None, 80, t("2024-02-01 00:00:00")),
]
TABLES = {
    "customers": ({"customer_id": "INTEGER", "region": "VARCHAR", "credit_limit": "INTEGER"},
                  [(1, "EU", 100), (2, "EU", 200), (3, "NA", 400), (4, "APAC", 800)]),
    "orders": ({"order_id": "INTEGER", "customer_id": "INTEGER", "amount": "INTEGER", "ordered_at": "TIMESTAMP"},
               ORDERS),
    "tickets": ({"ticket_id": "INTEGER", "customer_id": "INTEGER", "opened_at": "TIMESTAMP"}, [
        (100, 1, t("2024-01-10")), (101, 1, t("2024-03-05")), (102, 3, t("2024-03-06")), (103, 4, t("2024-04-01")),
        (104, 4, t("2024-04-02")), (105, 4, t("2024-04-03")), (106, None, t("2024-02-15")),
    ]),
}


def test_fanout_customer_metric_by_order_dimension_is_refused(service: Service) -> None:
    """Trap: summing customer credit over customers joined to their orders counts customer 1's credit three times.
    There is no right answer grouped by an order dimension, so the query is refused; so is a filter on an order
    dimension, which would join the orders in the same way."""
    with pytest.raises(FanoutError):
        service.query(SemanticQuery(("customer.total_credit",), ("order.amount",)))
    with pytest.raises(FanoutError):
        service.query(SemanticQuery(("customer.total_credit", "order.revenue"), ("order.order_id",)))
    with pytest.raises(FanoutError):
        service.query(SemanticQuery(("customer.total_credit",), ("customer.region",), Filter.parse("order.amount > 20")))


def test_fanout_metrics_of_both_sides_by_customer_dimension(ask: Ask) -> None:
    """Trap: one join of customers and orders repeats each customer once per order, so EU credit would be
    100 * 3 + 200 = 500 and a customer without orders would vanish. Each side is aggregated over its own rows."""
    assert ask(("customer.total_credit", "order.revenue", "order.order_count"), ("customer.region",)) == {
        "APAC": (800, None, None),  # no orders: the customer side still reports its group
        "EU": (300, 100, 4),  # credit 100 + 200 once each, though customer 1 has three orders
        "NA": (400, 110, 2),
        None: (None, 150, 2),  # the orphan orders 16 and 17
    }


def test_chasm_trap_two_facts_by_shared_dimension(ask: Ask) -> None:
    """Trap: orders and tickets both point at customer; joining both facts to customer pairs each of customer 1's
    three orders with each of its two tickets, so EU revenue would be 60 * 2 + 40 = 160 and EU tickets 6."""
    assert ask(("order.revenue", "ticket.ticket_count"), ("customer.region",)) == {
        "APAC": (None, 3),
        "EU": (100, 2),
        "NA": (110, 1),
        None: (150, 1),  # one NULL group: orphan orders and the ticket without a customer, stitched null-safely
    }


def test_orphan_facts_keep_their_rows(ask: Ask) -> None:
    """Trap: an inner join to customer drops order 16 (customer 99 does not exist) and order 17 (no customer).
    They stay, under NULL customer dimensions, and the groups add up to the fact table's total."""
    total, count = sum(amount for _, _, amount, _ in ORDERS), len(ORDERS)  # 360, 8
    by_region = ask(("order.revenue", "order.order_count"), ("customer.region",))
    assert by_region[None] == (150, 2)
    assert sum(r for r, _ in by_region.values()) == total
    assert sum(n for _, n in by_region.values()) == count
    assert ask(("order.revenue", "order.order_count")) == {(): (total, count)}
    # The customer key read from the joined customer row is NULL for both orphans (not 99 for order 16).
    assert ask(("order.order_count",), ("customer.customer_id",)) == {1: 3, 2: 1, 3: 2, None: 2}


def test_distinct_counts_across_joins(ask: Ask) -> None:
    """Trap: counting customers after a join to their orders (or summing per-group distinct counts) counts customer
    1 three times. Distinct buyers: EU {1, 2}, NA {3}, orphans {99} (the NULL key is not a value); in all
    {1, 2, 3, 99}."""
    assert ask(("order.buyers",), ("customer.region",)) == {"EU": 2, "NA": 1, None: 1}
    assert ask(("order.buyers",)) == {(): 4}
    assert ask(("order.buyers", "ticket.ticketing_customers")) == {(): (4, 3)}  # tickets: {1, 3, 4}


def test_stitching_keeps_groups_of_either_side(ask: Ask) -> None:
    """Trap: stitching two metrics with a left (or inner) join on the group drops the groups only one side has:
    customer 2 has orders but no tickets, customer 4 tickets but no orders. The side without rows in a group has
    no value there (NULL, as `fill: null` would give; zeros are asked for with `fill: zero`)."""
    assert ask(("order.order_count", "ticket.ticket_count"), ("customer.customer_id",)) == {
        1: (3, 2),
        2: (1, None),
        3: (2, 1),
        4: (None, 3),
        None: (2, 1),
    }


def test_ratio_over_two_entities_is_taken_after_aggregation(ask: Ask) -> None:
    """Trap: averaging per-customer ratios (EU: customer 1 has 60 / 2 = 30, customer 2 has no tickets, so 30) or
    dividing integers (360 / 7 = 51). The ratio of the sums: EU 100 / 2 = 50, NA 110 / 1, APAC has no revenue,
    orphans 150 / 1; overall 360 / 7."""
    by_region = ask(("customer.revenue_per_ticket",), ("customer.region",))
    assert by_region == {"APAC": None, "EU": pytest.approx(50.0), "NA": pytest.approx(110.0),
                         None: pytest.approx(150.0)}
    assert ask(("customer.revenue_per_ticket",)) == {(): pytest.approx(360 / 7)}


def test_each_metric_on_its_own_time_axis(ask: Ask) -> None:
    """Trap: reading every metric on one entity's time, or joining the facts on the period (a chasm by month).
    `time:month` is each metric's own time: orders by ordered_at, tickets by opened_at. Order 16 (January 31st
    23:59:59) is January, order 17 (February 1st 00:00:00) February."""
    assert ask(("order.revenue", "ticket.ticket_count"), ("time:month",)) == {
        d("2024-01-01"): (120, 1),  # orders 10, 13, 16; ticket 100
        d("2024-02-01"): (130, 1),  # orders 11, 12, 17; ticket 106
        d("2024-03-01"): (110, 2),  # orders 14, 15; tickets 101, 102
        d("2024-04-01"): (None, 3),  # tickets 103, 104, 105
    }
    assert ask(("order.revenue", "ticket.ticket_count"), ("customer.region", "time:month")) == {
        ("APAC", d("2024-04-01")): (None, 3),
        ("EU", d("2024-01-01")): (50, 1),  # orders 10, 13; ticket 100
        ("EU", d("2024-02-01")): (50, None),  # orders 11, 12
        ("EU", d("2024-03-01")): (None, 1),  # ticket 101
        ("NA", d("2024-03-01")): (110, 1),
        (None, d("2024-01-01")): (70, None),
        (None, d("2024-02-01")): (80, 1),
    }


def test_median_and_percentile_are_continuous_over_each_fact_once(ask: Ask) -> None:
    """Trap: a discrete percentile (EU's median would be 20 or 30), or one over joined rows that repeat facts.
    Interpolated over the sorted amounts: EU 10 20 30 40: median 25, 90th percentile at position 0.9 * 3 = 2.7,
    30 + 0.7 * 10 = 37; NA 50 60: 55 and 59; orphans 70 80: 75 and 79; all eight: 45 and 70 + 0.3 * 10 = 73."""
    assert ask(("order.median_amount", "order.p90_amount"), ("customer.region",)) == {
        "EU": (pytest.approx(25.0), pytest.approx(37.0)),
        "NA": (pytest.approx(55.0), pytest.approx(59.0)),
        None: (pytest.approx(75.0), pytest.approx(79.0)),
    }
    assert ask(("order.median_amount", "order.p90_amount", "ticket.ticket_count")) == {
        (): (pytest.approx(45.0), pytest.approx(73.0), 7)}
