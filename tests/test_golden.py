"""Golden SQL: a fixed set of named queries compiled for every dialect and compared with `tests/golden/<dialect>/`.

Each golden file holds a header (query name, dialect, the request as text) and the labelled, pretty SQL, so a change
to the compiler shows up as a diff a reviewer reads like code. After an intended change, regenerate the files with

    SEMANTIC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_golden.py

and review the diff. Beside the snapshots:

- the compact SQL of every (query, dialect) must parse back with sqlglot in that dialect and render to the same text;
- sqlglot must report nothing it could not express in the dialect, once the dialect's rewrites
  (`semantic.sql.dialects`) have run (sqlglot only logs such things by default; `render()` refuses them);
- every query runs on DuckDB (its duckdb SQL) and on PostgreSQL (its postgres SQL), and both return the same rows,
  which cross-checks the two renderings against each other;
- `CHECKS` asserts, for a (query, dialect), what a dialect rewrite is for (the form the dialect needs, or
  CompileError); a known problem not fixed yet is listed in `PROBLEMS`, which makes its check a strict xfail, so a fix
  shows up as an unexpected pass and the entry (and the golden files) must then be updated;
- each rewrite that DuckDB can run keeps the answer: applied alone to a query's tree, the DuckDB SQL of the result
  returns the rows of the query's own DuckDB SQL.

Other expected outcomes are listed explicitly, each with its reason: `EXPECTED_COMPILE_ERRORS` for a (query, dialect)
that must raise CompileError, `ROUND_TRIP_EXCEPTIONS` for SQL sqlglot cannot read back unchanged, `DISAGREEMENTS` for
a query whose rows differ between DuckDB and PostgreSQL.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel

from semantic.errors import CompileError
from semantic.execute import SqlWarehouse
from semantic.model import Model
from semantic.query import Filter, Order, SemanticQuery
from semantic.service import Compiled, Service
from semantic.sql import dialects
from semantic.sql.dialects import rewrite
from semantic.sql.render import DIALECTS, render

GOLDEN = Path(__file__).parent / "golden"
UPDATE = os.environ.get("SEMANTIC_UPDATE_GOLDEN") == "1"
REGENERATE = "SEMANTIC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest -q tests/test_golden.py"


def _query(metrics: tuple[str, ...] = (), dimensions: tuple[str, ...] = (), where: str | None = None,
           order_by: tuple[str, ...] = (), limit: int | None = None, offset: int | None = None) -> SemanticQuery:
    return SemanticQuery(metrics, dimensions, Filter.parse(where) if where else None,
                         tuple(Order.parse(o) for o in order_by), limit, offset)


# One query per kind the compiler handles. Names are file names: renaming one deletes and adds golden files.
QUERIES: dict[str, SemanticQuery] = {
    # A simple metric by a dimension of a related entity.
    "revenue_by_region": _query(("order.revenue",), ("customer.region",)),
    # Every aggregation: count, count_distinct, sum, min, max, avg, median and percentile (both interpolated).
    "aggregations_by_channel": _query(
        ("order.order_count", "order.buyers", "order.gross_amount", "order.smallest_order", "order.largest_order",
         "order.average_amount", "order.median_amount", "order.p90_amount"),
        ("order.channel",)),
    # A derived metric over two simple ones.
    "average_order_value_by_segment": _query(("order.average_order_value",), ("customer.segment",)),
    # A metric whose own filter reaches a related entity (customer.segment).
    "enterprise_revenue_by_month": _query(("order.enterprise_revenue",), ("time:month",)),
    # Two hops: order_item -> order -> customer.
    "units_by_region": _query(("order_item.units",), ("customer.region",)),
    # Two entities aggregated apart, then stitched on the dimension values.
    "revenue_and_views_by_region_month": _query(("order.revenue", "page_view.views"),
                                                ("customer.region", "time:month")),
    # Week (starting on Monday) and quarter grains.
    "orders_by_week": _query(("order.order_count",), ("time:week",)),
    "revenue_by_quarter_channel": _query(("order.revenue",), ("time:quarter", "order.channel")),
    # Dimension filters: IN, BETWEEN on time, LIKE, IS (NOT) NULL.
    "revenue_filtered": _query(
        ("order.revenue",), ("order.status",),
        "customer.region in ('EU', 'NA') and time:day between '2024-03-01' and '2024-06-30' "
        "and order.channel like 'w%' and customer.segment is not null"),
    "orders_of_unknown_region": _query(("order.order_count",), ("order.channel",), "customer.region is null"),
    # A metric filter, applied after aggregation.
    "big_customers": _query(("order.revenue",), ("customer.customer_id",), "order.revenue > 1000"),
    # Order, limit and offset.
    "top_categories": _query(("order_item.units",), ("product.category",), order_by=("-order_item.units",),
                             limit=3, offset=1),
    # Dimensions only: the distinct values.
    "regions_and_segments": _query((), ("customer.region", "customer.segment")),
    # Cumulative: a trailing window (with a time filter choosing the reported days), grain-to-date, unbounded.
    "revenue_rolling_7d_by_day": _query(("order.revenue_rolling_7d",), ("time:day",), "time:day >= '2024-06-01'"),
    "revenue_mtd_by_day": _query(("order.revenue_mtd",), ("time:day",)),
    "orders_to_date_by_month": _query(("order.orders_to_date",), ("time:month",)),
    # Offset and growth: the value a year earlier, and a derived metric over it.
    "revenue_yoy_by_month": _query(("order.revenue", "order.revenue_last_year", "order.revenue_growth_yoy"),
                                   ("time:month",)),
    # Trailing windows in calendar months and in hours, and a one-month offset from each day (month ends and leap
    # days): frames that BigQuery and Spark need in other units, or cannot take.
    "revenue_rolling_3m_by_month": _query(("order.revenue_rolling_3m",), ("time:month",)),
    "revenue_rolling_7d_by_hour": _query(("order.revenue_rolling_7d",), ("time:hour",), "time:day >= '2024-06-01'"),
    "revenue_last_month_by_day": _query(("order.revenue_last_month",), ("time:day",)),
}

# (query, dialect) -> why compiling it must raise CompileError; the golden file then records the message.
EXPECTED_COMPILE_ERRORS: dict[tuple[str, str], str] = {
    ("revenue_last_month_by_day", "bigquery"):
        "a BigQuery RANGE frame with offsets needs a numeric ORDER BY key, and one month before a day is no fixed "
        "number of days (one month before March 31 is February 29 or 28)",
}

# (query, dialect) -> why sqlglot cannot parse the compact SQL back to the same text (as sqlglot's `validate_all`
# accepts an expected UnsupportedError); the check then only requires that it parses.
ROUND_TRIP_EXCEPTIONS: dict[tuple[str, str], str] = {}

PAIRS = [(name, dialect) for name in QUERIES for dialect in DIALECTS]
COMPILING = [pair for pair in PAIRS if pair not in EXPECTED_COMPILE_ERRORS]


def describe(query: SemanticQuery) -> str:
    """The request on one line, for a golden file's header."""
    parts = [f"metrics={', '.join(query.metrics) or '-'}", f"dimensions={', '.join(query.dimensions) or '-'}"]
    if query.where is not None:
        parts.append(f"where={query.where.text}")
    if query.order_by:
        parts.append("order_by=" + ", ".join(f"{'-' if o.descending else ''}{o.item}" for o in query.order_by))
    if query.limit is not None:
        parts.append(f"limit={query.limit}")
    if query.offset is not None:
        parts.append(f"offset={query.offset}")
    return "; ".join(parts)


@pytest.fixture(scope="module")
def compiler(model: Model) -> Service:
    """A service without a warehouse: it compiles for any dialect."""
    return Service(model, None)


def compile_or_error(compiler: Service, name: str, dialect: str) -> Compiled | CompileError:
    try:
        return compiler.compile(QUERIES[name], dialect)
    except CompileError as error:
        return error


# --- golden files ----------------------------------------------------------------------------------------------

def golden_path(name: str, dialect: str) -> Path:
    return GOLDEN / dialect / f"{name}.sql"


def golden_text(name: str, dialect: str, outcome: Compiled | CompileError) -> str:
    header = f"-- query: {name}\n-- dialect: {dialect}\n-- request: {describe(QUERIES[name])}\n"
    body = outcome.pretty() if isinstance(outcome, Compiled) else f"-- CompileError: {outcome}"
    return f"{header}{body}\n"


@pytest.mark.parametrize(("name", "dialect"), PAIRS)
def test_golden_sql(compiler: Service, name: str, dialect: str) -> None:
    outcome = compile_or_error(compiler, name, dialect)
    expected_error = EXPECTED_COMPILE_ERRORS.get((name, dialect))
    if isinstance(outcome, CompileError) and expected_error is None:
        pytest.fail(f"{name} does not compile for {dialect}: {outcome}. If that is right, list it in "
                    f"EXPECTED_COMPILE_ERRORS with the reason.")
    if isinstance(outcome, Compiled) and expected_error is not None:
        pytest.fail(f"{name} now compiles for {dialect}, but EXPECTED_COMPILE_ERRORS says it cannot "
                    f"({expected_error}); remove the entry and run {REGENERATE}")
    text = golden_text(name, dialect, outcome)
    path = golden_path(name, dialect)
    if UPDATE:
        if not path.exists() or path.read_text() != text:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
        return
    if not path.exists():
        pytest.fail(f"{path.relative_to(GOLDEN.parent.parent)} is missing; create it with {REGENERATE}")
    stored = path.read_text()
    if stored != text:
        diff = "".join(difflib.unified_diff(stored.splitlines(keepends=True), text.splitlines(keepends=True),
                                            f"{path.name} (stored)", f"{path.name} (compiled now)"))
        pytest.fail(f"the SQL of {name} for {dialect} changed. If the change is intended, regenerate the golden "
                    f"files with\n    {REGENERATE}\nand review the diff.\n\n{diff}", pytrace=False)


def test_no_stale_golden_files() -> None:
    """Every golden file belongs to a (query, dialect) pair; with SEMANTIC_UPDATE_GOLDEN=1 stale ones go."""
    wanted = {golden_path(name, dialect) for name, dialect in PAIRS}
    stale = sorted(p for p in GOLDEN.glob("*/*.sql") if p not in wanted)
    if UPDATE:
        for path in stale:
            path.unlink()
        return
    assert not stale, f"golden files without a query: {[str(p) for p in stale]}; remove them with {REGENERATE}"


# --- the SQL as each dialect reads it --------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "dialect"), COMPILING)
def test_parses_back(compiler: Service, name: str, dialect: str) -> None:
    """sqlglot reads the SQL in its own dialect and writes the same text: nothing was rendered that the dialect's
    parser misreads."""
    compiled = compiler.compile(QUERIES[name], dialect)
    tree = sqlglot.parse_one(compiled.sql, read=dialect)
    if (name, dialect) not in ROUND_TRIP_EXCEPTIONS:
        assert tree.sql(dialect=dialect) == compiled.sql


@pytest.mark.parametrize(("name", "dialect"), COMPILING)
def test_nothing_unsupported(compiler: Service, name: str, dialect: str) -> None:
    """After the dialect's rewrites, sqlglot renders the tree without dropping anything it cannot say in the
    dialect (such as NULLS LAST in the ORDER BY of a BigQuery window, which it would only log)."""
    compiled = compiler.compile(QUERIES[name], dialect)
    try:
        rewrite(compiled.tree, dialect).sql(dialect=dialect, unsupported_level=ErrorLevel.RAISE)
    except sqlglot.errors.UnsupportedError as error:
        raise AssertionError(f"sqlglot cannot express this in {dialect}: {error}") from None


@pytest.mark.parametrize("dialect", DIALECTS)
def test_rendering_leaves_the_tree_alone(compiler: Service, dialect: str) -> None:
    """The dialect rewrites work on a copy: a compiled tree (which the plan cache shares) is the same after it is
    rendered for any dialect."""
    for name in QUERIES:
        tree = compiler.compile(QUERIES[name], "duckdb").tree
        before = tree.copy()
        try:
            render(tree, dialect)
        except CompileError:
            pass  # EXPECTED_COMPILE_ERRORS pins these; the tree must be left alone all the same
        assert tree == before, f"rendering {name} for {dialect} changed the tree it was given"


# --- what each dialect rewrite is for ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    """A (query, dialect) whose SQL needs a dialect rewrite; `check` asserts the right outcome (SQL or CompileError)
    and `wrong` says what sqlglot's plain translation gets wrong there."""

    name: str
    dialect: str
    wrong: str
    check: Callable[[Compiled | CompileError], None]

    @property
    def id(self) -> str:
        return f"{self.name}-{self.dialect}-{self.check.__name__}"


def _parsed(outcome: Compiled | CompileError) -> exp.Expr:
    assert isinstance(outcome, Compiled), f"expected SQL, got CompileError: {outcome}"
    return sqlglot.parse_one(outcome.sql, read=outcome.dialect)


def _no_approximate_percentile(tree: exp.Expr) -> None:
    approximate = list(tree.find_all(exp.ApproxQuantile, exp.ApproxQuantiles))
    assert not approximate, f"an approximate percentile is not an interpolated one: {approximate[0].sql()}"


def trino_exact_percentile(outcome: Compiled | CompileError) -> None:
    """Trino has no PERCENTILE_CONT and its APPROX_PERCENTILE is approximate: refuse, or compute it exactly."""
    if isinstance(outcome, CompileError):
        return
    tree = _parsed(outcome)
    assert not list(tree.find_all(exp.PercentileCont)), "Trino has no PERCENTILE_CONT function"
    _no_approximate_percentile(tree)


def bigquery_exact_percentile(outcome: Compiled | CompileError) -> None:
    """BigQuery's PERCENTILE_CONT is a navigation function (it needs OVER); as an aggregate it is refused."""
    if isinstance(outcome, CompileError):
        return
    tree = _parsed(outcome)
    bare = [node.sql("bigquery") for node in tree.find_all(exp.PercentileCont)
            if not isinstance(node.parent, exp.Window)]
    assert not bare, f"PERCENTILE_CONT without OVER is not an aggregate in BigQuery: {bare[0]}"
    _no_approximate_percentile(tree)


def spark_exact_percentile(outcome: Compiled | CompileError) -> None:
    """Spark spells it PERCENTILE(x, p) or PERCENTILE_CONT(p) WITHIN GROUP (ORDER BY x); PERCENTILE_CONT(x, p) is
    refused (Spark 4: one argument expected; Spark 3.3-3.5: only with WITHIN GROUP)."""
    tree = _parsed(outcome)
    bare = [node.sql("spark") for node in tree.find_all(exp.PercentileCont)
            if not isinstance(node.parent, exp.WithinGroup)]
    assert not bare, f"not a Spark percentile: {bare[0]}"
    _no_approximate_percentile(tree)


def bigquery_monday_weeks(outcome: Compiled | CompileError) -> None:
    """BigQuery's WEEK starts on Sunday; our weeks start on Monday (WEEK(MONDAY) or ISOWEEK)."""
    assert isinstance(outcome, Compiled), f"expected SQL, got CompileError: {outcome}"
    sunday = re.findall(r"\w+_TRUNC\([^()]*, WEEK\)", outcome.sql)
    assert not sunday, f"BigQuery truncates to Sunday-start weeks here: {sunday[0]}"


def bigquery_numeric_range(outcome: Compiled | CompileError) -> None:
    """BigQuery: 'ORDER BY key must be numeric in a RANGE-based window with OFFSET PRECEDING or OFFSET FOLLOWING
    boundaries'; a DATE key needs UNIX_DATE (days) or a month number (months, years) and integer offsets."""
    if isinstance(outcome, CompileError):
        return
    frames = [spec.sql("bigquery") for spec in _parsed(outcome).find_all(exp.WindowSpec)
              if spec.args.get("kind") == "RANGE"
              and any(isinstance(spec.args.get(bound), exp.Interval) for bound in ("start", "end"))]
    assert not frames, f"a RANGE frame with INTERVAL offsets over a DATE key: {frames[0]}"


def spark_date_range(outcome: Compiled | CompileError) -> None:
    """Spark: a RANGE frame over a DATE key takes integer days or a year-month interval; INTERVAL '6' DAY (a day-time
    interval) fails analysis (RANGE_FRAME_INVALID_TYPE)."""
    if isinstance(outcome, CompileError):
        return
    frames = [spec.sql("spark") for spec in _parsed(outcome).find_all(exp.WindowSpec)
              if spec.args.get("kind") == "RANGE"
              and any(isinstance(b := spec.args.get(bound), exp.Interval) and b.text("unit").upper() == "DAY"
                      for bound in ("start", "end"))]
    assert not frames, f"a day-time INTERVAL in a RANGE frame over a DATE key: {frames[0]}"


def bigquery_dates_truncated_as_dates(outcome: Compiled | CompileError) -> None:
    """BigQuery's TIMESTAMP_TRUNC takes a TIMESTAMP or a DATETIME; a period column of day grain or coarser is a
    DATE, truncated with DATE_TRUNC."""
    assert isinstance(outcome, Compiled), f"expected SQL, got CompileError: {outcome}"
    on_dates = re.findall(r"TIMESTAMP_TRUNC\(`time__(?:day|week|month|quarter|year)`[^()]*\)", outcome.sql)
    assert not on_dates, f"TIMESTAMP_TRUNC of a DATE: {on_dates[0]}"


CHECKS: list[Check] = [
    Check("aggregations_by_channel", "trino",
          'PERCENTILE_CONT(CAST("order".amount AS DOUBLE), 0.5): Trino has no PERCENTILE_CONT, and its '
          "APPROX_PERCENTILE is approximate; the percentile is interpolated in ARRAY_AGG(x ORDER BY x)",
          trino_exact_percentile),
    Check("aggregations_by_channel", "bigquery",
          "PERCENTILE_CONT(CAST(`order`.amount AS FLOAT64), 0.5) under GROUP BY: in BigQuery it is an analytic "
          "function that needs OVER (APPROX_QUANTILES is approximate); the percentile is interpolated in "
          "ARRAY_AGG(x IGNORE NULLS ORDER BY x)",
          bigquery_exact_percentile),
    Check("aggregations_by_channel", "spark",
          "PERCENTILE_CONT(CAST(`order`.amount AS DOUBLE), 0.5): Spark 3 wants WITHIN GROUP, Spark 4 one argument; "
          "its exact, interpolated aggregate is PERCENTILE(x, 0.5)",
          spark_exact_percentile),
    Check("orders_by_week", "bigquery",
          "TIMESTAMP_TRUNC(`order`.ordered_at, WEEK) starts weeks on Sunday, every other dialect on Monday: "
          "WEEK(MONDAY)",
          bigquery_monday_weeks),
    Check("revenue_rolling_7d_by_day", "bigquery",
          "RANGE BETWEEN INTERVAL '6' DAY PRECEDING over the DATE `time__day`: BigQuery RANGE offsets need a numeric "
          "key, ORDER BY UNIX_DATE(`time__day`) RANGE BETWEEN 6 PRECEDING AND CURRENT ROW",
          bigquery_numeric_range),
    Check("revenue_yoy_by_month", "bigquery",
          "RANGE BETWEEN INTERVAL '1' YEAR PRECEDING AND INTERVAL '1' YEAR PRECEDING over the DATE `time__month`: "
          "BigQuery needs a numeric key, ORDER BY DATE_DIFF(`time__month`, DATE '1970-01-01', MONTH) RANGE BETWEEN "
          "12 PRECEDING AND 12 PRECEDING",
          bigquery_numeric_range),
    Check("revenue_rolling_3m_by_month", "bigquery",
          "RANGE BETWEEN INTERVAL '2' MONTH PRECEDING over the DATE `time__month`: a month number, as above",
          bigquery_numeric_range),
    Check("revenue_rolling_7d_by_hour", "bigquery",
          "RANGE BETWEEN INTERVAL '167' HOUR PRECEDING over the time `time__hour`: seconds, "
          "UNIX_SECONDS(CAST(`time__hour` AS TIMESTAMP)) RANGE BETWEEN 601200 PRECEDING AND CURRENT ROW",
          bigquery_numeric_range),
    Check("revenue_last_month_by_day", "bigquery",
          "RANGE BETWEEN INTERVAL '1' MONTH PRECEDING over the DATE `time__day`: no numeric key keeps calendar "
          "months from a day, so CompileError",
          bigquery_numeric_range),
    Check("revenue_rolling_7d_by_day", "spark",
          "RANGE BETWEEN INTERVAL '6' DAY PRECEDING over the DATE `time__day`: Spark takes integer days or a "
          "year-month interval for a DATE key, RANGE BETWEEN 6 PRECEDING AND CURRENT ROW",
          spark_date_range),
    Check("revenue_rolling_7d_by_day", "bigquery",
          "CAST(TIMESTAMP_TRUNC(`time__day`, DAY) AS DATE) in the period filter: DATE_TRUNC(`time__day`, DAY)",
          bigquery_dates_truncated_as_dates),
    Check("revenue_mtd_by_day", "bigquery",
          "PARTITION BY CAST(TIMESTAMP_TRUNC(`time__day`, MONTH) AS DATE): DATE_TRUNC(`time__day`, MONTH)",
          bigquery_dates_truncated_as_dates),
]

# Check id -> why that check still fails: it then runs as a strict xfail, so a fix shows up. Empty today.
PROBLEMS: dict[str, str] = {}


@pytest.mark.parametrize("check", [
    pytest.param(c, id=c.id, marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=PROBLEMS[c.id]))
    if c.id in PROBLEMS else pytest.param(c, id=c.id) for c in CHECKS])
def test_dialect_check(compiler: Service, check: Check) -> None:
    check.check(compile_or_error(compiler, check.name, check.dialect))


def test_every_problem_has_a_check() -> None:
    assert set(PROBLEMS) <= {c.id for c in CHECKS}, "PROBLEMS names a check that CHECKS does not have"


# --- each rewrite keeps the answer -------------------------------------------------------------------------------

# The rewrites whose DuckDB rendering means what they say in their own dialect. Not here: `spark_exact_percentile`
# (sqlglot writes Spark's PERCENTILE as DuckDB's discrete QUANTILE) and `bigquery_monday_weeks` (DuckDB's weeks
# already start on Monday).
RUNNABLE_ON_DUCKDB: tuple[dialects.Rewrite, ...] = (
    dialects.bigquery_exact_percentile, dialects.trino_exact_percentile, dialects.bigquery_truncate_dates,
    dialects.bigquery_numeric_range_frames, dialects.bigquery_nulls_last_in_windows,
    dialects.spark_integer_day_frames)


@pytest.mark.parametrize("rule", RUNNABLE_ON_DUCKDB, ids=lambda rule: getattr(rule, "__name__", "rule"))
@pytest.mark.parametrize("name", list(QUERIES))
def test_rewrite_keeps_the_answer(compiler: Service, duckdb_path: Path, rule: dialects.Rewrite, name: str) -> None:
    """A rewrite applied alone to a query's tree, written for DuckDB, returns the rows of the query's DuckDB SQL: the
    day numbers, month numbers, seconds, NULL sort keys and interpolations mean what the intervals, NULLS LAST and
    PERCENTILE_CONT did."""
    compiled = compiler.compile(QUERIES[name], "duckdb")
    try:
        rewritten = rule(compiled.tree).sql(dialect="duckdb", comments=False, unsupported_level=ErrorLevel.RAISE)
    except CompileError:
        return  # the rule refuses this query: nothing to run (EXPECTED_COMPILE_ERRORS pins where)
    if rewritten == compiled.sql:
        return  # nothing to rewrite in this query
    # Opened as the other tests open it and closed at once: DuckDB refuses a differently configured connection to a
    # file that is open, and the conftest's PostgreSQL copy reads the file later in the session.
    warehouse = SqlWarehouse(f"duckdb:///{duckdb_path}")
    try:
        got = sorted(warehouse.run(rewritten).rows, key=_sort_key)
        expected = sorted(warehouse.run(compiled.sql).rows, key=_sort_key)
    finally:
        warehouse.close()
    assert len(got) == len(expected), f"{name}: {len(got)} rows rewritten, {len(expected)} as compiled"
    for row, other in zip(got, expected, strict=True):
        assert all(_same(a, b) for a, b in zip(row, other, strict=True)), f"{name}: rewritten {row} != {other}"


@pytest.mark.parametrize("rule", [dialects.bigquery_exact_percentile, dialects.trino_exact_percentile],
                         ids=lambda rule: getattr(rule, "__name__", "rule"))
@pytest.mark.parametrize("fraction", [0, 0.25, 0.5, 0.9, 1])
def test_interpolated_percentile_is_percentile_cont(rule: dialects.Rewrite, fraction: float) -> None:
    """On groups of several values, one value, only NULLs, and NULLs among values, the interpolation in the sorted
    values returns what DuckDB's own continuous percentile does."""
    value = exp.cast(exp.column("x"), exp.DataType.Type.DOUBLE)
    percentile = exp.PercentileCont(this=value, expression=exp.Literal.number(fraction))
    tree = exp.select("g", exp.alias_(percentile, "v")).from_("t").group_by("g")
    with duckdb.connect() as connection:
        connection.execute("CREATE TABLE t AS SELECT * FROM (VALUES (1, 1.0), (1, 2.0), (1, 3.0), (1, 4.0), "
                           "(2, 5.0), (3, NULL), (4, NULL), (4, 7.0), (4, 1.0), (4, 10.0), (4, 7.0)) AS v(g, x)")
        expected = sorted(connection.execute(tree.sql(dialect="duckdb")).fetchall())
        got = sorted(connection.execute(rule(tree).sql(dialect="duckdb")).fetchall())
    assert len(got) == len(expected) == 4
    assert all(_same(a, b) for row, other in zip(got, expected, strict=True) for a, b in zip(row, other, strict=True)), \
        f"{got} != {expected}"


# --- DuckDB and PostgreSQL agree ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def warehouses(duckdb_path: Path, postgres_url: str) -> Iterator[dict[str, SqlWarehouse]]:
    """The conftest's example data on both warehouses, as its `service` fixture opens them, side by side."""
    opened = {"duckdb": SqlWarehouse(f"duckdb:///{duckdb_path}"), "postgres": SqlWarehouse(postgres_url)}
    yield opened
    for warehouse in opened.values():
        warehouse.close()


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((value is None, "" if value is None else value) for value in row)


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, date) or isinstance(b, date):
        return type(a) is type(b) and a == b  # a datetime is not the date it starts
    if isinstance(a, float | Decimal) or isinstance(b, float | Decimal):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


# query -> why DuckDB and PostgreSQL return different rows for it (a strict xfail, so a fix shows up). Empty today.
DISAGREEMENTS: dict[str, str] = {}


@pytest.mark.postgres
@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.xfail(strict=True, raises=AssertionError, reason=DISAGREEMENTS[name]))
    if name in DISAGREEMENTS else name for name in QUERIES])
def test_duckdb_and_postgres_agree(compiler: Service, warehouses: dict[str, SqlWarehouse], name: str) -> None:
    """Each warehouse runs the SQL compiled for its own dialect; the rows (sorted) are the same."""
    results = {}
    for dialect, warehouse in warehouses.items():
        table = warehouse.run(compiler.compile(QUERIES[name], dialect).sql)
        assert table.rows, f"{name} returns no rows on {dialect}; a golden query should exercise the data"
        results[dialect] = sorted(table.rows, key=_sort_key)
    duck, pg = results["duckdb"], results["postgres"]
    assert len(duck) == len(pg), f"{name}: {len(duck)} rows on DuckDB, {len(pg)} on PostgreSQL"
    for got, other in zip(duck, pg, strict=True):
        assert all(_same(a, b) for a, b in zip(got, other, strict=True)), f"{name}: DuckDB {got} != PostgreSQL {other}"
