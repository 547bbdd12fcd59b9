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


@dataclass(frozen=True)
class Fill:
    period: str  # alias of the time column to fill
    grain: str
    start: datetime | None  # first period (wall-clock time in the query's zone), None: the first with data
    end: datetime | None  # last period, None: the last with data
    zero: tuple[str, ...]  # aliases of the measures an empty period gives 0
