"""NULLs and empty input: NULL groups, aggregates over NULL values, and queries that match no rows.

Rows (every expected number below is read off them by hand):

    items   id color  weight        refunds   (no rows at all)
            1  red    5
            2  red    NULL
            3  NULL   7
            4  NULL   NULL
            5  blue   NULL
            6  blue   NULL

    events  id happened_at
            1  2024-02-29 12:00:00
            2  NULL
            3  2024-03-01 00:00:00

Per color: red sum 5, 2 rows, 1 weight; NULL sum 7, 2 rows, 1 weight; blue sum NULL (only NULLs), 2 rows, 0
weights. In all: sum 12, 6 rows, 2 weights, mean 6.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

Ask = Callable[..., dict[Any, Any]]  # the `ask` fixture of conftest.py
d = date.fromisoformat

MODEL = """
version: 1
name: nulls
entities:
  - name: item
    table: items
    key: item_id
    dimensions:
      - {name: color}
      - {name: weight, type: integer}
      - {name: is_heavy, type: boolean, expr: weight > 6}
    metrics:
      - {name: total_weight, agg: sum, expr: weight}
      - {name: item_count, agg: count}
      - {name: weighed, agg: count, expr: weight}
      - {name: distinct_weights, agg: count_distinct, expr: weight}
      - {name: mean_weight, agg: avg, expr: weight}
      - {name: heaviest, agg: max, expr: weight}
  - name: event
    table: events
    key: event_id
    time: happened_at
    dimensions:
      - {name: happened_at, type: time, grain: second}
    metrics:
      - {name: event_count, agg: count}
      - {name: events_to_date, metric: event_count, window: unbounded}
      - {name: events_last_month, metric: event_count, offset: 1 month}
  - name: refund
    table: refunds
    key: refund_id
    dimensions:
      - {name: reason}
    metrics:
      - {name: refund_count, agg: count}
      - {name: refunded, agg: sum, expr: amount}
"""

TABLES = {
    "items": ({"item_id": "INTEGER", "color": "VARCHAR", "weight": "INTEGER"},
              [(1, "red", 5), (2, "red", None), (3, None, 7), (4, None, None), (5, "blue", None),
               (6, "blue", None)]),
    "events": ({"event_id": "INTEGER", "happened_at": "TIMESTAMP"},
               [(1, datetime(2024, 2, 29, 12)), (2, None), (3, datetime(2024, 3, 1))]),
    "refunds": ({"refund_id": "INTEGER", "reason": "VARCHAR", "amount": "INTEGER"}, []),
}

MEASURES = ("item.total_weight", "item.item_count", "item.weighed", "item.distinct_weights", "item.mean_weight",
            "item.heaviest")


def test_null_dimension_values_form_their_own_group(ask: Ask) -> None:
    """Trap: dropping rows whose dimension is NULL (an inner join, a `WHERE color IS NOT NULL`), or folding them
    into another group. Items 3 and 4 have no color: one NULL group of 2 rows. A boolean over a NULL weight is
    NULL too: heavy {3}, not heavy {1}, unknown {2, 4, 5, 6}."""
    assert ask(("item.item_count",), ("item.color",)) == {"blue": 2, "red": 2, None: 2}
    assert ask(("item.item_count",), ("item.is_heavy",)) == {False: 1, True: 1, None: 4}
    assert ask(("item.item_count",), ("item.color",), "item.color is null") == {None: 2}


def test_null_times_form_their_own_period(ask: Ask) -> None:
    """Trap: dropping a fact without a time from the totals, or letting a time filter (or its negation) keep it.
    Event 2 has no time: it is its own NULL period; a condition on its time is unknown, so no filter selects it."""
    assert ask(("event.event_count",), ("time:day",)) == {d("2024-02-29"): 1, d("2024-03-01"): 1, None: 1}
    assert ask(("event.event_count",)) == {(): 3}
    assert ask(("event.event_count",), (), "time:day >= '2024-03-01'") == {(): 1}
    assert ask(("event.event_count",), (), "not (time:day >= '2024-03-01')") == {(): 1}
    assert ask(("event.event_count",), (), "time:day <> '2024-02-29T12:00:00'") == {(): 2}
    assert ask(("event.event_count",), (), "time:day is null") == {(): 1}
    # A running total as of a day counts the events up to that day; event 2 is not before any day.
    to_date = ask(("event.events_to_date",), ("time:day",))
    assert {day: n for day, n in to_date.items() if day is not None} == {d("2024-02-29"): 1, d("2024-03-01"): 2}


def test_null_period_has_no_earlier_period(ask: Ask) -> None:
    """Trap: an offset for the NULL period. A fact without a time has no month before it: NULL, not its own
    count (February 1 event, March 1 event, NULL period 1 event)."""
    assert ask(("event.event_count", "event.events_last_month"), ("time:month",)) == {
        d("2024-02-01"): (1, None),
        d("2024-03-01"): (1, 1),
        None: (1, None),
    }


def test_negated_impossible_time_filter_keeps_null_times_out(ask: Ask) -> None:
    """`not time:day = '2024-02-29T12:00:00'` is unknown for a NULL time, like `time:day <> '2024-02-29T12:00:00'`:
    events 1 and 3 only."""
    assert ask(("event.event_count",), (), "not (time:day = '2024-02-29T12:00:00')") == {(): 2}


def test_null_measures_follow_sql(ask: Ask) -> None:
    """Trap: treating NULL as 0 (coalescing), or counting NULL values. A sum over only NULLs is NULL, count of rows
    counts every row, count(expr) and count_distinct skip NULLs, avg divides by the non-NULL count."""
    assert ask(MEASURES, ("item.color",)) == {
        "blue": (None, 2, 0, 0, None, None),
        "red": (5, 2, 1, 1, 5, 5),
        None: (7, 2, 1, 1, 7, 7),
    }
    assert ask(MEASURES) == {(): (12, 6, 2, 2, 6, 7)}  # mean 12 / 2, not 12 / 6


def test_filter_matching_nothing_gives_no_rows(ask: Ask) -> None:
    """Trap: reporting a zero row for a group that has no rows. No item is green, and no refund exists."""
    assert ask(MEASURES, ("item.color",), "item.color = 'green'") == {}
    assert ask(("refund.refund_count", "refund.refunded"), ("refund.reason",)) == {}


def test_no_dimensions_over_empty_input_gives_one_row(ask: Ask) -> None:
    """Trap: returning no row at all, or 0 for a sum. With no dimensions there is exactly one group, the whole
    (empty) input: count 0, count(expr) 0, sum/avg/max NULL."""
    assert ask(MEASURES, (), "item.color = 'green'") == {(): (None, 0, 0, 0, None, None)}
    assert ask(("refund.refund_count", "refund.refunded")) == {(): (0, None)}


def test_empty_entity_stitched_with_a_full_one(ask: Ask) -> None:
    """Trap: stitching a metric over empty input with another entity's metric drops the row or the zero. With no
    dimensions each entity has its one group, and the two are one row."""
    assert ask(("item.item_count", "refund.refund_count", "refund.refunded")) == {(): (6, 0, None)}
