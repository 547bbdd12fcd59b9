"""What the commands share: opening a model and its warehouse, query options, errors -> exit statuses."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from semantic import settings
from semantic.cache import ResultCache
from semantic.catalog import read_catalog
from semantic.errors import SemanticError, WarehouseError
from semantic.execute import Warehouse
from semantic.integrity import KeyGuard
from semantic.interop import load_any
from semantic.model import Model
from semantic.query import Filter, Order, SemanticQuery
from semantic.service import Service
from semantic.store import open_store
from semantic.types import with_column_types
from semantic.warehouses import connect

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "shop"
F = TypeVar("F", bound=Callable[..., Any])


def exits(fn: F) -> F:
    """Bad model or query: message on stderr, exit 2; warehouse failure: exit 1; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except WarehouseError as error:
            click.echo(f"error [{error.code}]: {error.message}", err=True)
            if error.detail:  # the command line is a trusted local user: the driver's own words help
                click.echo(f"  detail: {error.detail}", err=True)
            sys.exit(1)
        except SemanticError as error:
            click.echo(f"error [{error.code}]: {error.message}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def open_model(path: str | None) -> Model:
    """Our YAML model (a file or folder), an OSI model or a dbt semantic manifest."""
    return load_any(path or EXAMPLE).model


def warehouse_url(model: Model, override: str | None) -> str | None:
    return override or os.environ.get("SEMANTIC_WAREHOUSE_URL") or model.warehouse


def cache_url(override: str | None = None) -> str | None:
    return override or os.environ.get("SEMANTIC_CACHE_URL") or None


def open_warehouse(model: Model, override: str | None) -> Warehouse:
    """The model's warehouse, read-only; the example's DuckDB file is built on first use."""
    url = warehouse_url(model, override)
    if url is None:
        raise WarehouseError("no warehouse: set `warehouse:` in the model, SEMANTIC_WAREHOUSE_URL or --warehouse")
    example_file = EXAMPLE / "shop.duckdb"
    if Path(model.source).resolve() in (EXAMPLE, EXAMPLE / "model.yaml") and url.endswith(str(example_file)):
        from examples.shop.generate import ensure

        if not example_file.exists():
            click.echo(f"building the example data in {example_file} ...", err=True)
        ensure(example_file)
    timeout = float(settings.current().query_timeout) or None  # seconds; 0: no limit
    return connect(url, read_only=True, timeout=timeout)  # serving only reads


def open_service(model: Model, override: str | None, cache: str | None = None) -> Service:
    """The model's warehouse and the result cache (`cache`, else SEMANTIC_CACHE_URL, else in-process); answers a
    non-unique join key would double count are refused (the keys each query joins are checked)."""
    warehouse = open_warehouse(model, override)
    return Service(typed(model, warehouse), warehouse, ResultCache(open_store(cache_url(cache))),
                   integrity=KeyGuard(warehouse))


def typed(model: Model, warehouse: Warehouse) -> Model:
    """The model with the warehouse's column types, which refine the declared ones (a sum of an INTEGER column is
    an integer, a DECIMAL column exact, an INTEGER key 32-bit); the declared types alone when it is unreachable."""
    try:
        return with_column_types(model, read_catalog(model, warehouse).types())
    except WarehouseError:
        return model  # unreachable now: the declared types serve, and the query will say what is wrong


def query_options(fn: F) -> F:
    options = [
        click.option("--metric", "metrics", multiple=True, help="A metric, e.g. order.revenue (repeatable)."),
        click.option("--by", "dimensions", multiple=True,
                     help="A dimension, e.g. customer.region or order.ordered_at:month (repeatable)."),
        click.option("--where", help="A filter, e.g. \"customer.region = 'EU'\"."),
        click.option("--order-by", "order_by", multiple=True,
                     help="An item to sort by; descending with a leading '-' (write --order-by=-order.revenue)."),
        click.option("--limit", type=int), click.option("--offset", type=int),
        click.option("--tz", "timezone", help="IANA time zone periods are cut in, e.g. Europe/Paris (default UTC)."),
        click.option("--fill", type=click.Choice(["zero", "null"]),
                     help="Every period of the range, not only those with data (counts and sums 0 with zero)."),
        click.option("--query-file", "query_file", type=click.Path(dir_okay=False),
                     help="An OSI semantic query (JSON) instead of the options above."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def build_query(metrics: tuple[str, ...], dimensions: tuple[str, ...], where: str | None,
                order_by: tuple[str, ...], limit: int | None, offset: int | None,
                timezone: str | None = None, fill: str | None = None) -> SemanticQuery:
    return SemanticQuery(
        metrics=metrics, dimensions=dimensions, where=Filter.parse(where) if where is not None else None,
        order_by=tuple(Order.parse(o) for o in order_by), limit=limit, offset=offset, timezone=timezone,
        fill=fill,
    )
