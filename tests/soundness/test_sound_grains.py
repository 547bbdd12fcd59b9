"""Time grains: ISO weeks, quarters, years, and half-open periods.

Rows (amounts are powers of two, so each expected sum names exactly the sales it holds):

    sale  sold_at                     amount   ISO week starts
    1     2023-12-31 12:00:00  Sun    1        2023-12-25
    2     2024-01-01 00:00:00  Mon    2        2024-01-01
    3     2024-02-29 23:59:59  Thu    4        2024-02-26   last second of February
    4     2024-03-01 00:00:00  Fri    8        2024-02-26   first instant of March
    5     2024-03-03 23:59:59  Sun    16       2024-02-26   a Sunday: still the week of Monday 02-26
    6     2024-03-04 00:00:00  Mon    32       2024-03-04   first instant of a week
    7     2024-03-31 23:59:59  Sun    64       2024-03-25   last second of the first quarter
    8     2024-04-01 00:00:00  Mon    128      2024-04-01   first instant of the second quarter
    9     2024-12-29 10:00:00  Sun    256      2024-12-23
    10    2025-01-01 10:00:00  Wed    512      2024-12-30   an ISO week that starts in the year before

Periods are half-open, [start, next start): an instant exactly at midnight on the 1st belongs to the new month.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

import pytest

Ask = Callable[..., dict[Any, Any]]  # the `ask` fixture of conftest.py
d = date.fromisoformat

MODEL = """
version: 1
name: grains
entities:
  - name: sale
    table: sales
    key: sale_id
    time: sold_at
    dimensions:
      - {name: sold_at, type: time, grain: second}
    metrics:
      - {name: amount, agg: sum, expr: amount}
"""

SALES = [
    (1, "2023-12-31 12:00:00", 1), (2, "2024-01-01 00:00:00", 2), (3, "2024-02-29 23:59:59", 4),
    (4, "2024-03-01 00:00:00", 8), (5, "2024-03-03 23:59:59", 16), (6, "2024-03-04 00:00:00", 32),
    (7, "2024-03-31 23:59:59", 64), (8, "2024-04-01 00:00:00", 128), (9, "2024-12-29 10:00:00", 256),
    (10, "2025-01-01 10:00:00", 512),
]
TABLES = {
    "sales": ({"sale_id": "INTEGER", "sold_at": "TIMESTAMP", "amount": "INTEGER"},
              [(n, datetime.fromisoformat(at), amount) for n, at, amount in SALES]),
}


def test_iso_weeks_start_on_monday(ask: Ask) -> None:
    """Trap: weeks starting on Sunday (sale 5 would open a week of its own on 2024-03-03 and sale 1 on 2023-12-31),
    or weeks cut at the new year (sale 10 belongs to the week of Monday 2024-12-30)."""
    expected = {
        d("2023-12-25"): 1,
        d("2024-01-01"): 2,
        d("2024-02-26"): 28,  # 4 + 8 + 16: Thursday, Friday and Sunday
        d("2024-03-04"): 32,
        d("2024-03-25"): 64,
        d("2024-04-01"): 128,
        d("2024-12-23"): 256,
        d("2024-12-30"): 512,
    }
    assert ask(("sale.amount",), ("time:week",)) == expected
    # The same, computed from the rows in plain Python: the Monday on or before each sale's date.
    weeks: dict[date, int] = {}
    for _, at, amount in TABLES["sales"][1]:
        monday = at.date() - timedelta(days=at.weekday())
        weeks[monday] = weeks.get(monday, 0) + amount
    assert expected == weeks


def test_quarters_and_years(ask: Ask) -> None:
    """Trap: quarters that start in the wrong month, or a last second of March (sale 7) pushed into the second
    quarter."""
    assert ask(("sale.amount",), ("sale.sold_at:quarter",)) == {
        d("2023-10-01"): 1,
        d("2024-01-01"): 126,  # 2 + 4 + 8 + 16 + 32 + 64
        d("2024-04-01"): 128,
        d("2024-10-01"): 256,
        d("2025-01-01"): 512,
    }
    assert ask(("sale.amount",), ("time:year",)) == {d("2023-01-01"): 1, d("2024-01-01"): 510, d("2025-01-01"): 512}


def test_periods_are_half_open(ask: Ask) -> None:
    """Trap: closed periods `[start, end]` with end = next start, or end = start + 30 days: sale 4 at exactly
    2024-03-01 00:00:00 would count in February too, sale 3 at 23:59:59 on the 29th would be lost or moved."""
    assert ask(("sale.amount",), ("time:month",)) == {
        d("2023-12-01"): 1,
        d("2024-01-01"): 2,
        d("2024-02-01"): 4,  # sale 3 only
        d("2024-03-01"): 120,  # 8 + 16 + 32 + 64: from sale 4 at midnight to sale 7 at 23:59:59 on the 31st
        d("2024-04-01"): 128,
        d("2024-12-01"): 256,
        d("2025-01-01"): 512,
    }
    assert ask(("sale.amount",), ("time:day",), "time:day >= '2024-02-29' and time:day <= '2024-03-01'") == {
        d("2024-02-29"): 4,
        d("2024-03-01"): 8,
    }
    # A filter on the instant with the half-open bounds of March holds exactly March's sales.
    assert ask(("sale.amount",), (), "sale.sold_at >= '2024-03-01' and sale.sold_at < '2024-04-01'") == {(): 120}
    assert ask(("sale.amount",), (), "time:month = '2024-03-01'") == {(): 120}


def test_negated_time_filters_at_a_grain(ask: Ask) -> None:
    """Trap: a negation that binds to half of a rewritten condition. All sales come to 1023; outside March
    1023 - 120 = 903; outside February and March 1023 - 4 - 120 = 899."""
    assert ask(("sale.amount",), (), "not (time:month = '2024-03-01')") == {(): 903}
    assert ask(("sale.amount",), (), "not (time:month >= '2024-02-01' and time:month <= '2024-03-01')") == {(): 899}


@pytest.mark.parametrize(("where", "expected"), [
    ("not time:month = '2024-03-01'", 903),
    ("not time:month between '2024-02-01' and '2024-03-01'", 899),
])
def test_negated_time_filters_at_a_grain_without_parentheses(ask: Ask, where: str, expected: int) -> None:
    """The same negations written without parentheses: `not` applies to the whole comparison."""
    assert ask(("sale.amount",), (), where) == {(): expected}
