"""The `semantic` command."""

from __future__ import annotations

import click

from api.cli.cache import cache
from api.cli.compile import compile_
from api.cli.export import export_
from api.cli.features import features
from api.cli.query import query
from api.cli.schema import schema
from api.cli.serve import serve
from api.cli.validate import validate


@click.group()
def cli() -> None:
    """A semantic layer with a GraphQL API: metrics and point-in-time features over a SQL warehouse."""


for command in (serve, query, compile_, cache, features, validate, schema, export_):
    cli.add_command(command)


def main() -> None:
    cli()


if __name__ == "__main__":
    main()
