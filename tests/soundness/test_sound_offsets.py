"""Period-over-period metrics at month ends, leap days and sparse series.

Rows (each sale at noon; amounts are powers of two, so each expected value names the day it comes from):

    sale  sold_at      amount
    p     2023-02-28   64
    q     2023-03-01   128
    r     2024-02-28   1
    s     2024-02-29   2      leap day
    m     2024-03-01   512
    u     2024-03-28   32
    v     2024-03-29   4
    w     2024-03-30   8
    x     2024-03-31   16

An offset is calendar arithmetic, clamped to the end of a shorter month: one month before 2024-03-29, -30 and -31
is 2024-02-29 (not 30 days before: 2024-03-01, 2024-02-29, 2024-02-28 ... nor "no such day"); one year before
2024-02-29 is 2023-02-28 (not 365 days before: 2023-03-01). NULL where the earlier period has no data.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

Ask = Callable[..., dict[Any, Any]]  # the `ask` fixture of conftest.py
d = date.fromisoformat

MODEL = """
version: 1
name: offsets
entities:
  - name: sale
    table: sales
    key: sale_id
    time: sold_at
    dimensions:
      - {name: sold_at, type: time, grain: second}
    metrics:
      - {name: amount, agg: sum, expr: amount}
      - {name: amount_last_month, metric: amount, offset: 1 month}
      - {name: amount_last_year, metric: amount, offset: 1 year}
"""

TABLES = {
    "sales": ({"sale_id": "VARCHAR", "sold_at": "TIMESTAMP", "amount": "INTEGER"}, [
        (name, datetime.fromisoformat(f"{day} 12:00:00"), amount) for name, day, amount in [
            ("p", "2023-02-28", 64), ("q", "2023-03-01", 128), ("r", "2024-02-28", 1), ("s", "2024-02-29", 2),
            ("m", "2024-03-01", 512), ("u", "2024-03-28", 32), ("v", "2024-03-29", 4), ("w", "2024-03-30", 8),
            ("x", "2024-03-31", 16),
        ]
    ]),
}

OFFSETS = ("sale.amount", "sale.amount_last_month", "sale.amount_last_year")


def test_one_month_back_at_day_grain_clamps_to_the_month_end(ask: Ask) -> None:
    """Trap: "1 month" as 30 days (2024-03-31 would read 2024-03-01's 512), or as the same day number (2024-03-30
    and -31 would find nothing in February)."""
    got = ask(OFFSETS, ("time:day",))
    assert {day: last_month for day, (_, last_month, _) in got.items()} == {
        d("2023-02-28"): None,
        d("2023-03-01"): None,
        d("2024-02-28"): None,  # 2024-01-28 has no sale
        d("2024-02-29"): None,
        d("2024-03-01"): None,  # 2024-02-01
        d("2024-03-28"): 1,  # 2024-02-28
        d("2024-03-29"): 2,  # 2024-02-29
        d("2024-03-30"): 2,  # 2024-02-30 does not exist: 2024-02-29
        d("2024-03-31"): 2,  # 2024-02-31 does not exist: 2024-02-29
    }
    assert {day: amount for day, (amount, _, _) in got.items()} == {  # one sale a day
        when.date(): amount for _, when, amount in TABLES["sales"][1]}


def test_one_year_back_from_a_leap_day(ask: Ask) -> None:
    """Trap: "1 year" as 365 days: 2024-02-29 would read 2023-03-01's 128 instead of 2023-02-28's 64."""
    got = ask(OFFSETS, ("time:day",))
    assert {day: last_year for day, (_, _, last_year) in got.items() if last_year is not None} == {
        d("2024-02-28"): 64,  # 2023-02-28
        d("2024-02-29"): 64,  # 2023-02-29 does not exist: 2023-02-28
        d("2024-03-01"): 128,  # 2023-03-01
    }


def test_offsets_at_month_and_quarter_grain(ask: Ask) -> None:
    """Trap: taking the previous row of a sparse series: the month before 2024-02 has no data, so its last month
    is NULL, not 2023-03's 128. Months: 2023-02 64, 2023-03 128, 2024-02 1 + 2 = 3, 2024-03 512 + 32 + 4 + 8 + 16
    = 572."""
    assert ask(OFFSETS, ("sale.sold_at:month",)) == {
        d("2023-02-01"): (64, None, None),
        d("2023-03-01"): (128, 64, None),
        d("2024-02-01"): (3, None, 64),  # 2024-01 has no data
        d("2024-03-01"): (572, 3, 128),
    }
    assert ask(("sale.amount", "sale.amount_last_year"), ("time:quarter",)) == {
        d("2023-01-01"): (192, None),
        d("2024-01-01"): (575, 192),
    }


def test_time_filter_selects_periods_but_offsets_reach_back(ask: Ask) -> None:
    """Trap: filtering the rows before looking back, so the earlier period is gone and every offset is NULL."""
    assert ask(OFFSETS, ("time:month",), "time:month >= '2024-03-01'") == {d("2024-03-01"): (572, 3, 128)}
    assert ask(("sale.amount_last_month",), ("time:day",), "time:day >= '2024-03-28'") == {
        d("2024-03-28"): 1, d("2024-03-29"): 2, d("2024-03-30"): 2, d("2024-03-31"): 2}
