"""`semantic features`: feature values per key as of a time, or a training set for a spine file."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import click

from api.cli.common import exits, open_model, open_service
from api.cli.identity import access_of, as_option
from api.cli.output import render_result
from semantic.access import Access
from semantic.errors import QueryError
from semantic.features.request import FeatureRequest, keys_from_text
from semantic.features.training import format_of, read_spine, write_table


@click.command()
@click.argument("model", required=False)
@click.option("--entity", required=True, help="The entity whose features to fetch, e.g. customer.")
@click.option("--key", "keys", multiple=True,
              help="A key value (repeatable); a JSON object for composite keys.")
@click.option("--at", "at", help="ISO 8601 time; default now (UTC).")
@click.option("--spine", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A Parquet or CSV file of key column(s) and a time column: one output row per spine row, each "
                   "as of its own time (instead of --key/--at).")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the training set for --spine: .parquet, .csv, .arrow or .feather (an Arrow IPC "
                   "file) or .arrows (an Arrow IPC stream).")
@click.option("--time-column", default="event_timestamp", show_default=True,
              help="The spine's time column.")
@click.option("--feature", "names", multiple=True, help="A feature name (repeatable); default all.")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "csv"]), default="table")
@click.option("--warehouse", help="SQLAlchemy URL; overrides the model and SEMANTIC_WAREHOUSE_URL.")
@as_option
@exits
def features(model: str | None, entity: str, keys: tuple[str, ...], at: str | None, spine: Path | None,
             out: Path | None, time_column: str, names: tuple[str, ...], fmt: str, warehouse: str | None,
             as_claims: str | None) -> None:
    """Print feature values of --entity for each --key as of --at, or write a training set for --spine to --out."""
    if spine is not None:
        if keys or at is not None:
            raise QueryError("--spine gives the keys and their times; leave out --key and --at")
        if out is None:
            raise QueryError("--spine needs --out FILE (.parquet, .csv or .arrow) for the training set")
        _training_set(model, entity, spine, out, time_column, names, warehouse, access_of(as_claims))
        return
    if not keys:
        raise QueryError("give --key (repeatable) for an online lookup, or --spine FILE --out FILE for a training set")
    loaded = open_model(model)
    parsed = keys_from_text(loaded, entity, keys)
    when = None
    if at is not None:
        try:
            when = datetime.fromisoformat(at)
        except ValueError:
            raise QueryError(f"--at {at!r} is not an ISO 8601 date or date-time") from None
    request = FeatureRequest.create(loaded, entity, parsed, list(names) or None, when)
    click.echo(render_result(open_service(loaded, warehouse).features(request, access_of(as_claims)), fmt))


def _training_set(model: str | None, entity: str, spine: Path, out: Path, time_column: str,
                  names: tuple[str, ...], warehouse: str | None, access: Access) -> None:
    format_of(out.name, "the output")  # refuse an unknown output format, or a place it cannot go, before any work
    folder = out.resolve().parent
    if not folder.is_dir():
        raise QueryError(f"--out {out}: the folder {folder} does not exist; create it first")
    if not os.access(folder, os.W_OK):
        raise QueryError(f"--out {out}: the folder {folder} is not writable")
    loaded = open_model(model)
    table = read_spine(spine, format_of(spine.name), loaded, entity)
    result = open_service(loaded, warehouse).training_set(entity, table, list(names) or None,
                                                          time_column=time_column, access=access)
    write_table(result, out)
    click.echo(f"wrote {result.num_rows:,} rows x {result.num_columns} columns to {out}", err=True)
