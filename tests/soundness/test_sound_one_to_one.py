"""A one-to-one relationship is followed both ways: one profile per customer, declared on the profile.

    customer  region      profile  customer  tier        order  customer  amount
    1         EU          10       1         gold        1      1         10
    2         US          20       2         silver      2      1         20
    3         EU                                         3      2         5
                                                         4      3         7

Customer 3 has no profile, so it (and its order 4) falls under a NULL tier; no row is dropped or repeated.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Ask = Callable[..., dict[Any, Any]]

MODEL = """
version: 1
name: one_to_one
entities:
  - name: customer
    table: customers
    key: customer_id
    dimensions: [{name: region}]
    metrics: [{name: customers, agg: count}]
  - name: profile
    table: profiles
    key: profile_id
    relationships: [{entity: customer, key: customer_id, type: one_to_one}]
    dimensions: [{name: tier}]
    metrics: [{name: profiles, agg: count}]
  - name: order
    table: orders
    key: order_id
    relationships: [{entity: customer, key: customer_id, type: many_to_one}]
    metrics: [{name: revenue, agg: sum, expr: amount}]
"""

TABLES = {
    "customers": ({"customer_id": "INTEGER", "region": "VARCHAR"}, [(1, "EU"), (2, "US"), (3, "EU")]),
    "profiles": ({"profile_id": "INTEGER", "customer_id": "INTEGER", "tier": "VARCHAR"},
                 [(10, 1, "gold"), (20, 2, "silver")]),
    "orders": ({"order_id": "INTEGER", "customer_id": "INTEGER", "amount": "INTEGER"},
               [(1, 1, 10), (2, 1, 20), (3, 2, 5), (4, 3, 7)]),
}


def test_declared_direction(ask: Ask) -> None:
    assert ask(("profile.profiles",), ("customer.region",)) == {"EU": 1, "US": 1}


def test_reverse_direction(ask: Ask) -> None:
    """customer -> profile, against the declaration: each customer once, customer 3 under no tier."""
    assert ask(("customer.customers",), ("profile.tier",)) == {"gold": 1, "silver": 1, None: 1}
    assert ask(("customer.customers",), (), "profile.tier = 'gold'") == {(): 1}


def test_reverse_direction_after_a_many_to_one(ask: Ask) -> None:
    """order -> customer -> profile: revenue 30 gold, 5 silver, 7 (customer 3) without a tier."""
    assert ask(("order.revenue",), ("profile.tier",)) == {"gold": 30, "silver": 5, None: 7}
    assert ask(("order.revenue", "profile.profiles"), ("profile.tier",)) == {
        "gold": (30, 1), "silver": (5, 1), None: (7, None)}
