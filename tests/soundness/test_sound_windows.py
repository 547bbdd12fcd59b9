"""Cumulative metrics: where a window starts and ends, what a running total includes, when month-to-date resets,
and what a time filter does to them.

Rows (amounts are powers of two, so each expected sum names exactly the sales it holds):

    sale  store  sold_at               amount
    z     A      2024-01-15 12:00:00   256
    a     A      2024-02-20 10:00:00   1
    b     A      2024-02-29 23:59:59   2      last second of February (a leap day)
    c     A      2024-03-01 00:00:00   4      first instant of March
    d     A      2024-03-03 23:59:59   8      last second of the day just outside the 7 days ending 2024-03-10
    e     A      2024-03-04 00:00:00   16     first instant of the 7 days ending 2024-03-10
    f     A      2024-03-10 23:59:59   32     last second of 2024-03-10
    g     A      2024-03-11 00:00:00   64     first instant of the next day
    h     B      2024-03-09 12:00:00   128    another store: never in store A's windows

DESIGN.md: a cumulative metric reports each period's value as of the period's end; `7 days` at day grain covers the
day and the six before; results cover periods with data; a time filter selects periods, windows still reach back.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pytest

from semantic.errors import ModelError
from semantic.loader import load

Ask = Callable[..., dict[Any, Any]]  # the `ask` fixture of conftest.py
t, d = datetime.fromisoformat, date.fromisoformat

MODEL = """
version: 1
name: windows
entities:
  - name: sale
    table: sales
    key: sale_id
    time: sold_at
    dimensions:
      - {name: store}
      - {name: sold_at, type: time, grain: second}
    metrics:
      - {name: amount, agg: sum, expr: amount}
      - {name: amount_7d, metric: amount, window: 7 days}
      - {name: amount_to_date, metric: amount, window: unbounded}
      - {name: amount_mtd, metric: amount, grain_to_date: month}
"""

TABLES = {
    "sales": ({"sale_id": "VARCHAR", "store": "VARCHAR", "sold_at": "TIMESTAMP", "amount": "INTEGER"}, [
        ("z", "A", t("2024-01-15 12:00:00"), 256),
        ("a", "A", t("2024-02-20 10:00:00"), 1),
        ("b", "A", t("2024-02-29 23:59:59"), 2),
        ("c", "A", t("2024-03-01 00:00:00"), 4),
        ("d", "A", t("2024-03-03 23:59:59"), 8),
        ("e", "A", t("2024-03-04 00:00:00"), 16),
        ("f", "A", t("2024-03-10 23:59:59"), 32),
        ("g", "A", t("2024-03-11 00:00:00"), 64),
        ("h", "B", t("2024-03-09 12:00:00"), 128),
    ]),
}


def test_trailing_7_days_covers_the_day_and_six_before(ask: Ask) -> None:
    """Trap: a frame of 7 rows instead of 7 days, a window of 8 days (`>= day - 7`), one that ends at the start of
    the day (losing 23:59:59), or one that leaks across stores."""
    assert ask(("sale.amount_7d",), ("sale.store", "time:day")) == {
        ("A", d("2024-01-15")): 256,
        ("A", d("2024-02-20")): 1,  # z is 35 days earlier
        ("A", d("2024-02-29")): 2,  # 02-23..02-29: b
        ("A", d("2024-03-01")): 6,  # 02-24..03-01: b + c
        ("A", d("2024-03-03")): 14,  # 02-26..03-03: b + c + d
        ("A", d("2024-03-04")): 30,  # 02-27..03-04: b + c + d + e
        ("A", d("2024-03-10")): 48,  # 03-04..03-10: e (00:00:00) + f (23:59:59); d (03-03 23:59:59) is out
        ("A", d("2024-03-11")): 96,  # 03-05..03-11: f + g; e is out
        ("B", d("2024-03-09")): 128,  # h only: store A's sales stay in store A
    }
    # All stores together: the days of store B's sale join the series.
    assert ask(("sale.amount_7d",), ("sale.sold_at:day",), "sale.sold_at:day >= '2024-03-09'") == {
        d("2024-03-09"): 152,  # 03-03..03-09: d + e + h
        d("2024-03-10"): 176,  # 03-04..03-10: e + h + f
        d("2024-03-11"): 224,  # 03-05..03-11: h + f + g
    }


def test_unbounded_running_total(ask: Ask) -> None:
    """Trap: a running total that restarts per month or per year, or that skips sales of days not reported."""
    assert ask(("sale.amount_to_date",), ("sale.store", "time:day")) == {
        ("A", d("2024-01-15")): 256,
        ("A", d("2024-02-20")): 257,
        ("A", d("2024-02-29")): 259,
        ("A", d("2024-03-01")): 263,
        ("A", d("2024-03-03")): 271,
        ("A", d("2024-03-04")): 287,
        ("A", d("2024-03-10")): 319,
        ("A", d("2024-03-11")): 383,  # every sale of store A: 256 + 127
        ("B", d("2024-03-09")): 128,
    }
    assert ask(("sale.amount_to_date",), ("time:year",)) == {d("2024-01-01"): 511}


def test_month_to_date_resets_on_the_first(ask: Ask) -> None:
    """Trap: month-to-date carrying February into March 1st, or resetting on a trailing 30-day boundary. March 1st
    00:00:00 (c) starts March; February 29th 23:59:59 (b) is still February."""
    assert ask(("sale.amount_mtd",), ("sale.store", "time:day")) == {
        ("A", d("2024-01-15")): 256,
        ("A", d("2024-02-20")): 1,  # January is not carried into February
        ("A", d("2024-02-29")): 3,  # a + b
        ("A", d("2024-03-01")): 4,  # c alone: the total restarts on the 1st
        ("A", d("2024-03-03")): 12,
        ("A", d("2024-03-04")): 28,
        ("A", d("2024-03-10")): 60,
        ("A", d("2024-03-11")): 124,  # c + d + e + f + g
        ("B", d("2024-03-09")): 128,
    }


def test_time_filter_selects_periods_but_windows_reach_back(ask: Ask) -> None:
    """Trap: applying the time filter to the rows before accumulating, so February's running total forgets January
    and the 7 days ending March 4th forget February. The filter picks which periods are reported, nothing else."""
    assert ask(("sale.amount_to_date",), ("sale.store", "time:month"), "time:month >= '2024-02-01'") == {
        ("A", d("2024-02-01")): 259,  # z (January) + a + b, not a + b = 3
        ("A", d("2024-03-01")): 383,
        ("B", d("2024-03-01")): 128,
    }
    assert ask(("sale.amount_7d", "sale.amount"), ("sale.store", "time:day"), "time:day >= '2024-03-04'") == {
        ("A", d("2024-03-04")): (30, 16),  # b + c + d + e: the window reaches back into February
        ("A", d("2024-03-10")): (48, 32),
        ("A", d("2024-03-11")): (96, 64),
        ("B", d("2024-03-09")): (128, 128),
    }


def test_non_additive_metrics_are_not_accumulated(tmp_path: Path) -> None:
    """Trap: a running mean or median summed from per-period values. Such a model is refused when it is loaded,
    before any number exists. (Distinct counts are accumulated exactly: test_sound_distinct_windows.py.)"""
    path = tmp_path / "model.yaml"
    path.write_text(MODEL + """
      - {name: mean_amount, agg: avg, expr: amount}
      - {name: median_amount, agg: median, expr: amount}
      - {name: mean_amount_7d, metric: mean_amount, window: 7 days}
      - {name: median_amount_mtd, metric: median_amount, grain_to_date: month}
""")
    with pytest.raises(ModelError) as error:
        load(path)
    assert [issue.message.split(":")[0] for issue in error.value.issues] == [
        "metric sale.mean_amount_7d", "metric sale.median_amount_mtd"]
