"""`semantic serve`: GraphQL over HTTP."""

from __future__ import annotations

import json
import logging
import os
import socket
from collections.abc import Callable
from typing import Any

import click
import uvicorn
from starlette.applications import Starlette

from api.auth import AuthConfigError, Authenticator
from api.cli.common import exits, open_model, open_service
from api.persisted import read_registered
from semantic import settings
from semantic.errors import Issue, ModelError, SettingError

log = logging.getLogger("semantic.api")

LEVELS = ("debug", "info", "warning", "error")


def _setting_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """One option per setting (`--max-keys`), read as text and checked by `semantic.settings`; unset: the
    environment's value or the default."""
    for setting in reversed(settings.SETTINGS):
        fn = click.option(setting.option, setting.name, default=None, metavar=setting.metavar,
                          help=f"{setting.help[0].upper()}{setting.help[1:]} [env {setting.env}; default "
                               f"{setting.default}]")(fn)
    return fn


def _check_port(host: str, port: int) -> None:
    """Fail before saying "serving" when the address cannot be listened on (in use, or not ours)."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as error:
        raise SettingError(f"cannot listen on {host}:{port}: {error.strerror or error}; pick another --port or "
                           f"--host") from None


@click.command()
@click.argument("model", required=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 256),
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
@_setting_options
@exits
def serve(model: str | None, host: str, port: int, workers: int, warehouse: str | None, cache: str | None,
          allow_anonymous: bool, max_rows: int, cors_origins: tuple[str, ...], log_level: str,
          log_format: str, **given: str | None) -> None:
    """Serve MODEL (default: the example shop, its data built on first use) at http://HOST:PORT/graphql.

    Credentials: SEMANTIC_JWT_SECRET (HS256) or SEMANTIC_JWT_PUBLIC_KEY (a PEM file, RS256), with
    SEMANTIC_JWT_AUDIENCE / SEMANTIC_JWT_ISSUER checked when set; SEMANTIC_API_KEYS (a YAML file of key digests).
    """
    from api.app import create_app  # imported here: the other commands need no web stack
    from api.observe import configure_logging

    configure_logging(log_level, log_format)
    settings.configure(settings.load(overrides=given))
    if settings.current().persisted_queries_file:  # read now, so a bad file stops here, before any worker starts
        read_registered(settings.current().persisted_queries_file)
    for name, value in given.items():  # worker processes read the same settings from their environment
        if value is not None:
            os.environ[settings.BY_NAME[name].env] = str(value)
    auth = authenticator(allow_anonymous)
    _check_port(host, port)
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
