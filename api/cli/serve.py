"""`semantic serve`: GraphQL over HTTP."""

from __future__ import annotations

import click
import uvicorn

from api.cli.common import exits, open_model, open_service


@click.command()
@click.argument("model", required=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="Processes; each has its own cache.")
@click.option("--warehouse", help="SQLAlchemy URL; overrides the model and SEMANTIC_WAREHOUSE_URL.")
@exits
def serve(model: str | None, host: str, port: int, workers: int, warehouse: str | None) -> None:
    """Serve MODEL (default: the example shop, its data built on first use) at http://HOST:PORT/graphql."""
    from api.app import create_app

    service = open_service(open_model(model), warehouse)
    click.echo(f"serving {service.model.name} on {service.warehouse.identity if service.warehouse else '-'} at "
               f"http://{host}:{port}/graphql", err=True)
    if workers > 1:
        import os

        os.environ["SEMANTIC_MODEL"] = service.model.source
        if service.warehouse is not None:
            os.environ["SEMANTIC_WAREHOUSE_URL"] = service.engine_url if hasattr(service, "engine_url") else \
                str(service.warehouse.engine.url.render_as_string(hide_password=False))  # type: ignore[attr-defined]
        service.warehouse.close() if service.warehouse else None
        uvicorn.run("api.cli.serve:app_from_env", factory=True, host=host, port=port, workers=workers,
                    log_level="warning")
        return
    uvicorn.run(create_app(service), host=host, port=port, log_level="warning")


def app_from_env() -> object:
    """For multi-process serving: each worker opens the model and warehouse named in the environment."""
    import os

    from api.app import create_app

    return create_app(open_service(open_model(os.environ["SEMANTIC_MODEL"]), None))
