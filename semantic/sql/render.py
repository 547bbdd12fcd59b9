"""sqlglot tree -> SQL text. One tree, any dialect; cache keys use the comment-free, compact form.

The dialect's rewrites (`semantic.sql.dialects`) run first, on a copy; then sqlglot writes the SQL, refusing rather
than dropping anything it cannot say in the dialect (by default it only logs that and writes the rest).
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import ErrorLevel, UnsupportedError

from semantic.errors import CompileError
from semantic.sql.dialects import rewrite

DIALECTS: tuple[str, ...] = ("duckdb", "postgres", "snowflake", "bigquery", "trino", "spark")


def render(tree: exp.Expr, dialect: str, *, pretty: bool = False, comments: bool = False) -> str:
    """SQL text for `dialect`; `pretty` and `comments` for people, neither for execution and cache keys.

    Raises:
        CompileError: the dialect cannot express the tree exactly.
    """
    try:
        return rewrite(tree, dialect).sql(dialect=dialect, pretty=pretty, comments=comments,
                                          unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as error:
        raise CompileError(f"{dialect} cannot express this exactly: {error}") from None
