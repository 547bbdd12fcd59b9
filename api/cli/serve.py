"""`semantic serve`: GraphQL over HTTP."""

from __future__ import annotations

import os

import click
import uvicorn
from starlette.applications import Starlette

from api.cli.common import exits, open_model, open_service


@click.command()
@click.argument("model", required=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int,
              help="Processes; they share results only through a --cache they all reach.")
@click.option("--warehouse", help="SQLAlchemy URL; overrides the model and SEMANTIC_WAREHOUSE_URL.")
@click.option("--cache", "cache", metavar="URL",
              help="Result store shared by processes, e.g. redis://127.0.0.1:6379/0 (default SEMANTIC_CACHE_URL, "
                   "else in-process memory).")
@exits
def serve(model: str | None, host: str, port: int, workers: int, warehouse: str | None, cache: str | None) -> None:
    """Serve MODEL (default: the example shop, its data built on first use) at http://HOST:PORT/graphql."""
    from api.app import create_app  # imported here: the other commands need no web stack

    service = open_service(open_model(model), warehouse, cache)
    identity = service.warehouse.identity if service.warehouse else "-"
    click.echo(f"serving {service.model.name} on {identity} at http://{host}:{port}/graphql", err=True)
    if workers == 1:
        uvicorn.run(create_app(service), host=host, port=port, log_level="warning")
        return
    # Several processes: each opens the model, warehouse and cache itself.
    os.environ["SEMANTIC_MODEL"] = service.model.source
    if cache:
        os.environ["SEMANTIC_CACHE_URL"] = cache
    if warehouse:
        os.environ["SEMANTIC_WAREHOUSE_URL"] = warehouse
    if service.warehouse is not None:
        service.warehouse.close()
    uvicorn.run("api.cli.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level="warning")


def app_from_env() -> Starlette:
    """The app of one worker process, from SEMANTIC_MODEL and SEMANTIC_WAREHOUSE_URL."""
    from api.app import create_app

    return create_app(open_service(open_model(os.environ["SEMANTIC_MODEL"]), None))
