"""A per-query time zone applies before truncation (DESIGN.md, Query semantics: Time); stored naive times are UTC.

Rows (pages are powers of two, so each expected sum names exactly the visits it holds). Paris is UTC+1 until
2024-03-31 01:00 UTC, then UTC+2:

    visit  visited_at (UTC)      in Paris                      pages
    1      2024-01-31 22:30:00   2024-01-31 23:30  Wednesday   1
    2      2024-01-31 23:30:00   2024-02-01 00:30  Thursday    2    February in Paris, January in UTC
    3      2024-03-03 23:30:00   2024-03-04 00:30  Monday      4    a new ISO week in Paris, still Sunday in UTC
    4      2024-03-30 23:30:00   2024-03-31 00:30  Sunday      8    before the clocks move (UTC+1)
    5      2024-03-31 21:59:00   2024-03-31 23:59  Sunday      16   after the clocks move (UTC+2)
    6      2024-03-31 22:30:00   2024-04-01 00:30  Monday      32   April (and the second quarter) in Paris

Paris days: 01-31 {1}, 02-01 {2}, 03-04 {3}, 03-31 {4, 5}, 04-01 {6}. UTC days: 01-31 {1, 2}, 03-03 {3}, 03-30 {4},
03-31 {5, 6}.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from semantic.query import SemanticQuery
from semantic.service import Service

Ask = Callable[..., dict[Any, Any]]  # the `ask` fixture of conftest.py
d = date.fromisoformat
PARIS = "Europe/Paris"

MODEL = """
version: 1
name: timezones
entities:
  - name: visit
    table: visits
    key: visit_id
    time: visited_at
    dimensions:
      - {name: visited_at, type: time, grain: second}
    metrics:
      - {name: visits, agg: count}
      - {name: pages, agg: sum, expr: pages}
      - {name: pages_to_date, metric: pages, window: unbounded}
      - {name: pages_mtd, metric: pages, grain_to_date: month}
"""

TABLES = {
    "visits": ({"visit_id": "INTEGER", "visited_at": "TIMESTAMP", "pages": "INTEGER"}, [
        (1, datetime(2024, 1, 31, 22, 30), 1),
        (2, datetime(2024, 1, 31, 23, 30), 2),
        (3, datetime(2024, 3, 3, 23, 30), 4),
        (4, datetime(2024, 3, 30, 23, 30), 8),
        (5, datetime(2024, 3, 31, 21, 59), 16),
        (6, datetime(2024, 3, 31, 22, 30), 32),
    ]),
}


def test_time_zone_applies_before_truncation(service: Service) -> None:
    """Trap: truncating in UTC and converting the period start afterwards. In Paris, visit 2 happens at 00:30 on
    February 1st, so it belongs to February."""
    query = SemanticQuery(("visit.visits",), ("time:month",), timezone=PARIS)
    assert sorted(service.query(query).rows) == [(d("2024-01-01"), 1), (d("2024-02-01"), 1), (d("2024-03-01"), 3),
                                                 (d("2024-04-01"), 1)]


def test_without_a_time_zone_periods_are_utc(ask: Ask) -> None:
    """Trap: reading naive stored times in the server's local zone. Without a zone, periods are cut in UTC."""
    assert ask(("visit.pages",), ("time:day",)) == {
        d("2024-01-31"): 3, d("2024-03-03"): 4, d("2024-03-30"): 8, d("2024-03-31"): 48}
    assert ask(("visit.pages",), ("time:month",)) == {d("2024-01-01"): 3, d("2024-03-01"): 60}


def test_days_weeks_and_quarters_across_a_clock_change(ask: Ask) -> None:
    """Trap: one fixed offset for the whole query (UTC+1 would put visit 6 at 23:30 on March 31st), or weeks cut
    in UTC (visit 3 would stay in the week of Monday 02-26)."""
    assert ask(("visit.pages",), ("time:day",), timezone=PARIS) == {
        d("2024-01-31"): 1, d("2024-02-01"): 2, d("2024-03-04"): 4, d("2024-03-31"): 24, d("2024-04-01"): 32}
    assert ask(("visit.pages",), ("time:week",), timezone=PARIS) == {
        d("2024-01-29"): 3, d("2024-03-04"): 4, d("2024-03-25"): 24, d("2024-04-01"): 32}
    assert ask(("visit.pages",), ("visit.visited_at:quarter",), timezone=PARIS) == {
        d("2024-01-01"): 31, d("2024-04-01"): 32}


def test_time_filters_are_cut_in_the_zone(ask: Ask) -> None:
    """Trap: applying the bounds of a filtered period in UTC. Paris's March 31st runs from 2024-03-30 23:00 to
    2024-03-31 22:00 UTC (23 hours): visits 4 and 5, not 5 and 6."""
    assert ask(("visit.pages",), (), "time:day = '2024-03-31'", timezone=PARIS) == {(): 24}
    assert ask(("visit.pages",), (), "time:day = '2024-03-31'") == {(): 48}
    assert ask(("visit.pages",), (), "time:month = '2024-02-01'", timezone=PARIS) == {(): 2}
    assert ask(("visit.pages",), (), "time:month >= '2024-04-01'", timezone=PARIS) == {(): 32}
    assert ask(("visit.pages",), ("time:month",), "visit.visited_at:month < '2024-03-01'", timezone=PARIS) == {
        d("2024-01-01"): 1, d("2024-02-01"): 2}


def test_cumulative_metrics_in_the_zone(ask: Ask) -> None:
    """Trap: accumulating or resetting on UTC periods. Month-to-date restarts on the 1st in Paris: visit 2 opens
    February, visit 6 opens April; a time filter still only selects the reported periods."""
    assert ask(("visit.pages_mtd",), ("time:day",), timezone=PARIS) == {
        d("2024-01-31"): 1, d("2024-02-01"): 2, d("2024-03-04"): 4, d("2024-03-31"): 28, d("2024-04-01"): 32}
    assert ask(("visit.pages_to_date",), ("time:month",), "time:month >= '2024-03-01'", timezone=PARIS) == {
        d("2024-03-01"): 31, d("2024-04-01"): 63}
