"""`semantic validate`: check a model, and the warehouse's data against it, and report every problem."""

from __future__ import annotations

import sys

import click

from api.cli.common import EXAMPLE, exits, open_warehouse
from semantic.checks import check_reachable
from semantic.errors import Issue, WarehouseError
from semantic.interop import read_any


@click.command()
@click.argument("model", required=False)
@click.option("--offline", is_flag=True, help="Check the model only; do not read the warehouse.")
@click.option("--warehouse", help="SQLAlchemy URL; overrides the model and SEMANTIC_WAREHOUSE_URL.")
@exits
def validate(model: str | None, offline: bool, warehouse: str | None) -> None:
    """Check MODEL (ours, an OSI model or a dbt semantic manifest), and unless --offline the warehouse's tables,
    columns, types and keys against it; print every problem with file and line, exit 2 if there is any error
    (warnings and notes do not fail)."""
    loaded, issues = read_any(model or EXAMPLE)  # whatever query and compile read: ours, OSI, a dbt manifest
    checked, found = "offline", list[Issue]()
    if loaded is None:
        checked = "data not checked: the model could not be read"
    elif not offline:
        try:
            connection = open_warehouse(loaded, warehouse)
        except WarehouseError as error:
            checked = f"data not checked: {error.message}"
        else:
            try:
                found, unreachable = check_reachable(loaded, connection)
            finally:
                connection.close()
            checked = f"data not checked: {unreachable}" if unreachable else f"data checked on {connection.identity}"
        issues = sorted([*issues, *found], key=lambda i: (i.file, i.line))
    errors = [i for i in issues if i.level == "error"]
    if issues:
        head = (f"error [BAD_MODEL]: {len(errors)} problem{'s' if len(errors) != 1 else ''} in the model:"
                if errors else f"{len(issues)} remark{'s' if len(issues) != 1 else ''}:")
        click.echo("\n".join([head, *(f"  {i}" for i in issues)]), err=True)
    if errors or loaded is None:
        sys.exit(2)
    counts = [len(e.dimensions) for e in loaded.entities.values()], [len(e.metrics) for e in loaded.entities.values()]
    click.echo(f"{loaded.name}: ok ({len(loaded.entities)} entities, {sum(counts[0])} dimensions, "
               f"{sum(counts[1])} metrics, {sum(len(e.features) for e in loaded.entities.values())} features; "
               f"{checked})")
