"""Per-dialect rewrites of the one tree, applied by `render()` just before sqlglot writes a dialect's SQL.

sqlglot translates syntax, but a few of our constructs have no word-for-word translation that keeps their meaning: a
function the dialect lacks, a window frame it cannot order by, a week that starts on another day. Each rule here fixes
one such construct for the dialects that need it. A rule is a pure function, tree -> tree, that copies the tree before
it changes anything, or raises CompileError when the dialect has no exact form. `RULES` lists each dialect's rules in
the order they run, as sqlglot's optimizer lists its own, and `rewrite()` folds a dialect's rules over a tree.

Every dialect makes division by zero NULL (`null_division`). Snowflake needs nothing else: sqlglot's translation
keeps the meaning of what we build there (it takes INTERVAL offsets in RANGE frames over dates and times, and starts
weeks on Monday under its default WEEK_START = 0).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from sqlglot import exp

from semantic.errors import CompileError


class Rewrite(Protocol):
    """One rule: a new tree that says the same in the dialect, or CompileError when the dialect cannot say it."""

    def __call__(self, tree: exp.Expr) -> exp.Expr: ...


# --- reading the tree: what a time column is ---------------------------------------------------------------------

_TRUNCATIONS = (exp.TimestampTrunc, exp.DateTrunc, exp.DatetimeTrunc)
_DAYS = {"DAY": 1, "WEEK": 7}
_MONTHS = {"MONTH": 1, "QUARTER": 3, "YEAR": 12}
_SECONDS = {"SECOND": 1, "MINUTE": 60, "HOUR": 3600, "DAY": 86400, "WEEK": 604800}


def _read_by(select: exp.Select, table: str) -> exp.Expr | None:
    """The query that `select` reads as `table` (its only source when `table` is ""): a subquery's or a CTE's."""
    from_ = select.args.get("from_")
    sources = [from_.this] if from_ is not None else []
    sources += [join.this for join in select.args.get("joins") or []]
    if table:
        sources = [s for s in sources if s.alias_or_name == table]
    if len(sources) != 1:
        return None
    source = sources[0]
    query = None
    if isinstance(source, exp.Subquery):
        query = source.this
    elif isinstance(source, exp.Identifier | exp.Table) and not source.args.get("db"):  # FROM "name" or FROM name
        node: exp.Expr | None = select
        while node is not None and query is None:  # the nearest WITH that names it
            with_ = node.args.get("with_")
            ctes = [cte for cte in (with_.expressions if with_ is not None else ()) if cte.alias == source.name]
            query = ctes[0].this if ctes else None
            node = node.parent
    return query if isinstance(query, exp.Expression) else None


def _definition(expression: exp.Expr) -> exp.Expr:
    """What a column stands for, followed down through the subqueries and CTEs it is read from (the column itself
    when that cannot be told); any other expression as it is.

    >>> import sqlglot
    >>> tree = sqlglot.parse_one("WITH s AS (SELECT CAST(t AS DATE) AS d FROM x) "
    ...                          "SELECT * FROM (SELECT d FROM s) AS w WHERE w.d > '2024-01-01'")
    >>> _definition(tree.find(exp.Where).find(exp.Column)).sql()
    'CAST(t AS DATE)'
    """
    if not isinstance(expression, exp.Column):
        return expression
    name, table, select = expression.name, expression.table, expression.find_ancestor(exp.Select)
    while select is not None:
        query = _read_by(select, table)
        while isinstance(query, exp.SetOperation):
            query = query.this  # a UNION's columns have its first branch's types
        if not isinstance(query, exp.Select):
            break
        named = [e for e in query.selects if e.alias_or_name == name and not isinstance(e, exp.Star)]
        if named:
            found = named[0].unalias()
            if not isinstance(found, exp.Column):
                return found
            name, table = found.name, found.table
        elif not any(isinstance(e, exp.Star) for e in query.selects):
            break
        else:
            table = ""  # SELECT * passes the column through from the query's own source
        select = query
    return expression


def _time_kind(expression: exp.Expr) -> tuple[str, str | None] | None:
    """("date" or "timestamp", the unit it is truncated to or None), when the tree says; None when it does not."""
    found = _definition(expression)
    kind = "timestamp"
    if isinstance(found, exp.Cast):
        if found.to.is_type(exp.DataType.Type.DATE):
            kind = "date"
        elif not found.to.is_type(*exp.DataType.TEMPORAL_TYPES):
            return None
        found = found.this
    if isinstance(found, exp.DateTrunc) and kind == "timestamp":
        operand = _time_kind(found.this)  # DATE_TRUNC keeps its operand's type
        if operand is None:
            return None
        kind = operand[0]
    if isinstance(found, _TRUNCATIONS):
        return kind, found.text("unit").upper() or None
    return (kind, None) if kind == "date" else None


def _offset(bound: exp.Interval) -> tuple[int, str]:
    """An INTERVAL frame bound as (count, unit), for INTERVAL '6' DAY and INTERVAL '6 DAY' alike."""
    text = bound.this.name if bound.this is not None else ""
    unit = bound.text("unit")
    if not unit:
        text, _, unit = text.partition(" ")
    unit = unit.upper().removesuffix("S")
    if not text.strip().isdigit() or unit not in {**_SECONDS, **_MONTHS}:
        raise CompileError(f"cannot read the window frame offset {bound.sql()}: expected a whole number of a "
                           f"calendar unit")
    return int(text), unit


def _offset_frames(tree: exp.Expr) -> list[tuple[exp.Window, exp.Ordered, dict[str, tuple[int, str]]]]:
    """Each RANGE window with INTERVAL bounds: the window, its single ORDER BY item and its bounds by side."""
    frames = []
    for window in tree.find_all(exp.Window):
        spec = window.args.get("spec")
        if spec is None or spec.text("kind").upper() != "RANGE":
            continue
        bounds = {side: _offset(spec.args[side]) for side in ("start", "end")
                  if isinstance(spec.args.get(side), exp.Interval)}
        if not bounds:
            continue
        order = window.args.get("order")
        keys = order.expressions if order is not None else []
        if len(keys) != 1:
            raise CompileError(f"a RANGE frame with offsets needs exactly one ORDER BY key: {window.sql()}")
        frames.append((window, keys[0], bounds))
    return frames


def _set_bounds(window: exp.Window, bounds: dict[str, tuple[int, str]], scale: dict[str, int]) -> None:
    """Replace the INTERVAL bounds by whole numbers in the unit `scale` maps each calendar unit into."""
    for side, (count, unit) in bounds.items():
        window.args["spec"].set(side, exp.Literal.number(count * scale[unit]))


def _frame(window: exp.Window) -> str:
    """The frame as SQL, for messages: RANGE BETWEEN INTERVAL '6' DAY PRECEDING AND CURRENT ROW."""
    return str(window.args["spec"].sql(dialect="duckdb"))


# --- percentiles -------------------------------------------------------------------------------------------------

def _interpolated(node: exp.PercentileCont, values: Callable[[exp.Expr], exp.Expr]) -> exp.Expr:
    """PERCENTILE_CONT(x, p) from `values(x)`, the group's non-NULL values of x in ascending order as an array: the
    value at 0-based position p * (n - 1), n = COUNT(x), interpolated linearly between the values either side of it,
    which is the definition PERCENTILE_CONT, DuckDB and PostgreSQL use. An empty group indexes nothing: NULL."""
    x, fraction = node.this, node.expression
    last = exp.paren(exp.Sub(this=exp.Count(this=x.copy()), expression=exp.Literal.number(1)))
    position = exp.Mul(this=fraction.copy(), expression=last)

    def at(rounding: type[exp.Floor] | type[exp.Ceil]) -> exp.Expr:
        index = exp.cast(rounding(this=position.copy()), exp.DataType.Type.BIGINT)
        return exp.Bracket(this=values(x), expressions=[index], offset=0, safe=True)

    between = exp.paren(exp.Sub(this=position.copy(), expression=exp.Floor(this=position.copy())))
    step = exp.paren(exp.Sub(this=at(exp.Ceil), expression=at(exp.Floor)))
    return exp.paren(exp.Add(this=at(exp.Floor), expression=exp.Mul(this=between, expression=step)))


def _aggregate_percentiles(tree: exp.Expr) -> list[exp.PercentileCont]:
    """The tree's PERCENTILE_CONT(x, p) aggregates: not over a window, not in the WITHIN GROUP form."""
    return [node for node in tree.find_all(exp.PercentileCont)
            if not isinstance(node.parent, exp.Window | exp.WithinGroup)]


def bigquery_exact_percentile(tree: exp.Expr) -> exp.Expr:
    """BigQuery's PERCENTILE_CONT is an analytic function only (it needs OVER; as an aggregate under GROUP BY it is
    refused), and APPROX_QUANTILES is approximate. So the percentile is interpolated in the group's sorted values,
    `ARRAY_AGG(x IGNORE NULLS ORDER BY x)[SAFE_OFFSET(i)]`, all within the one aggregate SELECT. The array holds the
    group's values: a group too large for one BigQuery row fails rather than returning an approximation.

    >>> import sqlglot
    >>> tree = sqlglot.parse_one("SELECT PERCENTILE_CONT(x, 0.5) FROM t", read="postgres")
    >>> bigquery_exact_percentile(tree).sql("bigquery")  # doctest: +NORMALIZE_WHITESPACE
    'SELECT (ARRAY_AGG(x IGNORE NULLS ORDER BY x)[SAFE_OFFSET(CAST(FLOOR(0.5 * (COUNT(x) - 1)) AS INT64))] +
    (0.5 * (COUNT(x) - 1) - FLOOR(0.5 * (COUNT(x) - 1))) *
    (ARRAY_AGG(x IGNORE NULLS ORDER BY x)[SAFE_OFFSET(CAST(CEIL(0.5 * (COUNT(x) - 1)) AS INT64))] -
    ARRAY_AGG(x IGNORE NULLS ORDER BY x)[SAFE_OFFSET(CAST(FLOOR(0.5 * (COUNT(x) - 1)) AS INT64))])) FROM t'
    """
    def values(x: exp.Expr) -> exp.Expr:
        # BigQuery sorts NULLs first; with IGNORE NULLS there are none, and an explicit NULLS LAST is refused here.
        order = exp.Order(this=x.copy(), expressions=[exp.Ordered(this=x.copy(), nulls_first=True)])
        return exp.IgnoreNulls(this=exp.ArrayAgg(this=order))

    tree = tree.copy()
    for node in _aggregate_percentiles(tree):  # over a window, PERCENTILE_CONT is BigQuery's own
        node.replace(_interpolated(node, values))
    return tree


def trino_exact_percentile(tree: exp.Expr) -> exp.Expr:
    """Trino has no PERCENTILE_CONT, and its APPROX_PERCENTILE is approximate. So the percentile is interpolated in
    the group's sorted values, `ELEMENT_AT(ARRAY_AGG(x ORDER BY x) FILTER (WHERE x IS NOT NULL), i + 1)`, all within
    the one aggregate SELECT; the array holds the group's values, as an exact percentile must.

    >>> import sqlglot
    >>> tree = sqlglot.parse_one("SELECT PERCENTILE_CONT(x, 0.5) FROM t", read="postgres")
    >>> "PERCENTILE" in trino_exact_percentile(tree).sql("trino")
    False
    """
    def values(x: exp.Expr) -> exp.Expr:
        order = exp.Order(this=x.copy(), expressions=[exp.Ordered(this=x.copy(), nulls_first=False)])
        present = exp.Where(this=exp.not_(exp.Is(this=x.copy(), expression=exp.Null())))
        return exp.Filter(this=exp.ArrayAgg(this=order), expression=present)

    tree = tree.copy()
    over = [window for window in tree.find_all(exp.Window) if isinstance(window.this, exp.PercentileCont)]
    if over:
        raise CompileError(f"Trino has no exact continuous percentile over a window: {over[0].sql()}")
    for node in _aggregate_percentiles(tree):
        node.replace(_interpolated(node, values))
    return tree


def spark_exact_percentile(tree: exp.Expr) -> exp.Expr:
    """Spark refuses PERCENTILE_CONT(x, p) (3.x wants WITHIN GROUP, 4.x one argument) and sqlglot writes its WITHIN
    GROUP form as the approximate PERCENTILE_APPROX; Spark's exact, interpolating aggregate is PERCENTILE(x, p).

    >>> import sqlglot
    >>> tree = sqlglot.parse_one("SELECT PERCENTILE_CONT(x, 0.9) FROM t", read="postgres")
    >>> spark_exact_percentile(tree).sql("spark")
    'SELECT PERCENTILE(x, 0.9) FROM t'
    """
    tree = tree.copy()
    # PERCENTILE is a window aggregate in Spark too, so PERCENTILE_CONT over a window changes the same way.
    for node in [n for n in tree.find_all(exp.PercentileCont) if not isinstance(n.parent, exp.WithinGroup)]:
        node.replace(exp.Quantile(this=node.this, quantile=node.expression))
    return tree


# --- calendar ----------------------------------------------------------------------------------------------------

def bigquery_monday_weeks(tree: exp.Expr) -> exp.Expr:
    """Our weeks start on Monday (ISO, as DuckDB, PostgreSQL, Trino and Spark truncate them); BigQuery's WEEK starts
    on Sunday, so a week truncation says WEEK(MONDAY).

    >>> import sqlglot
    >>> tree = sqlglot.parse_one("SELECT DATE_TRUNC('week', t) FROM x", read="duckdb")
    >>> bigquery_monday_weeks(tree).sql("bigquery")
    'SELECT TIMESTAMP_TRUNC(t, WEEK(MONDAY)) FROM x'
    """
    tree = tree.copy()
    for node in list(tree.find_all(*_TRUNCATIONS)):
        if node.text("unit").upper() == "WEEK":
            node.set("unit", exp.WeekStart(this=exp.var("MONDAY")))
    return tree


def bigquery_truncate_dates(tree: exp.Expr) -> exp.Expr:
    """BigQuery's TIMESTAMP_TRUNC takes a TIMESTAMP or a DATETIME; a DATE only reaches it by an implicit coercion to
    DATETIME (and older releases refuse it). A truncation of what the tree shows to be a DATE (a period column of a
    series, filtered or partitioned again by a coarser grain) is written DATE_TRUNC, which takes a DATE.

    >>> import sqlglot
    >>> tree = sqlglot.parse_one("WITH s AS (SELECT CAST(DATE_TRUNC('day', t) AS DATE) AS d FROM x) "
    ...                          "SELECT DATE_TRUNC('month', d) FROM s", read="duckdb")
    >>> bigquery_truncate_dates(tree).sql("bigquery")
    'WITH s AS (SELECT CAST(TIMESTAMP_TRUNC(t, DAY) AS DATE) AS d FROM x) SELECT DATE_TRUNC(d, MONTH) FROM s'
    """
    tree = tree.copy()
    for node in list(tree.find_all(exp.TimestampTrunc)):
        kind = _time_kind(node.this)
        if kind is not None and kind[0] == "date" and node.args.get("zone") is None:
            # DateTrunc normalises its unit in an __init__ that sqlglot leaves untyped.
            node.replace(exp.DateTrunc(this=node.this, unit=node.args["unit"]))  # type: ignore[no-untyped-call]
    return tree


# --- window frames -----------------------------------------------------------------------------------------------

def bigquery_numeric_range_frames(tree: exp.Expr) -> exp.Expr:
    """BigQuery: "ORDER BY key must be numeric in a RANGE-based window with OFFSET PRECEDING or OFFSET FOLLOWING
    boundaries". A frame of INTERVAL offsets over a time key is rewritten over a number that keeps its meaning: a
    DATE's day number, UNIX_DATE(d), for days and weeks; a month number, DATE_DIFF(d, DATE '1970-01-01', MONTH), for
    months, quarters and years over month-aligned dates (so calendar months stay calendar months); seconds,
    UNIX_SECONDS, for sub-day periods. Month offsets from days or times have no such number (one month before March
    31 is February 29 or 28, not a fixed count of days), and are refused.

    >>> import sqlglot
    >>> tree = sqlglot.parse_one("WITH s AS (SELECT CAST(DATE_TRUNC('day', t) AS DATE) AS d, v FROM x) SELECT SUM(v) "
    ...                          "OVER (ORDER BY d RANGE BETWEEN INTERVAL '6' DAY PRECEDING AND CURRENT ROW) FROM s",
    ...                          read="duckdb")
    >>> bigquery_numeric_range_frames(tree).sql("bigquery").split("SELECT ")[-1]
    'SUM(v) OVER (ORDER BY UNIX_DATE(d) RANGE BETWEEN 6 PRECEDING AND CURRENT ROW) FROM s'
    """
    tree = tree.copy()
    for window, ordered, bounds in _offset_frames(tree):
        key = ordered.this
        kind = _time_kind(key)
        units = {unit for _, unit in bounds.values()}
        numeric: exp.Expr
        if kind is not None and kind[0] == "date" and units <= _DAYS.keys():
            numeric, scale = exp.UnixDate(this=key.copy()), _DAYS
        elif kind is not None and kind[0] == "date" and units <= _MONTHS.keys() and kind[1] in _MONTHS:
            epoch = exp.cast(exp.Literal.string("1970-01-01"), exp.DataType.Type.DATE)
            numeric, scale = exp.DateDiff(this=key.copy(), expression=epoch, unit=exp.var("MONTH")), _MONTHS
        elif kind is not None and kind[0] == "timestamp" and units <= _SECONDS.keys():
            # DATETIME or TIMESTAMP alike: the cast reads a DATETIME in UTC, so differences are exact durations.
            timestamp = exp.cast(key.copy(), exp.DataType.Type.TIMESTAMPTZ)
            numeric, scale = exp.UnixSeconds(this=timestamp), _SECONDS
        elif kind is None:
            raise CompileError(f"BigQuery cannot express {_frame(window)} over {key.sql()}: its RANGE frames need a "
                               f"numeric ORDER BY key, and the query does not say whether this is a DATE or a "
                               f"TIMESTAMP")
        else:
            what = f"a {kind[0]} ({key.sql()}{f', a {kind[1].lower()}' if kind[1] else ''})"
            why = "a calendar month is no fixed number of days or seconds; ask for the metric by month, quarter or " \
                "year" if units & _MONTHS.keys() else f"{kind[0]}s take no offset in {', '.join(sorted(units))}"
            raise CompileError(f"BigQuery cannot express {_frame(window)} over {what}: its RANGE frames need a "
                               f"numeric ORDER BY key, and {why}")
        ordered.set("this", numeric)
        _set_bounds(window, bounds, scale)
    return tree


def spark_integer_day_frames(tree: exp.Expr) -> exp.Expr:
    """Spark: a RANGE frame over a DATE key takes integer days (DATE + INT) or a year-month interval; a day-time
    INTERVAL '6' DAY is refused (RANGE_FRAME_INVALID_TYPE) by the Spark 3 releases. Day and week offsets over a
    DATE become whole days; month and year offsets, and any offset over a TIMESTAMP, stay intervals.

    >>> import sqlglot
    >>> tree = sqlglot.parse_one("WITH s AS (SELECT CAST(DATE_TRUNC('day', t) AS DATE) AS d, v FROM x) SELECT SUM(v) "
    ...                          "OVER (ORDER BY d RANGE BETWEEN INTERVAL '1' WEEK PRECEDING AND CURRENT ROW) FROM s",
    ...                          read="duckdb")
    >>> spark_integer_day_frames(tree).sql("spark").split("SELECT ")[-1]
    'SUM(v) OVER (ORDER BY d NULLS LAST RANGE BETWEEN 7 PRECEDING AND CURRENT ROW) FROM s'
    """
    tree = tree.copy()
    for window, ordered, bounds in _offset_frames(tree):
        units = {unit for _, unit in bounds.values()}
        if not units & _DAYS.keys():
            continue
        kind = _time_kind(ordered.this)
        if kind is None:
            raise CompileError(f"Spark cannot take {_frame(window)} over {ordered.this.sql()}: a RANGE frame needs "
                               f"whole days over a DATE and an interval over a TIMESTAMP, and the query does not say "
                               f"which this is")
        if kind[0] != "date":
            continue
        if not units <= _DAYS.keys():
            raise CompileError(f"Spark cannot take {_frame(window)} over a DATE: its two bounds must be of one "
                               f"type, whole days or a year-month interval")
        _set_bounds(window, bounds, _DAYS)
    return tree


def spark_series_as_lateral_view(tree: exp.Expr) -> exp.Expr:
    """Spark: a set of rows from GENERATE_SERIES joined as a table (`JOIN GENERATE_SERIES(...) AS series(p)`, the
    periods of a fill) is a `LATERAL VIEW EXPLODE(SEQUENCE(...)) series AS p`; sqlglot writes the table form as
    `EXPLODE(..., _u(series))`, which Spark reads as a call of an unknown function `_u`.

    >>> import sqlglot
    >>> tree = sqlglot.parse_one("SELECT s.p FROM b CROSS JOIN GENERATE_SERIES(b.lo, b.hi, INTERVAL '1' DAY) AS s(p)",
    ...                          read="duckdb")
    >>> spark_series_as_lateral_view(tree).sql("spark")
    "SELECT s.p FROM b LATERAL VIEW EXPLODE(SEQUENCE(b.lo, b.hi, INTERVAL '1' DAY)) s AS p"
    """
    tree = tree.copy()
    for select in tree.find_all(exp.Select):
        joins = select.args.get("joins") or []
        series = [j for j in joins if isinstance(j.this, exp.Table) and isinstance(j.this.this, exp.GenerateSeries)
                  and not j.args.get("on")]
        for join in series:
            table = join.this
            select.append("laterals", exp.Lateral(this=exp.Explode(this=table.this.copy()), view=True,
                                                  outer=False, alias=table.args["alias"].copy()))
            joins.remove(join)
        if series:
            select.set("joins", joins or None)
    return tree


def bigquery_nulls_last_in_windows(tree: exp.Expr) -> exp.Expr:
    """BigQuery sorts NULLs first in ascending order, and the ORDER BY of an aggregate's window takes no NULLS LAST
    (sqlglot drops it: "'NULLS LAST' translation not supported in window function"), so a NULL period would enter
    every running total. An explicit first key, `key IS NULL`, puts NULLs where the tree wants them. A RANGE frame
    with offsets takes one key only, and there the NULLs' place changes no frame: a NULL key is only ever in range
    of another NULL key.

    >>> import sqlglot
    >>> tree = sqlglot.parse_one("SELECT SUM(v) OVER (ORDER BY d ROWS UNBOUNDED PRECEDING) FROM s", read="duckdb")
    >>> bigquery_nulls_last_in_windows(tree).sql("bigquery")
    'SELECT SUM(v) OVER (ORDER BY d IS NULL, d ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) FROM s'
    """
    tree = tree.copy()
    for window in list(tree.find_all(exp.Window)):
        order, spec = window.args.get("order"), window.args.get("spec")
        if order is None:
            continue
        offsets = spec is not None and spec.text("kind").upper() == "RANGE" and any(
            isinstance(spec.args.get(side), exp.Expression) for side in ("start", "end"))
        items: list[exp.Expr] = []
        for ordered in order.expressions:
            # sqlglot reads a missing NULLS FIRST as NULLS LAST; BigQuery's own place is first ascending, last
            # descending.
            wanted, natural = bool(ordered.args.get("nulls_first")), not ordered.args.get("desc")
            if wanted != natural:
                ordered.set("nulls_first", natural)
                if not offsets:
                    missing = exp.Is(this=ordered.this.copy(), expression=exp.Null())
                    items.append(exp.Ordered(this=missing, desc=wanted or None, nulls_first=not wanted))
            items.append(ordered)
        order.set("expressions", items)
    return tree


def duckdb_arg_max_keeps_nulls(tree: exp.Expr) -> exp.Expr:
    """DuckDB's ARG_MAX skips rows whose value is NULL, so a NULL at the last time would let an earlier value
    through; ARG_MAX_NULL returns the value at the last time, NULL or not.

    >>> import sqlglot
    >>> duckdb_arg_max_keeps_nulls(sqlglot.parse_one("SELECT ARG_MAX(v, t) FROM s", read="duckdb")).sql("duckdb")
    'SELECT ARG_MAX_NULL(v, t) FROM s'
    """
    tree = tree.copy()
    for node in list(tree.find_all(exp.ArgMax, exp.ArgMin)):
        name = "ARG_MAX_NULL" if isinstance(node, exp.ArgMax) else "ARG_MIN_NULL"
        node.replace(exp.Anonymous(this=name, expressions=[node.this, node.expression]))
    return tree


def postgres_arg_max(tree: exp.Expr) -> exp.Expr:
    """PostgreSQL has no ARG_MAX: the first value ordered by time, descending, is the value at the last time.

    >>> import sqlglot
    >>> postgres_arg_max(sqlglot.parse_one("SELECT ARG_MAX(v, t) FROM s", read="duckdb")).sql("postgres")
    'SELECT (ARRAY_AGG(v ORDER BY t DESC NULLS LAST))[1] FROM s'
    """
    tree = tree.copy()
    for node in list(tree.find_all(exp.ArgMax, exp.ArgMin)):
        ordered = exp.Ordered(this=node.expression, desc=isinstance(node, exp.ArgMax), nulls_first=False)
        values = exp.ArrayAgg(this=exp.Order(this=node.this, expressions=[ordered]))
        node.replace(exp.Bracket(this=exp.Paren(this=values), expressions=[exp.Literal.number(0)]))
    return tree


# --- arithmetic --------------------------------------------------------------------------------------------------

def null_division(tree: exp.Expr) -> exp.Expr:
    """Division by zero is NULL on every warehouse: PostgreSQL raises, DuckDB returns Infinity or NaN, so every
    divisor that could be zero becomes NULLIF(divisor, 0) (one already so, or a non-zero number, is left alone).

    >>> import sqlglot
    >>> null_division(sqlglot.parse_one("SELECT a / b, a / NULLIF(b, 0), a / 2 FROM t")).sql()
    'SELECT a / NULLIF(b, 0), a / NULLIF(b, 0), a / 2 FROM t'
    """
    tree = tree.copy()
    for node in list(tree.find_all(exp.Div)):
        divisor = node.expression
        while isinstance(divisor, exp.Paren):
            divisor = divisor.this
        if isinstance(divisor, exp.Literal) and not divisor.is_string and float(divisor.this) != 0:
            continue
        if isinstance(divisor, exp.Nullif) and isinstance(divisor.expression, exp.Literal) \
                and not divisor.expression.is_string and float(divisor.expression.this) == 0:
            continue
        node.set("expression", exp.Nullif(this=node.expression, expression=exp.Literal.number(0)))
    return tree


# --- the rules of each dialect -----------------------------------------------------------------------------------

RULES: dict[str, tuple[Rewrite, ...]] = {
    "duckdb": (null_division, duckdb_arg_max_keeps_nulls),
    "postgres": (null_division, postgres_arg_max),
    "snowflake": (null_division,),
    "bigquery": (null_division, bigquery_exact_percentile, bigquery_monday_weeks, bigquery_truncate_dates,
                 bigquery_numeric_range_frames, bigquery_nulls_last_in_windows),
    "trino": (null_division, trino_exact_percentile),
    "spark": (null_division, spark_exact_percentile, spark_integer_day_frames, spark_series_as_lateral_view),
}


def rewrite(tree: exp.Expr, dialect: str) -> exp.Expr:
    """The tree as `dialect` needs it to mean the same; `tree` itself is left as it was (each rule copies)."""
    for rule in RULES.get(dialect, ()):
        tree = rule(tree)
    return tree
