"""`semantic compile`: print the SQL a query would run."""

from __future__ import annotations

import click

from api.cli.common import build_query, exits, open_model, query_options, warehouse_url
from api.cli.identity import access_of, as_option
from api.cli.osi import only_query_file, osi_compile
from semantic.errors import WarehouseUnavailableError
from semantic.execute import SqlWarehouse
from semantic.model import Model
from semantic.service import Service
from semantic.sql.render import DIALECTS


@click.command(name="compile")
@click.argument("model", required=False)
@query_options
@click.option("--dialect", type=click.Choice(DIALECTS),
              help="Target dialect; default: the warehouse's (--warehouse, SEMANTIC_WAREHOUSE_URL, the model's).")
@click.option("--warehouse", help="SQLAlchemy URL whose dialect to compile for; overrides the model and "
                                  "SEMANTIC_WAREHOUSE_URL. Nothing runs on it.")
@as_option
@exits
def compile_(model: str | None, metrics: tuple[str, ...], dimensions: tuple[str, ...], where: str | None,
             order_by: tuple[str, ...], limit: int | None, offset: int | None, timezone: str | None, fill: str | None,
             query_file: str | None, dialect: str | None, warehouse: str | None, as_claims: str | None) -> None:
    """Print the SQL for a query on MODEL, each step labelled, without running it."""
    if query_file is not None:
        only_query_file(metric=metrics, by=dimensions, where=where, order_by=order_by, limit=limit, offset=offset,
                        tz=timezone, fill=fill)
        click.echo(osi_compile(model, query_file, dialect, access_of(as_claims)))
        return
    loaded = open_model(model)
    q = build_query(metrics, dimensions, where, order_by, limit, offset, timezone, fill)
    target = dialect or _warehouse_dialect(loaded, warehouse) or loaded.dialect
    click.echo(Service(loaded, None).compile(q, target, access_of(as_claims)).pretty())


def _warehouse_dialect(model: Model, override: str | None) -> str | None:
    """The dialect of the warehouse the query would run on (its engine is made, never connected)."""
    url = warehouse_url(model, override)
    if url is None:
        return None
    try:
        engine = SqlWarehouse(url)
    except WarehouseUnavailableError:  # a DuckDB file not built yet: its dialect is still DuckDB's
        return "duckdb" if url.startswith("duckdb") else None
    engine.close()
    return engine.dialect
