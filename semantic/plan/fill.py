"""Gap filling: `fill: zero|null` asks for every period of the requested range, not only those with data.

The range starts at the first period the time filter admits (or the first with data) and ends at the last period
it admits (or the last with data). Periods are added to the measures, before derived metrics and metric filters are
computed, so a filled period is filtered like any other. Counts and sums of an empty period are 0 with `zero`;
averages, extremes, percentiles and stocks (semi-additive) of an empty period have no value and stay null, and a
derived metric is computed from those (`revenue / nullif(orders, 0)` of an empty period is NULL).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from semantic import settings
from semantic.errors import LimitError


@dataclass(frozen=True)
class Fill:
    period: str  # alias of the time column to fill
    grain: str
    start: datetime | None  # first period (wall-clock time in the query's zone), None: the first with data
    end: datetime | None  # last period, None: the last with data
    zero: tuple[str, ...]  # aliases of the measures an empty period gives 0


_SHORT = ("second", "minute", "hour")  # grains at which the data's own range may hold too many periods


def check_size(fill: Fill) -> None:
    """Refuse a fill that may create more periods than `max_fill_periods`, before any SQL runs. With both ends of
    the range in the filter the count is exact; without them the data decides the range, which is only allowed at
    day and coarser grains (a day a period: 100,000 periods is 270 years).

    Raises:
        LimitError: too many periods, or a fine-grained fill without a bounded range.
    """
    limits = settings.current()
    if fill.start is None or fill.end is None:
        if fill.grain in _SHORT:
            setting = settings.BY_NAME["max_fill_periods"]
            raise LimitError(f"fill at {fill.grain} grain needs both ends of its time range in the filter (e.g. "
                             f"order.ordered_at >= '2024-03-01' and order.ordered_at < '2024-03-02'), so that the "
                             f"number of periods (at most {limits.max_fill_periods:,}: max_fill_periods, "
                             f"{setting.env}) is known before the query runs")
        return
    limits.check("max_fill_periods", period_count(fill.start, fill.end, fill.grain),
                 f"{fill.grain}s from {fill.start.isoformat()} to {fill.end.isoformat()} to fill")


def period_count(start: datetime, end: datetime, grain: str) -> int:
    """Periods of `grain` from the one starting at `start` to the one starting at `end`, both included.

    >>> period_count(datetime(2024, 1, 1), datetime(2024, 12, 1), "month"), period_count(
    ...     datetime(2024, 1, 1), datetime(2024, 1, 2), "second")
    (12, 86401)
    """
    if end < start:
        return 0
    if grain in ("month", "quarter", "year"):
        months = (end.year - start.year) * 12 + end.month - start.month
        return months // {"month": 1, "quarter": 3, "year": 12}[grain] + 1
    step = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 7 * 86400}[grain]
    return int((end - start).total_seconds() // step) + 1
