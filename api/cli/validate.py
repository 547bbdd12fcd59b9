"""`semantic validate`: check a model and report every problem."""

from __future__ import annotations

import click

from api.cli.common import exits, open_model


@click.command()
@click.argument("model", required=False)
@exits
def validate(model: str | None) -> None:
    """Check MODEL; print every problem with file and line, exit 2 if there is any."""
    loaded = open_model(model)
    counts = [len(e.dimensions) for e in loaded.entities.values()], [len(e.metrics) for e in loaded.entities.values()]
    click.echo(f"{loaded.name}: ok ({len(loaded.entities)} entities, {sum(counts[0])} dimensions, "
               f"{sum(counts[1])} metrics, {sum(len(e.features) for e in loaded.entities.values())} features)")
