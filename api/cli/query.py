"""`semantic query`: run a query and print its rows."""

from __future__ import annotations

import click

from api.cli.common import build_query, exits, open_model, open_service, query_options
from api.cli.output import render_result


@click.command()
@click.argument("model", required=False)
@query_options
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.option("--warehouse", help="SQLAlchemy URL; overrides the model and SEMANTIC_WAREHOUSE_URL.")
@exits
def query(model: str | None, metrics: tuple[str, ...], dimensions: tuple[str, ...], where: str | None,
          order_by: tuple[str, ...], limit: int | None, offset: int | None, timezone: str | None,
          fill: str | None, fmt: str, warehouse: str | None) -> None:
    """Run a query on MODEL (a YAML file or folder; default: the example shop)."""
    loaded = open_model(model)
    q = build_query(metrics, dimensions, where, order_by, limit, offset, timezone, fill)
    service = open_service(loaded, warehouse)
    service.compile(q)  # a bad query is refused before the warehouse is touched
    click.echo(render_result(service.query(q), fmt))
