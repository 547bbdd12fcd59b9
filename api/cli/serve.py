"""`semantic serve`: GraphQL over HTTP."""

from __future__ import annotations

import json
import logging
import os

import click
import uvicorn
from starlette.applications import Starlette

from api.auth import AuthConfigError, Authenticator
from api.cli.common import exits, open_model, open_service
from semantic.errors import Issue, ModelError

log = logging.getLogger("semantic.api")

LEVELS = ("debug", "info", "warning", "error")


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
@click.option("--allow-anonymous", is_flag=True,
              help="With tokens or API keys configured, also serve requests without credentials (no roles).")
@click.option("--max-rows", default=100_000, show_default=True, type=click.IntRange(min=1),
              help="Most rows one field returns; a cut answer says so (truncated).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="URL",
              help="A browser origin allowed to call the API (repeatable), e.g. https://bi.example.com.")
@click.option("--log-level", default="info", show_default=True, type=click.Choice(LEVELS, case_sensitive=False))
@click.option("--log-format", default="text", show_default=True, type=click.Choice(("text", "json")),
              help="json: one object per line, with the request id.")
@exits
def serve(model: str | None, host: str, port: int, workers: int, warehouse: str | None, cache: str | None,
          allow_anonymous: bool, max_rows: int, cors_origins: tuple[str, ...], log_level: str,
          log_format: str) -> None:
    """Serve MODEL (default: the example shop, its data built on first use) at http://HOST:PORT/graphql.

    Credentials: SEMANTIC_JWT_SECRET (HS256) or SEMANTIC_JWT_PUBLIC_KEY (a PEM file, RS256), with
    SEMANTIC_JWT_AUDIENCE / SEMANTIC_JWT_ISSUER checked when set; SEMANTIC_API_KEYS (a YAML file of key digests).
    """
    from api.app import create_app  # imported here: the other commands need no web stack
    from api.observe import configure_logging

    configure_logging(log_level, log_format)
    auth = authenticator(allow_anonymous)
    service = open_service(open_model(model), warehouse, cache)
    identity = service.warehouse.identity if service.warehouse else "-"
    click.echo(f"serving {service.model.name} on {identity} at http://{host}:{port}/graphql", err=True)
    options = {"max_rows": max_rows, "cors_origins": list(cors_origins)}
    if workers == 1:
        uvicorn.run(create_app(service, auth=auth, **options), host=host, port=port,  # type: ignore[arg-type]
                    log_config=None, log_level=log_level.lower(), access_log=False)
        return
    # Several processes: each opens the model, warehouse and cache itself.
    os.environ["SEMANTIC_MODEL"] = service.model.source
    if cache:
        os.environ["SEMANTIC_CACHE_URL"] = cache
    os.environ["SEMANTIC_ALLOW_ANONYMOUS"] = "1" if allow_anonymous else ""
    os.environ["SEMANTIC_SERVE_OPTIONS"] = json.dumps({**options, "log_level": log_level, "log_format": log_format})
    if warehouse:
        os.environ["SEMANTIC_WAREHOUSE_URL"] = warehouse
    if service.warehouse is not None:
        service.warehouse.close()
    uvicorn.run("api.cli.serve:app_from_env", factory=True, host=host, port=port, workers=workers, log_config=None,
                log_level=log_level.lower(), access_log=False)


def app_from_env() -> Starlette:
    """The app of one worker process, from SEMANTIC_MODEL, SEMANTIC_WAREHOUSE_URL and the serve options."""
    from api.app import create_app
    from api.observe import configure_logging

    options = json.loads(os.environ.get("SEMANTIC_SERVE_OPTIONS", "{}"))
    configure_logging(options.pop("log_level", "info"), options.pop("log_format", "text"))
    auth = authenticator(bool(os.environ.get("SEMANTIC_ALLOW_ANONYMOUS")))
    return create_app(open_service(open_model(os.environ["SEMANTIC_MODEL"]), None), auth=auth, **options)


def authenticator(allow_anonymous: bool) -> Authenticator:
    """The credentials checked, from the environment; serving without any is allowed, with a warning."""
    try:
        auth = Authenticator.from_env(allow_anonymous=allow_anonymous)
    except AuthConfigError as error:
        raise ModelError([Issue(str(error), "environment")]) from None
    if not auth.configured:
        log.warning("no SEMANTIC_JWT_SECRET, SEMANTIC_JWT_PUBLIC_KEY or SEMANTIC_API_KEYS: every request is served "
                    "anonymously (roles: none)")
        click.echo("warning: no credentials configured (SEMANTIC_JWT_SECRET, SEMANTIC_JWT_PUBLIC_KEY or "
                   "SEMANTIC_API_KEYS): serving every request anonymously", err=True)
    return auth
