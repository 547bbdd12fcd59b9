"""Time filters at a grain, rewritten as ranges on the raw time: `time:month >= '2024-02-15'` becomes
`ordered_at >= '2024-03-01'`. The answer is the same (periods are half-open, `[start, next start)`), and a raw range
lets the warehouse skip blocks by their min/max instead of truncating every row. Boundaries are computed in the
query's time zone, then turned into UTC instants, since stored naive times are UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlglot import exp

_FIXED = {"second": timedelta(seconds=1), "minute": timedelta(minutes=1), "hour": timedelta(hours=1),
          "day": timedelta(days=1), "week": timedelta(weeks=1)}
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def floor(value: datetime, grain: str) -> datetime:
    """The start of the period holding `value`.

    >>> floor(datetime(2024, 2, 29, 13, 5), "quarter"), floor(datetime(2024, 3, 3), "week")
    (datetime.datetime(2024, 1, 1, 0, 0), datetime.datetime(2024, 2, 26, 0, 0))
    """
    if grain in _MONTHS:
        month = (value.month - 1) // _MONTHS[grain] * _MONTHS[grain] + 1
        return datetime(value.year, month, 1)
    if grain == "week":
        day = datetime(value.year, value.month, value.day)
        return day - timedelta(days=day.weekday())
    keep = {"second": 6, "minute": 5, "hour": 4, "day": 3}[grain]
    parts = [value.year, value.month, value.day, value.hour, value.minute, value.second][:keep]
    return datetime(*parts)  # type: ignore[arg-type]


def following(start: datetime, grain: str) -> datetime:
    """The start of the period after the one starting at `start`."""
    if grain in _MONTHS:
        months = start.year * 12 + start.month - 1 + _MONTHS[grain]
        return datetime(months // 12, months % 12 + 1, 1)
    return start + _FIXED[grain]


def to_utc(local: datetime, timezone: str | None) -> datetime:
    """A wall-clock time in `timezone` as a naive UTC instant."""
    if timezone is None:
        return local
    return local.replace(tzinfo=ZoneInfo(timezone)).astimezone(UTC).replace(tzinfo=None)


def raw_range(op: type[exp.Expr], value: datetime, grain: str
              ) -> list[tuple[type[exp.Expr], datetime]] | None:
    """`truncate(t, grain) <op> value` as conditions `t <op'> bound`; [] means never true, None means keep it.

    >>> raw_range(exp.GT, datetime(2024, 2, 15), "month")
    [(<class 'sqlglot.expressions.core.GTE'>, datetime.datetime(2024, 3, 1, 0, 0))]
    """
    start = floor(value, grain)
    aligned = start == value
    ceil = value if aligned else following(start, grain)
    if op is exp.GTE:
        return [(exp.GTE, ceil)]
    if op is exp.GT:
        return [(exp.GTE, following(start, grain))]
    if op is exp.LT:
        return [(exp.LT, ceil)]
    if op is exp.LTE:
        return [(exp.LT, following(start, grain))]
    if op is exp.EQ:
        return [(exp.GTE, value), (exp.LT, following(value, grain))] if aligned else []
    return None
