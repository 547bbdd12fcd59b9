"""Rolling and grain-to-date distinct counts are exact: distinct values over the window's rows, never a sum of
per-period distinct counts (a customer active on two days of the window counts once).

    day         customer        active customers, the 7 days ending that day    month to date   ever
    2024-01-01  1               {1}          1                                  1               1
    2024-01-02  2, 1            {1, 2}       2                                  2               2
    2024-01-05  3               {1, 2, 3}    3  (summing days would give 4)     3               3
    2024-01-09  1               {3, 1}       2  (01-03..01-09)                  3               3
    2024-02-01  2               {2}          1  (01-26..02-01)                  1               3

ISO weeks, each the 7 days ending with the week's end: 01-01..01-07 {1, 2, 3} = 3; 01-08..01-14 {1} = 1;
01-29..02-04 {2} = 1.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

Ask = Callable[..., dict[Any, Any]]
d = date.fromisoformat

MODEL = """
version: 1
name: distinct_windows
entities:
  - name: visit
    table: visits
    key: visit_id
    time: visited_at
    dimensions:
      - {name: visited_at, type: time, grain: second}
    metrics:
      - {name: active, agg: count_distinct, expr: customer_id}
      - {name: active_7d, metric: active, window: 7 days}
      - {name: active_mtd, metric: active, grain_to_date: month}
      - {name: active_ever, metric: active, window: unbounded}
"""

TABLES = {
    "visits": ({"visit_id": "INTEGER", "visited_at": "TIMESTAMP", "customer_id": "INTEGER"}, [
        (1, datetime(2024, 1, 1, 9), 1),
        (2, datetime(2024, 1, 2, 10), 2),
        (3, datetime(2024, 1, 2, 23, 59), 1),
        (4, datetime(2024, 1, 5, 0, 0), 3),
        (5, datetime(2024, 1, 9, 12), 1),
        (6, datetime(2024, 2, 1, 8), 2),
    ]),
}

DAYS = [d("2024-01-01"), d("2024-01-02"), d("2024-01-05"), d("2024-01-09"), d("2024-02-01")]


def test_rolling_distinct_count_by_day(ask: Ask) -> None:
    assert ask(("visit.active_7d",), ("time:day",)) == dict(zip(DAYS, [1, 2, 3, 2, 1], strict=True))


def test_grain_to_date_and_unbounded_distinct_counts(ask: Ask) -> None:
    assert ask(("visit.active_mtd", "visit.active_ever"), ("time:day",)) == dict(zip(
        DAYS, [(1, 1), (2, 2), (3, 3), (3, 3), (1, 3)], strict=True))
    assert ask(("visit.active_ever",), ("time:month",)) == {d("2024-01-01"): 3, d("2024-02-01"): 3}


def test_rolling_distinct_count_by_week_and_with_a_time_filter(ask: Ask) -> None:
    assert ask(("visit.active_7d",), ("time:week",)) == {d("2024-01-01"): 3, d("2024-01-08"): 1,
                                                        d("2024-01-29"): 1}
    assert ask(("visit.active_7d", "visit.active"), ("time:day",), "time:day >= '2024-01-05'") == {
        d("2024-01-05"): (3, 1), d("2024-01-09"): (2, 1), d("2024-02-01"): (1, 1)}
