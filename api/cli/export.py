"""`semantic export MODEL --format osi`: the model as an OSI document (YAML on stdout, or --out FILE)."""

from __future__ import annotations

from pathlib import Path

import click
import yaml

from api.cli.common import exits, open_model
from semantic.interop.osi_export import export


@click.command(name="export")
@click.argument("model", required=False)
@click.option("--format", "fmt", type=click.Choice(["osi"]), default="osi", help="The format to write.")
@click.option("--out", type=click.Path(dir_okay=False), help="A file to write; default: stdout.")
@exits
def export_(model: str | None, fmt: str, out: str | None) -> None:
    """Write MODEL for other tools; what the format cannot say is listed on stderr (and in the document)."""
    exported = export(open_model(model))
    text = yaml.safe_dump(exported.document, sort_keys=False, allow_unicode=True, width=120)
    if out:
        Path(out).write_text(text)
    else:
        click.echo(text, nl=False)
    for line in exported.skipped:
        click.echo(f"not exported: {line}", err=True)
