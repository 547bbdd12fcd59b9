"""Semi-additive (snapshot) metrics: summed across accounts, never over time.

Rows (balances counted per account per day; expected numbers read off by hand):

    balances  account  region  day         amount
              1        north   2024-01-30  10
              2        north   2024-01-30  20
              1        north   2024-01-31  11      <- last count of January for north: 11 + NULL
              2        north   2024-01-31  NULL
              3        south   2024-01-15  5       <- south's last January count is the 15th: 5
              3        south   2024-02-01  6
              4        south   NULL        100     <- no day: never the last (or first) count
              5        west    2024-01-10  7
              5        west    2024-01-20  NULL    <- west's last January count has no amount: NULL, not 7

January, north: the last day is the 31st; its counts are 11 and NULL, so the balance is 11 (sum skips the NULL),
not 10 + 20 + 11 (summed over time) nor 30 (the 30th). South: 5 in January, 6 in February. All time, last count
per region: north 11 (31st), south 6 (Feb 1st). First count of January: north 30 (the 30th), south 5.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from typing import Any

Ask = Callable[..., dict[Any, Any]]
d = date.fromisoformat

MODEL = """
version: 1
name: snapshots
entities:
  - name: balance
    table: balances
    key: [account_id, day]
    time: day
    dimensions:
      - {name: region}
      - {name: day, type: time, grain: day}
    metrics:
      - {name: closing, agg: sum, expr: amount, semi_additive: last}
      - {name: opening, agg: sum, expr: amount, semi_additive: first}
      - {name: counted, agg: count, expr: amount, semi_additive: last}
"""

TABLES = {
    "balances": ({"account_id": "INTEGER", "region": "VARCHAR", "day": "DATE", "amount": "INTEGER"},
                 [(1, "north", d("2024-01-30"), 10), (2, "north", d("2024-01-30"), 20),
                  (1, "north", d("2024-01-31"), 11), (2, "north", d("2024-01-31"), None),
                  (3, "south", d("2024-01-15"), 5), (3, "south", d("2024-02-01"), 6),
                  (4, "south", None, 100), (5, "west", d("2024-01-10"), 7), (5, "west", d("2024-01-20"), None)]),
}


def test_closing_balance_is_the_last_count_not_a_sum_over_time(ask: Ask) -> None:
    """Trap: summing balances over the days of a month (41 for north), or taking each account's own last day."""
    assert ask(("balance.closing",), ("balance.region", "time:month")) == {
        ("north", d("2024-01-01")): 11, ("south", d("2024-01-01")): 5, ("south", d("2024-02-01")): 6,
        ("west", d("2024-01-01")): None}


def test_opening_balance_is_the_first_count(ask: Ask) -> None:
    assert ask(("balance.opening",), ("balance.region", "time:month")) == {
        ("north", d("2024-01-01")): 30, ("south", d("2024-01-01")): 5, ("south", d("2024-02-01")): 6,
        ("west", d("2024-01-01")): 7}


def test_without_time_the_latest_count_and_timeless_rows_never_count(ask: Ask) -> None:
    """Trap: a row with no day (account 4, 100) taken as the latest, or NULLs sorted last in a descending pick."""
    assert ask(("balance.closing", "balance.opening"), ("balance.region",)) == {
        "north": (11, 30), "south": (6, 5), "west": (None, 7)}
    assert ask(("balance.closing",)) == {(): 6}  # the latest day overall is Feb 1st: south's 6


def test_a_null_measure_at_the_last_time_is_not_replaced_by_an_earlier_one(ask: Ask) -> None:
    """Trap: an arg-max that skips NULL values returns west's 7 (the 10th) when its last count (the 20th) has no
    amount. Counting amounts: north's 31st has one (account 2's is NULL), west's 20th none."""
    assert ask(("balance.counted",), ("balance.region", "time:month")) == {
        ("north", d("2024-01-01")): 1, ("south", d("2024-01-01")): 1, ("south", d("2024-02-01")): 1,
        ("west", d("2024-01-01")): 0}
