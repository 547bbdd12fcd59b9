"""`semantic query`: run a query and print its rows."""

from __future__ import annotations

import click

from api.cli.common import build_query, exits, open_model, open_service, query_options
from api.cli.identity import access_of, as_option
from api.cli.osi import only_query_file, osi_run
from api.cli.output import render_result


@click.command()
@click.argument("model", required=False)
@query_options
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.option("--warehouse", help="SQLAlchemy URL; overrides the model and SEMANTIC_WAREHOUSE_URL.")
@as_option
@exits
def query(model: str | None, metrics: tuple[str, ...], dimensions: tuple[str, ...], where: str | None,
          order_by: tuple[str, ...], limit: int | None, offset: int | None, timezone: str | None,
          fill: str | None, query_file: str | None, fmt: str, warehouse: str | None, as_claims: str | None
          ) -> None:
    """Run a query on MODEL (a YAML file or folder, or an OSI model; default: the example shop)."""
    if query_file is not None:
        only_query_file(metric=metrics, by=dimensions, where=where, order_by=order_by, limit=limit, offset=offset,
                        tz=timezone, fill=fill)
        click.echo(render_result(osi_run(model, query_file, warehouse, access_of(as_claims)), fmt))
        return
    loaded = open_model(model)
    q = build_query(metrics, dimensions, where, order_by, limit, offset, timezone, fill)
    access = access_of(as_claims)
    service = open_service(loaded, warehouse)
    service.compile(q, access=access)  # a bad query is refused before the warehouse is touched
    click.echo(render_result(service.query(q, access), fmt))
