"""`semantic cache clear`: drop shared cached answers, all of them or those that read one entity."""

from __future__ import annotations

import click

from api.cli.common import cache_url, exits, open_model
from semantic.cache import ResultCache
from semantic.errors import QueryError, WarehouseUnavailableError, did_you_mean
from semantic.store import RedisStore, open_store


@click.group()
def cache() -> None:
    """The result cache that server processes share (--cache / SEMANTIC_CACHE_URL)."""


@cache.command()
@click.argument("model", required=False)
@click.option("--entity", help="Drop only the answers that read this entity.")
@click.option("--cache", "url", metavar="URL", help="The shared cache, e.g. redis://127.0.0.1:6379/0 (default "
                                                    "SEMANTIC_CACHE_URL).")
@exits
def clear(model: str | None, entity: str | None, url: str | None) -> None:
    """Drop the cached answers of MODEL's servers (default: the example shop) that read --entity, or all."""
    url = cache_url(url)
    if url is None or url.startswith("memory:"):
        raise QueryError("no shared cache to clear: an in-process cache lives inside each server (restart it, or "
                         "use the clearCache mutation); give --cache redis://host:port/db or set SEMANTIC_CACHE_URL")
    if entity is not None:
        entities = open_model(model).entities
        if entity not in entities:
            raise QueryError(f"unknown entity {entity!r}.{did_you_mean(entity, entities)}")
    store = open_store(url)
    try:
        count = ResultCache(store).invalidate(entity)
        if isinstance(store, RedisStore) and not store.reachable:
            raise WarehouseUnavailableError(f"the cache {store.identity} is unreachable; nothing was cleared")
    finally:
        store.close()
    what = f"that read {entity}" if entity else "in all"
    click.echo(f"dropped {count} cached answers {what} from {store.identity}")
