"""sqlglot tree -> SQL text. One tree, any dialect; cache keys use the comment-free, compact form."""

from __future__ import annotations

from sqlglot import exp

DIALECTS: tuple[str, ...] = ("duckdb", "postgres", "snowflake", "bigquery", "trino", "spark")


def render(tree: exp.Expression, dialect: str, *, pretty: bool = False, comments: bool = False) -> str:
    """SQL text for `dialect`; `pretty` and `comments` for people, neither for execution and cache keys."""
    return tree.sql(dialect=dialect, pretty=pretty, comments=comments)
