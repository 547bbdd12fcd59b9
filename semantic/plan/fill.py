"""Gap filling: `fill: zero|null` asks for every period of the requested range, not only those with data.

The range starts at the first period the time filter admits (or the first with data) and ends at the last period
it admits (or the last with data). Counts and sums of an empty period are 0 with `zero`; averages, extremes,
percentiles and derived metrics of an empty period have no value and stay null.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlglot import exp

from semantic.plan.timefilter import floor, following

_LOWER = (exp.GT, exp.GTE)
_UPPER = (exp.LT, exp.LTE)


@dataclass(frozen=True)
class Fill:
    period: str  # alias of the time column to fill
    grain: str
    start: datetime | None  # first period (wall-clock time in the query's zone), None: the first with data
    end: datetime | None  # last period, None: the last with data
    zero: tuple[str, ...]  # aliases of the metrics an empty period gives 0


def bounds(filters: list[exp.Expr], axis: set[str], grain: str, parse: object
           ) -> tuple[datetime | None, datetime | None]:
    """First and last period of `grain` that top-level comparisons on the time axis admit.

    `axis` holds the filter column names on the fill dimension's axis (`time`, `ordered_at`); `parse` turns a
    literal into a wall-clock datetime.
    """
    start: datetime | None = None
    end: datetime | None = None
    for condition in filters:
        column = condition.this if isinstance(condition, (*_LOWER, *_UPPER, exp.Between)) else None
        if not isinstance(column, exp.Column) or column.name.partition(":")[0] not in axis:
            continue
        own = column.name.partition(":")[2].lower() or None
        pairs = [(exp.GTE, condition.args["low"]), (exp.LTE, condition.args["high"])] \
            if isinstance(condition, exp.Between) else [(type(condition), condition.args["expression"])]
        for op, literal in pairs:
            if not (isinstance(literal, exp.Literal) and literal.is_string):
                continue
            value = parse(literal.this)  # type: ignore[operator]
            if op in _LOWER:
                first = _first_instant(op, value, own)
                start = max(start, floor(first, grain)) if start else floor(first, grain)
            else:
                last = _last_instant(op, value, own)
                end = min(end, floor(last, grain)) if end else floor(last, grain)
    return start, end


def _first_instant(op: type[exp.Expr], value: datetime, grain: str | None) -> datetime:
    if grain is None:
        return value
    start = floor(value, grain)
    if op is exp.GT or start != value:
        return following(start, grain)
    return value


def _last_instant(op: type[exp.Expr], value: datetime, grain: str | None) -> datetime:
    tick = timedelta(microseconds=1)
    if grain is None:
        return value - tick if op is exp.LT else value
    start = floor(value, grain)
    if op is exp.LTE:
        return following(start, grain) - tick
    return (value if start == value else following(start, grain)) - tick
