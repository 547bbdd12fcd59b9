"""Caches: compiled plans by query, and results by (canonical SQL, warehouse, access scope).

Every consumer (typed GraphQL fields, the generic query, the CLI, feature lookups) reaches the warehouse through
`ResultCache.get_or_run`, so equal SQL under the same warehouse and scope is computed once and shared. A scope is
part of every key: two tenants never share an entry, even for identical SQL.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

from cachetools import TTLCache

T = TypeVar("T")


def result_key(sql: str, warehouse: str, scope: str) -> str:
    """The one cache key for a result. `sql` must be the canonical (comment-free, compact) rendering.

    >>> result_key("SELECT 1", "duckdb:///a", "tenant-a") == result_key("SELECT 1", "duckdb:///a", "tenant-b")
    False
    """
    digest = hashlib.sha256()
    for part in (warehouse, scope, sql):
        digest.update(part.encode())
        digest.update(b"\x00")  # separator: ("ab", "c") and ("a", "bc") must differ
    return digest.hexdigest()


@dataclass(frozen=True)
class Lookup(Generic[T]):
    value: T
    hit: bool  # served from the cache, or by joining a computation already in flight
    key: str


class ResultCache(Generic[T]):
    """A bounded TTL cache with single flight: concurrent misses on one key run the computation once."""

    def __init__(self, maxsize: int = 2048, ttl: float = 300.0) -> None:
        self._entries: TTLCache[str, T] = TTLCache(maxsize=maxsize, ttl=ttl)
        self._inflight: dict[str, Future[T]] = {}
        self._lock = threading.Lock()
        self.misses = 0
        self.hits = 0

    def get_or_run(self, key: str, compute: Callable[[], T], *, store: bool = True) -> Lookup[T]:
        """The cached value, or `compute()` run once for all concurrent callers; kept unless `store` is False (an
        answer too large to keep, such as a training set, still joins a computation in flight)."""
        with self._lock:
            if key in self._entries:
                self.hits += 1
                return Lookup(self._entries[key], True, key)
            pending = self._inflight.get(key)
            if pending is None:
                pending = Future()
                self._inflight[key] = pending
                owner = True
                self.misses += 1
            else:
                owner = False
                self.hits += 1
        if not owner:
            return Lookup(pending.result(), True, key)
        try:
            value = compute()
        except BaseException as error:
            with self._lock:
                del self._inflight[key]
            pending.set_exception(error)  # waiters see the same error; nothing is cached
            raise
        with self._lock:
            if store:
                self._entries[key] = value
            del self._inflight[key]
        pending.set_result(value)
        return Lookup(value, False, key)

    def peek(self, key: str, *, count: bool = True) -> T | None:
        """The cached value, or None; counts a hit or a miss like `get_or_run` unless `count` is False."""
        with self._lock:
            value = self._entries.get(key)
            if count:
                if value is None:
                    self.misses += 1
                else:
                    self.hits += 1
            return value

    def put(self, key: str, value: T) -> None:
        with self._lock:
            self._entries[key] = value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
