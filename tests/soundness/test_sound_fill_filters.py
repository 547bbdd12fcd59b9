"""Gap filling under metric filters, gap filling of stocks, and division by zero.

Sales (UTC; Tokyo is UTC+9):

    sale  sold_at            Tokyo              region  amount  refund
    1     2024-01-01 10:00   2024-01-01 19:00   EU      50      0
    2     2024-01-01 12:00   2024-01-01 21:00   EU      80      0
    3     2024-01-03 09:00   2024-01-03 18:00   US      40      10
    4     2024-01-04 23:30   2024-01-05 08:30   US      200     0

Revenue per UTC day, 01-01..01-05: 130, (none), 40, 200, (none); per Tokyo day: 130, (none), 40, (none), 200.
EU refunds nothing (130 / 0), US refunds 10 (240 / 10 = 24); on 01-04 revenue is 200 and refunds 0.

Stock snapshots (semi-additive, last): 2024-01-01 08:00 qty 5, 2024-01-01 20:00 qty 7, 2024-01-03 08:00 qty 2.
The last count of 01-01 is 7, of 01-03 is 2; 01-02 has no count at all (a stock is no sum: not 0).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import pytest

from api.cli.output import render_result
from semantic.plan.planner import OutputColumn
from semantic.service import Result

Ask = Callable[..., dict[Any, Any]]
d = date.fromisoformat
TOKYO = "Asia/Tokyo"

MODEL = """
version: 1
name: fill_filters
entities:
  - name: sale
    table: sales
    key: sale_id
    time: sold_at
    dimensions:
      - {name: sold_at, type: time, grain: second}
      - {name: region}
    metrics:
      - {name: revenue, agg: sum, expr: amount}
      - {name: sales, agg: count}
      - {name: refunded, agg: sum, expr: refund}
      - {name: revenue_per_refund, expr: "revenue / refunded"}
      - {name: refund_share, expr: "refunded / revenue"}
  - name: stock
    table: stock
    key: snapshot_id
    time: taken_at
    dimensions:
      - {name: taken_at, type: time, grain: second}
    metrics:
      - {name: on_hand, agg: sum, expr: qty, semi_additive: last}
"""

TABLES = {
    "sales": ({"sale_id": "INTEGER", "sold_at": "TIMESTAMP", "region": "VARCHAR", "amount": "DOUBLE PRECISION",
               "refund": "DOUBLE PRECISION"}, [
        (1, datetime(2024, 1, 1, 10), "EU", 50.0, 0.0),
        (2, datetime(2024, 1, 1, 12), "EU", 80.0, 0.0),
        (3, datetime(2024, 1, 3, 9), "US", 40.0, 10.0),
        (4, datetime(2024, 1, 4, 23, 30), "US", 200.0, 0.0),
    ]),
    "stock": ({"snapshot_id": "INTEGER", "taken_at": "TIMESTAMP", "qty": "INTEGER"}, [
        (1, datetime(2024, 1, 1, 8), 5),
        (2, datetime(2024, 1, 1, 20), 7),
        (3, datetime(2024, 1, 3, 8), 2),
    ]),
}

DAYS = "time:day >= '2024-01-01' and time:day <= '2024-01-05'"


@pytest.mark.parametrize("zone, kept, low", [
    (None, {d("2024-01-01"): 130, d("2024-01-04"): 200},
     {d("2024-01-02"): 0, d("2024-01-03"): 40, d("2024-01-05"): 0}),
    (TOKYO, {d("2024-01-01"): 130, d("2024-01-05"): 200},
     {d("2024-01-02"): 0, d("2024-01-03"): 40, d("2024-01-04"): 0}),
])
def test_fill_adds_periods_before_metric_filters(ask: Ask, zone: str | None, kept: dict[date, int],
                                                 low: dict[date, int]) -> None:
    """Class 5: a filled period is an empty period (revenue 0 with zero), filtered like any other: `> 100` drops it,
    `< 100` keeps it, and a period the filter dropped never comes back as 0."""
    assert ask(("sale.revenue",), ("time:day",), f"{DAYS} and sale.revenue > 100", fill="zero",
               timezone=zone) == kept
    assert ask(("sale.revenue",), ("time:day",), f"{DAYS} and sale.revenue < 100", fill="zero",
               timezone=zone) == low
    assert ask(("sale.sales",), ("time:day",), f"{DAYS} and sale.revenue > 100", fill="null",
               timezone=zone) == {day: 1 if day == max(kept) else 2 for day in kept}


def test_fill_gives_a_stock_no_value_for_an_empty_period(ask: Ask) -> None:
    """Class 6: the last count of a day with no count is unknown (NULL), not 0, even with fill zero."""
    where = "time:day >= '2024-01-01' and time:day <= '2024-01-03'"
    expected = {d("2024-01-01"): 7, d("2024-01-02"): None, d("2024-01-03"): 2}
    assert ask(("stock.on_hand",), ("time:day",), where, fill="zero") == expected
    assert ask(("stock.on_hand",), ("time:day",), where, fill="null") == expected


def test_division_by_zero_is_null(ask: Ask) -> None:
    """Class 7: EU's revenue over its refunds is 130 / 0: NULL (not Infinity, not an error); US is 240 / 10."""
    assert ask(("sale.revenue_per_refund", "sale.refund_share"), ("sale.region",)) == {
        "EU": (None, 0.0), "US": (24.0, 10 / 240)}
    got = ask(("sale.revenue_per_refund",), ("time:day",), DAYS, fill="zero")
    assert got == {d("2024-01-01"): None, d("2024-01-02"): None, d("2024-01-03"): 4.0, d("2024-01-04"): None,
                   d("2024-01-05"): None}  # an empty day refunds 0 of 0


def test_json_output_has_no_infinity() -> None:
    """JSON has no Infinity or NaN: a non-finite number is written as null, never as invalid JSON."""
    result = Result((OutputColumn("x", "x", "number", "metric"),), ((float("inf"),), (float("nan"),), (1.5,)),
                    "SELECT 1", False, "")
    assert json.loads(render_result(result, "json"))["rows"] == [[None], [None], [1.5]]
