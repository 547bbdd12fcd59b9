"""The one time model (docs/time.md): how each kind of stored time is read, and how a query's time zone, grains and
literals turn into SQL. Every place that truncates a time, reads a time literal or converts a bound calls this module.

- a naive `timestamp` is a UTC instant; `timestamptz` is an instant; a `date` is a calendar day, never shifted;
- the query's time zone (UTC when it names none) is applied once: periods are cut in it, literals without an offset
  are wall-clock times in it, a literal with an offset is that instant;
- "wall" is the storage of values already read in the query's zone (the period columns of a series).

Nothing here depends on the process's or the warehouse session's own time zone: every conversion names its zones.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlglot import exp

from semantic.errors import QueryError
from semantic.model import GRAINS

WALL = "wall"  # values already in the query's wall-clock time (period columns); not a stored kind

_FIXED = {"second": timedelta(seconds=1), "minute": timedelta(minutes=1), "hour": timedelta(hours=1),
          "day": timedelta(days=1), "week": timedelta(weeks=1)}
_MONTHS = {"month": 1, "quarter": 3, "year": 12}


def storage_of(sql_type: str) -> str | None:
    """The storage kind of a warehouse column type (information_schema `data_type`), None when it is no time.

    >>> storage_of("TIMESTAMP WITH TIME ZONE"), storage_of("timestamp without time zone"), storage_of("DATE")
    ('timestamptz', 'timestamp', 'date')
    """
    text = sql_type.strip().upper()
    if text == "DATE":
        return "date"
    if text in ("TIMESTAMPTZ", "TIMESTAMP_TZ", "TIMESTAMP_LTZ") or text.startswith("TIMESTAMP WITH TIME ZONE"):
        return "timestamptz"
    if text.startswith(("TIMESTAMP", "DATETIME")):
        return "timestamp"
    return None


# --- SQL: wall-clock time and truncation ---------------------------------------------------------------------------

def local(expr: exp.Expr, timezone: str | None, storage: str = "timestamp") -> exp.Expr:
    """A stored time as a naive wall-clock time in `timezone` (UTC when None): a naive timestamp is read as UTC
    first; an instant is converted (always with a named zone, so the session's zone never matters); a date and a
    wall-clock value are left as they are."""
    if storage == "timestamptz":
        return exp.AtTimeZone(this=expr, zone=exp.Literal.string(timezone or "UTC"))
    if storage in ("date", WALL) or timezone is None:
        return expr
    utc = exp.AtTimeZone(this=expr, zone=exp.Literal.string("UTC"))
    return exp.AtTimeZone(this=utc, zone=exp.Literal.string(timezone))


def truncate(expr: exp.Expr, grain: str, timezone: str | None = None, storage: str = WALL) -> exp.Expr:
    """A time at a grain, cut in `timezone`: a date for day and coarser grains, a timestamp otherwise (weeks are
    ISO weeks, starting on Monday)."""
    if grain == "day":  # the date itself: one cast instead of truncating to midnight and casting
        return exp.cast(local(expr, timezone, storage), exp.DataType.Type.DATE)
    truncated = exp.TimestampTrunc(this=local(expr, timezone, storage), unit=exp.var(grain.upper()))
    if GRAINS.index(grain) >= GRAINS.index("day"):
        return exp.cast(truncated, exp.DataType.Type.DATE)
    return truncated


def time_type(grain: str) -> str:
    """The output type of a time at `grain`."""
    return "date" if GRAINS.index(grain) >= GRAINS.index("day") else "datetime"


# --- literals and instants -----------------------------------------------------------------------------------------

# Times a request may name: window and offset arithmetic (a year back, a period on) and zone conversions stay
# inside what Python and every warehouse can represent.
EARLIEST, LATEST = datetime(1000, 1, 1), datetime(8999, 12, 31, 23, 59, 59)


def check_range(value: datetime, where: str) -> datetime:
    """`value` (naive) if it lies in the years 1000 to 8999, else a QueryError saying so."""
    if not EARLIEST <= value <= LATEST:
        raise QueryError(f"{where}: {value.isoformat()} is out of range; times must lie between the years "
                         f"{EARLIEST.year} and {LATEST.year}")
    return value


def parse_instant(text: str, where: str, timezone: str | None) -> datetime:
    """An ISO date or date-time literal as an aware UTC instant: with an offset, that instant; without, wall-clock
    time in `timezone` (UTC when None)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise QueryError(f"{where}: {text!r} is not a date or date-time; write ISO 8601 such as '2024-03-01' or "
                         f"'2024-03-01T12:00:00'") from None
    check_range(value.replace(tzinfo=None), where)  # before any zone arithmetic, which could overflow
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(timezone) if timezone else UTC)
    return value.astimezone(UTC)


def wall(instant: datetime, timezone: str | None) -> datetime:
    """An instant as naive wall-clock time in `timezone` (UTC when None)."""
    return instant.astimezone(ZoneInfo(timezone) if timezone else UTC).replace(tzinfo=None)


def instant(local_time: datetime, timezone: str | None) -> datetime:
    """A naive wall-clock time in `timezone` (UTC when None) as an aware UTC instant."""
    return local_time.replace(tzinfo=ZoneInfo(timezone) if timezone else UTC).astimezone(UTC)


def time_literal(value: datetime | date) -> exp.Expr:
    """A naive date-time as a TIMESTAMP literal, a date as a DATE literal."""
    if isinstance(value, datetime):
        return exp.cast(exp.Literal.string(value.isoformat(sep=" ")), exp.DataType.Type.TIMESTAMP)
    return exp.cast(exp.Literal.string(value.isoformat()), exp.DataType.Type.DATE)


def wall_literal(value: datetime) -> exp.Expr:
    """A wall-clock value: a DATE literal at midnight, a TIMESTAMP literal otherwise."""
    return time_literal(value.date() if value == floor(value, "day") else value)


def literal(moment: datetime, storage: str, timezone: str | None) -> exp.Expr:
    """An instant typed to compare with a column of `storage` read in `timezone`."""
    if storage == "timestamp":
        return time_literal(moment.astimezone(UTC).replace(tzinfo=None))
    if storage == "timestamptz":
        text = moment.astimezone(UTC).isoformat(sep=" ")
        return exp.cast(exp.Literal.string(text), exp.DataType.Type.TIMESTAMPTZ)
    return wall_literal(wall(moment, timezone))  # a date or a wall-clock value: the calendar of the zone


# --- periods -------------------------------------------------------------------------------------------------------

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


def period_range(op: type[exp.Expr], value: datetime, grain: str
                 ) -> list[tuple[type[exp.Expr], datetime]] | None:
    """`floor(t, grain) <op> value` as conditions `t <op'> bound` on wall-clock times; [] means never true, None
    means the comparison is no range.

    >>> period_range(exp.GT, datetime(2024, 2, 15), "month")
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
