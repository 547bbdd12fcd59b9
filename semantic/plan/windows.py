"""Windowed metrics over a per-period series: the frame that yields each period's cumulative or offset value, or
the finer grain to sum at when the window is not a whole number of periods."""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from semantic.errors import QueryError
from semantic.model import GRAINS, Metric


@dataclass(frozen=True)
class Window:
    """A cumulative or offset metric: `function(base) OVER (PARTITION BY the other groups [, reset period]
    ORDER BY the period <spec>)` over an entity's per-period series."""

    alias: str
    base: str  # alias of the base measure in the series
    function: type[exp.Expr]  # exp.Sum, exp.Min or exp.Max
    spec: exp.WindowSpec | None  # None: summed by a range join over the finer series (Aggregate.fine)
    reset: str | None = None  # grain_to_date: the running total restarts at each period of this grain
    span: exp.Expr | None = None  # the window's length as an interval, for the range join
    distinct: bool = False  # COUNT(DISTINCT base) over the range join's rows (base is then a value column)


_MONTHS = {"month": 1, "quarter": 3, "year": 12}
_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400, "week": 604800}


def interval(count: int, unit: str) -> exp.Expr:
    if unit == "quarter":
        count, unit = count * 3, "month"
    return exp.Interval(this=exp.Literal.string(str(count)), unit=exp.var(unit.upper()))


def frame(metric: Metric, grain: str) -> tuple[exp.WindowSpec, str | None] | None:
    """The window frame, over a series with one row per period of `grain`, that yields the metric's value for
    each period: its value as of the period's end (cumulative) or the value `offset` earlier (offset)."""
    what = f"{metric.qualified} at {grain} grain"
    if metric.kind == "offset":
        assert metric.offset is not None
        unit, count = metric.offset.unit, metric.offset.count
        fits = (GRAINS.index(unit) >= GRAINS.index(grain) and grain != "week" and unit != "week"
                and (grain not in _MONTHS or (unit in _MONTHS and count * _MONTHS[unit] % _MONTHS[grain] == 0))) \
            or (grain == "week" and unit == "week") or (grain in _SECONDS and unit == "week")
        if not fits:
            raise QueryError(f"{what}: an offset of {metric.offset} does not land on the start of a {grain}; ask "
                             f"for the metric at a grain the offset is a whole number of")
        back = interval(count, unit)
        return exp.WindowSpec(kind="RANGE", start=back, start_side="PRECEDING", end=back.copy(),
                              end_side="PRECEDING"), None
    running = exp.WindowSpec(kind="ROWS", start="UNBOUNDED", start_side="PRECEDING", end="CURRENT ROW")
    if metric.grain_to_date is not None:
        reset = metric.grain_to_date
        nested = GRAINS.index(reset) >= GRAINS.index(grain) and not (grain == "week" and reset != "week"
                                                                       and reset in _MONTHS)
        if not nested:
            raise QueryError(f"{what}: {grain}s do not nest inside {reset}s; ask for it at a grain of {reset} "
                             f"or finer that fits inside one")
        return running, reset
    if metric.window is None:
        return running, None
    count, unit = metric.window.count, metric.window.unit
    if grain in _MONTHS and unit in _MONTHS and count * _MONTHS[unit] % _MONTHS[grain] == 0:
        preceding = count * _MONTHS[unit] - _MONTHS[grain]
        return exp.WindowSpec(kind="RANGE", start=interval(preceding, "month"), start_side="PRECEDING",
                              end="CURRENT ROW"), None
    if grain in _SECONDS and unit in _SECONDS and count * _SECONDS[unit] % _SECONDS[grain] == 0:
        preceding = count * _SECONDS[unit] // _SECONDS[grain] - 1
        step = "day" if grain == "week" else grain
        per_step = 7 if grain == "week" else 1
        return exp.WindowSpec(kind="RANGE", start=interval(preceding * per_step, step), start_side="PRECEDING",
                              end="CURRENT ROW"), None
    return None  # not a whole number of periods: summed over a finer series instead (see fine_grain)


def fine_grain(metric: Metric, grain: str) -> str:
    """The grain a window that is not a whole number of `grain` periods is summed at: the finer of the
    period's grain and the window's unit (weeks in days, quarters and years in months)."""
    assert metric.window is not None
    unit = {"week": "day", "quarter": "month", "year": "month"}.get(metric.window.unit, metric.window.unit)
    if GRAINS.index(unit) < GRAINS.index(grain):
        return unit
    return "day" if grain == "week" else grain  # months do not nest in weeks: count the days


def whole_periods(filter_grain: str, period_grain: str) -> bool:
    """Whether a filter at `filter_grain` keeps or drops whole periods of `period_grain` (no grain: raw time)."""
    if not filter_grain or GRAINS.index(filter_grain) < GRAINS.index(period_grain):
        return False
    return not (period_grain == "week" and filter_grain in _MONTHS)  # weeks straddle months
