"""`semantic schema`: print the GraphQL SDL of a model."""

from __future__ import annotations

import click

from api.cli.common import exits, open_model
from api.schema import build_schema


@click.command()
@click.argument("model", required=False)
@exits
def schema(model: str | None) -> None:
    """Print the GraphQL schema (SDL) that `serve` would expose for MODEL."""
    click.echo(build_schema(open_model(model)).as_str())
