"""`semantic features`: feature values per key as of a time."""

from __future__ import annotations

import json
from datetime import datetime

import click

from api.cli.common import exits, open_model, open_service
from api.cli.output import render_result
from semantic.errors import QueryError
from semantic.features.request import FeatureRequest


def _parse_key(text: str, kind: str) -> object:
    if kind == "integer":
        try:
            return int(text)
        except ValueError:
            raise QueryError(f"--key {text!r}: the key is an integer") from None
    if kind == "number":
        return float(text)
    return text


@click.command()
@click.argument("model", required=False)
@click.option("--entity", required=True, help="The entity whose features to fetch, e.g. customer.")
@click.option("--key", "keys", multiple=True, required=True,
              help="A key value (repeatable); a JSON object for composite keys.")
@click.option("--at", "at", help="ISO 8601 time; default now (UTC).")
@click.option("--feature", "names", multiple=True, help="A feature name (repeatable); default all.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.option("--warehouse", help="SQLAlchemy URL; overrides the model and SEMANTIC_WAREHOUSE_URL.")
@exits
def features(model: str | None, entity: str, keys: tuple[str, ...], at: str | None, names: tuple[str, ...],
             fmt: str, warehouse: str | None) -> None:
    """Print feature values of --entity for each --key as of --at."""
    loaded = open_model(model)
    target = loaded.entities.get(entity)
    parsed: list[object] = []
    for text in keys:
        if text.lstrip().startswith("{"):
            parsed.append(json.loads(text))
        elif target is not None and len(target.key) == 1:
            parsed.append(_parse_key(text, target.dimensions[target.key[0]].type))
        else:
            parsed.append(text)
    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise QueryError(f"--at {at!r} is not an ISO 8601 date or date-time") from None
    request = FeatureRequest.create(loaded, entity, parsed, list(names) or None, when)
    click.echo(render_result(open_service(loaded, warehouse).features(request), fmt))
