"""`semantic compile`: print the SQL a query would run."""

from __future__ import annotations

import click

from api.cli.common import build_query, exits, open_model, query_options
from api.cli.identity import access_of, as_option
from api.cli.osi import only_query_file, osi_compile
from semantic.service import Service
from semantic.sql.render import DIALECTS


@click.command(name="compile")
@click.argument("model", required=False)
@query_options
@click.option("--dialect", type=click.Choice(DIALECTS), help="Target dialect; default: the model's.")
@as_option
@exits
def compile_(model: str | None, metrics: tuple[str, ...], dimensions: tuple[str, ...], where: str | None,
             order_by: tuple[str, ...], limit: int | None, offset: int | None, timezone: str | None, fill: str | None,
             query_file: str | None, dialect: str | None, as_claims: str | None) -> None:
    """Print the SQL for a query on MODEL, each step labelled, without running it."""
    if query_file is not None:
        only_query_file(metric=metrics, by=dimensions, where=where, order_by=order_by, limit=limit, offset=offset,
                        tz=timezone, fill=fill)
        click.echo(osi_compile(model, query_file, dialect, access_of(as_claims)))
        return
    loaded = open_model(model)
    q = build_query(metrics, dimensions, where, order_by, limit, offset, timezone, fill)
    click.echo(Service(loaded, None).compile(q, dialect or loaded.dialect, access_of(as_claims)).pretty())
