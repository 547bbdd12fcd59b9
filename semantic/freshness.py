"""How long cached answers stay fresh, from the model's `cache:` settings, and refresh keys that drop exactly the
answers reading an entity whose data changed.

A refresh key is a cheap query per entity (`select max(updated_at) from orders`). Each process runs it at most every
`refresh_every` seconds; its answer is swapped into the store atomically, so when the data changes the one process
that sees the new answer first drops the entity's entries, for every process sharing the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable

from semantic.cache import ResultCache, result_key
from semantic.errors import SemanticError
from semantic.execute import Warehouse
from semantic.model import Entity, Model

log = logging.getLogger("semantic.cache")


class Freshness:
    def __init__(self, model: Model, cache: ResultCache, clock: Callable[[], float] = time.monotonic) -> None:
        self.model = model
        self.cache = cache
        if model.cache.stale_while_revalidate is not None:
            cache.stale = model.cache.stale_while_revalidate
        self._keyed: list[Entity] = [e for e in model.entities.values() if e.cache.refresh_key is not None]
        self._due: dict[str, float] = {}
        self._checking = threading.Lock()
        self._clock = clock

    def ttl(self, entities: Iterable[str]) -> float | None:
        """Seconds an answer reading `entities` stays fresh: the shortest entity ttl, else the model's, else None
        (the cache's default)."""
        found = [self.model.entities[e].cache.ttl for e in entities if e in self.model.entities]
        ttls = [t for t in found if t is not None]
        return min(ttls) if ttls else self.model.cache.ttl

    def settled(self) -> bool:
        """No refresh key is due: `check` would run nothing."""
        now = self._clock()
        return all(now < self._due.get(e.name, 0.0) for e in self._keyed)

    def check(self, warehouse: Warehouse) -> None:
        """Run the refresh keys that are due; drop the entries of each entity whose key changed. One thread at a
        time checks; the others go on at once rather than wait for it."""
        now = self._clock()
        due = [e for e in self._keyed if now >= self._due.get(e.name, 0.0)]
        if not due or not self._checking.acquire(blocking=False):
            return
        try:
            for entity in due:
                self._due[entity.name] = now + entity.cache.refresh_every
                assert entity.cache.refresh_key is not None
                sql = entity.cache.refresh_key.sql(dialect=warehouse.dialect)
                try:
                    value = repr(warehouse.run(sql).rows).encode()
                except SemanticError as error:
                    log.warning("the refresh key of %s failed (%s); its cached answers stay until their ttl",
                                entity.name, error.message)
                    continue
                slot = f"refresh:{result_key(sql, warehouse.identity, entity.name)}"
                previous = self.cache.store.swap(slot, value)
                if previous is not None and previous != value:
                    dropped = self.cache.invalidate(entity.name)
                    log.info("%s changed (refresh key): %d cached answers dropped", entity.name, dropped)
        finally:
            self._checking.release()
