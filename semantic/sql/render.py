"""sqlglot tree -> SQL text. One tree, any dialect; cache keys use the comment-free, compact form.

The dialect's rewrites (`semantic.sql.dialects`) run first, on a copy; then sqlglot writes the SQL, refusing rather
than dropping anything it cannot say in the dialect (by default it only logs that and writes the rest).

This is also the one gate every rendered query passes: only a single SELECT (or a set operation of SELECTs) is ever
written, and string literals are written so that no server setting can change how they read.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import ErrorLevel, UnsupportedError

from semantic.errors import CompileError
from semantic.sql.dialects import rewrite

DIALECTS: tuple[str, ...] = ("duckdb", "postgres", "snowflake", "bigquery", "trino", "spark")

# Statements that write or reconfigure; none may appear anywhere in a rendered query, a CTE included.
_NOT_READS: tuple[type[exp.Expr], ...] = (exp.DML, exp.Create, exp.Drop, exp.Alter, exp.Command, exp.Set,
                                          exp.Pragma, exp.Use, exp.Transaction, exp.Commit, exp.Rollback)


def render(tree: exp.Expr, dialect: str, *, pretty: bool = False, comments: bool = False) -> str:
    """SQL text for `dialect`; `pretty` and `comments` for people, neither for execution and cache keys.

    >>> render(exp.select(exp.Literal.string("a\\\\' or 1=1")), "postgres")
    "SELECT e'a\\\\\\\\'' or 1=1'"

    Raises:
        CompileError: the dialect cannot express the tree exactly, or the tree is not a single SELECT.
    """
    check_read_only(tree)
    try:
        written = rewrite(tree, dialect)
        if dialect == "postgres":
            written = written.transform(_escape_string)
        return written.sql(dialect=dialect, pretty=pretty, comments=comments, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as error:
        raise CompileError(f"{dialect} cannot express this exactly: {error}") from None


def check_read_only(tree: exp.Expr) -> None:
    """Refuse anything but one query that only reads. Every statement the planner builds is one; this holds it.

    Raises:
        CompileError: the tree is, or holds, a statement that is not a SELECT.
    """
    if not isinstance(tree, exp.Query):
        raise CompileError(f"refusing to run a {tree.key.upper()} statement: only SELECT queries are run")
    found = tree.find(*_NOT_READS)
    if found is not None:
        raise CompileError(f"refusing to run a query holding a {found.key.upper()} statement: only SELECT "
                           f"queries are run")


def _escape_string(node: exp.Expr) -> exp.Expr:
    """PostgreSQL reads a backslash in '...' as an escape when `standard_conforming_strings` is off, so a literal
    holding one is written as an escape string, E'...' with the backslash doubled, which reads the same under
    either setting. (The connection pins the setting on too; this does not depend on it.)"""
    if isinstance(node, exp.Literal) and node.is_string and "\\" in node.this:
        return exp.ByteString(this=node.this)
    return node
