"""`semantic schema`: print the GraphQL SDL of a model."""

from __future__ import annotations

import click

from api.cli.common import exits, open_model, open_warehouse, typed
from api.schema import build_schema
from semantic.errors import WarehouseError


@click.command()
@click.argument("model", required=False)
@click.option("--warehouse", help="SQLAlchemy URL whose column types to read; overrides the model and "
                                  "SEMANTIC_WAREHOUSE_URL.")
@click.option("--offline", is_flag=True, help="Declared types only, no warehouse read: integers of unknown width "
                                              "are Long, numbers Float.")
@exits
def schema(model: str | None, warehouse: str | None, offline: bool) -> None:
    """Print the GraphQL schema (SDL) that `serve` would expose for MODEL: typed by the warehouse's columns as
    `serve` reads them (the example's data is built on first use), or by the declared types with --offline."""
    loaded = open_model(model)
    if not offline:
        try:
            connection = open_warehouse(loaded, warehouse)
        except WarehouseError as error:
            click.echo(f"warning: {error.message}; printing the declared types (as --offline)", err=True)
        else:
            try:
                loaded = typed(loaded, connection)
            finally:
                connection.close()
    click.echo(build_schema(loaded).as_str())
