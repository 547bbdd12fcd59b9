"""The time model (docs/time.md) on the three kinds of stored time, in zones west and east of UTC.

Rows: `ts` is a naive TIMESTAMP (a UTC instant), `tstz` the same instant as TIMESTAMP WITH TIME ZONE, `d` a DATE (a
calendar day of its own). New York is UTC-5 until 2024-03-10 07:00 UTC, then UTC-4 (its March 10th has 23 hours:
05:00 UTC to 04:00 UTC next day); Tokyo is UTC+9. Pages are powers of two, so a sum names its rows.

    id  ts = tstz (UTC)     New York           Tokyo              d           patient  pages
    1   2025-01-01 11:00    2025-01-01 06:00   2025-01-01 20:00   2025-01-01  1        1
    2   2025-01-01 12:00    2025-01-01 07:00   2025-01-01 21:00   2025-01-01  1        2
    3   2025-01-01 13:00    2025-01-01 08:00   2025-01-01 22:00   2025-01-01  1        4
    4   2024-03-10 04:30    2024-03-09 23:30   2024-03-10 13:30   2024-03-10  2        8
    5   2024-03-10 05:00    2024-03-10 00:00   2024-03-10 14:00   2024-03-10  2        16
    6   2024-03-11 03:30    2024-03-10 23:30   2024-03-11 12:30   2024-03-11  2        32
    7   2024-03-11 04:30    2024-03-11 00:30   2024-03-11 13:30   2024-03-11  2        64
    8   2024-03-10 20:00    2024-03-10 16:00   2024-03-11 05:00   2024-03-11  2        128

Days: UTC 03-10 {4, 5, 8} = 152, 03-11 {6, 7} = 96; New York 03-09 {4} = 8, 03-10 {5, 6, 8} = 176, 03-11 {7} = 64;
Tokyo 03-10 {4, 5} = 24, 03-11 {6, 7, 8} = 224; 2025-01-01 {1, 2, 3} = 7 in all three. Patient 1 enrolled on
2024-01-01, patient 2 on 2024-07-01 (`patient.time`, a dimension that happens to be named time).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import pytest

Ask = Callable[..., dict[Any, Any]]
d = date.fromisoformat
NY, TOKYO = "America/New_York", "Asia/Tokyo"

MODEL = """
version: 1
name: time_model
entities:
  - name: ev
    table: events
    key: id
    time: ts
    relationships:
      - {entity: patient, key: patient_id, type: many_to_one}
    dimensions:
      - {name: ts, type: time}
      - {name: tstz, type: time, storage: timestamptz}
      - {name: d, type: time, storage: date}
    metrics:
      - {name: n, agg: count}
      - {name: pages, agg: sum, expr: pages}
      - {name: pages_to_date, metric: pages, window: unbounded}
  - name: patient
    table: patients
    key: patient_id
    dimensions:
      - {name: time, type: time, expr: enrolled_at}
"""

_ROWS = [  # id, ts (UTC), d, patient, pages
    (1, datetime(2025, 1, 1, 11), d("2025-01-01"), 1, 1),
    (2, datetime(2025, 1, 1, 12), d("2025-01-01"), 1, 2),
    (3, datetime(2025, 1, 1, 13), d("2025-01-01"), 1, 4),
    (4, datetime(2024, 3, 10, 4, 30), d("2024-03-10"), 2, 8),
    (5, datetime(2024, 3, 10, 5), d("2024-03-10"), 2, 16),
    (6, datetime(2024, 3, 11, 3, 30), d("2024-03-11"), 2, 32),
    (7, datetime(2024, 3, 11, 4, 30), d("2024-03-11"), 2, 64),
    (8, datetime(2024, 3, 10, 20), d("2024-03-11"), 2, 128),
]

TABLES = {
    "events": ({"id": "INTEGER", "ts": "TIMESTAMP", "tstz": "TIMESTAMPTZ", "d": "DATE", "patient_id": "INTEGER",
                "pages": "INTEGER"},
               [(i, ts, ts.replace(tzinfo=UTC), day, p, pages) for i, ts, day, p, pages in _ROWS]),
    "patients": ({"patient_id": "INTEGER", "enrolled_at": "TIMESTAMP"},
                 [(1, datetime(2024, 1, 1)), (2, datetime(2024, 7, 1))]),
}

PAGES = ("ev.pages",)


def test_a_filter_without_a_grain_compares_the_raw_time(ask: Ask) -> None:
    """Class 1: `ev.ts` has no declared grain; a filter on it compares the instant, not the day it falls on."""
    assert ask(("ev.n",), (), "ev.ts >= '2025-01-01 12:00:00'") == {(): 2}  # rows 2, 3
    assert ask(("ev.n",), (), "ev.ts > '2025-01-01 12:00:00' and ev.ts < '2025-01-02'") == {(): 1}  # row 3
    assert ask(("ev.n",), (), "ev.ts >= '2025-01-01 07:00:00'", timezone=NY) == {(): 2}  # 07:00 NY = 12:00 UTC
    assert ask(("ev.n",), (), "ev.ts:day = '2025-01-01'") == {(): 3}  # with a grain: the period


@pytest.mark.parametrize("zone, day10", [(NY, 176), (TOKYO, 24), (None, 152)])
def test_a_named_time_at_a_grain_applies_the_zone_once(ask: Ask, zone: str | None, day10: int) -> None:
    """Class 2: `ev.ts:day` and `time:day` are the same axis here and give the same sum, cut in the zone once."""
    assert ask(PAGES, (), "ev.ts:day = '2024-03-10'", timezone=zone) == {(): day10}
    assert ask(PAGES, (), "time:day = '2024-03-10'", timezone=zone) == {(): day10}
    assert ask(PAGES, (), "ev.ts:month = '2024-03-01'", timezone=zone) == {(): 248}


def test_a_literal_with_an_offset_is_that_instant(ask: Ask) -> None:
    """Class 2: an explicit offset is not shifted again by the query's zone. 05:00 UTC on March 10th up to New
    York's midnight of 2025-01-01 (05:00 UTC, before rows 1-3): rows 5, 6, 7, 8."""
    where = "ev.ts >= '2024-03-10T05:00:00+00:00' and ev.ts < '2025-01-01'"
    assert ask(PAGES, (), where, timezone=NY) == {(): 240}
    assert ask(PAGES, (), where.replace("ev.ts", "ev.tstz"), timezone=NY) == {(): 240}
    assert ask(PAGES, (), "ev.ts < '2024-03-10T14:00:00+09:00'", timezone=NY) == {(): 8}  # row 4 only


def test_a_dimension_named_time_is_not_the_time_axis(ask: Ask) -> None:
    """Class 3: `patient.time` is the patient's enrolment (patient 2: rows 4-8), not the event's own time."""
    assert ask(PAGES, (), "patient.time >= '2024-06-01'") == {(): 248}
    assert ask(PAGES, ("patient.time:year",)) == {d("2024-01-01"): 255}
    assert ask(PAGES, (), "time:year = '2025-01-01'") == {(): 7}


@pytest.mark.parametrize("zone, days", [
    (None, {d("2024-03-10"): 152, d("2024-03-11"): 96, d("2025-01-01"): 7}),
    (NY, {d("2024-03-09"): 8, d("2024-03-10"): 176, d("2024-03-11"): 64, d("2025-01-01"): 7}),
    (TOKYO, {d("2024-03-10"): 24, d("2024-03-11"): 224, d("2025-01-01"): 7}),
])
def test_instants_are_cut_in_the_query_zone(ask: Ask, zone: str | None, days: dict[date, int]) -> None:
    """Class 4: TIMESTAMP WITH TIME ZONE groups like the naive UTC timestamp of the same instant, in the query's
    zone, or in UTC without one (never the server's or the session's zone)."""
    assert ask(PAGES, ("ev.ts:day",), timezone=zone) == days
    assert ask(PAGES, ("ev.tstz:day",), timezone=zone) == days
    assert ask(PAGES, (), "ev.tstz:day = '2024-03-10'", timezone=zone) == {(): days.get(d("2024-03-10"))}


@pytest.mark.parametrize("zone", [None, NY, TOKYO])
def test_a_date_is_never_shifted(ask: Ask, zone: str | None) -> None:
    """Class 4: a DATE is a calendar day: the same days in every zone."""
    assert ask(PAGES, ("ev.d:day",), timezone=zone) == {d("2025-01-01"): 7, d("2024-03-10"): 24,
                                                        d("2024-03-11"): 224}
    assert ask(PAGES, ("ev.d:month",), timezone=zone) == {d("2025-01-01"): 7, d("2024-03-01"): 248}
    assert ask(PAGES, (), "ev.d = '2024-03-10'", timezone=zone) == {(): 24}
    assert ask(PAGES, (), "ev.d >= '2024-03-11' and ev.d:year < '2025-01-01'", timezone=zone) == {(): 224}


def test_a_cumulative_metric_filtered_on_a_named_time(ask: Ask) -> None:
    """Running pages by New York day (8, 184, 248, 255); the filter selects periods, the total still reaches back."""
    assert ask(("ev.pages_to_date",), ("time:day",), "ev.ts:day >= '2024-03-10'", timezone=NY) == {
        d("2024-03-10"): 184, d("2024-03-11"): 248, d("2025-01-01"): 255}
