"""Caches: results by (canonical SQL, warehouse, access scope) in a `Store`, shared by every consumer and, with a
Redis store, by every process.

Every consumer (typed GraphQL fields, the generic query, the CLI, feature lookups) reaches the warehouse through
`ResultCache.get_or_run`, so equal SQL under the same warehouse and scope is computed once and shared. A scope is
part of every key: two tenants never share an entry, even for identical SQL.

Single flight, two levels: threads of one process asking for the same key wait for one computation (a Future);
processes sharing a store take a lease on the key, and the others poll for the answer. The holder renews its lease
while it computes; if it dies the lease runs out and a waiter computes instead.
"""

from __future__ import annotations

import enum
import hashlib
import io
import struct
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic, TypeVar

import pyarrow as pa
import pyarrow.ipc as ipc
from cachetools import TTLCache

from semantic.metrics import CACHE_HITS, CACHE_INFLIGHT_JOINS, CACHE_INVALIDATIONS, CACHE_MISSES, CACHE_ROLLUP_HITS
from semantic.store import MemoryStore, Store

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


class Source(enum.Enum):
    """Where an answer came from."""

    WAREHOUSE = "WAREHOUSE"  # computed by a statement of its own
    EXACT = "EXACT"  # the same result, cached
    ROLLUP = "ROLLUP"  # re-aggregated in process from a finer cached result
    INFLIGHT = "INFLIGHT"  # the same computation was already running (here or in another process): waited for it


@dataclass(frozen=True)
class Lookup:
    table: pa.Table
    source: Source
    key: str
    version: float = 0.0  # tells apart entries stored under one key (their freshness deadline); 0: not stored

    @property
    def hit(self) -> bool:
        return self.source is not Source.WAREHOUSE


_HEADER = struct.Struct("!4sd")  # magic, fresh until (seconds since the epoch: every process reads the same)
_MAGIC = b"SC1\x00"


def encode(table: pa.Table, fresh_until: float) -> bytes:
    """An entry: a small header, then the table as an Arrow IPC stream."""
    sink = io.BytesIO()
    sink.write(_HEADER.pack(_MAGIC, fresh_until))
    with ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def decode(data: bytes) -> tuple[pa.Table, float] | None:
    """(table, fresh until), or None for bytes that are not an entry of this version."""
    if len(data) < _HEADER.size:
        return None
    magic, fresh_until = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        return None
    return ipc.open_stream(pa.py_buffer(data)[_HEADER.size:]).read_all(), fresh_until


class ResultCache:
    """Arrow results in a store, with single flight across threads and processes.

    `ttl` is how long an entry is fresh (a caller may pass its own per entry); with `stale` > 0 an entry past its
    ttl is still served for `stale` more seconds while one refresh runs in the background (stale-while-revalidate).
    `enabled=False` computes every request (a baseline for benchmarks).
    """

    def __init__(self, store: Store | None = None, *, ttl: float = 300.0, stale: float = 0.0, lease: float = 15.0,
                 poll: float = 0.005, enabled: bool = True, clock: Callable[[], float] = time.time) -> None:
        self.store: Store = store if store is not None else MemoryStore()
        self.ttl, self.stale, self.lease, self.poll = ttl, stale, lease, poll
        self.enabled = enabled
        self._clock = clock
        self._inflight: dict[str, Future[Lookup]] = {}
        self._held: dict[str, str] = {}  # leases this process holds: key -> token, renewed in the background
        self._lock = threading.Lock()
        self._renewer: threading.Thread | None = None

    # -- reading -------------------------------------------------------------------------------------------------

    def peek(self, key: str) -> pa.Table | None:
        """The fresh cached table, or None (counts nothing)."""
        found = self._read(key)
        return found[0] if found is not None and not found[1] else None

    def fresh_version(self, key: str) -> float | None:
        """The version of the fresh entry under `key` when the store is this process's memory, where reading it
        waits on nothing (its header only: the table is not decoded); else None. Counts nothing."""
        if not self.enabled or not isinstance(self.store, MemoryStore):
            return None
        data = self.store.get(key)
        if data is None or len(data) < _HEADER.size:
            return None
        magic, fresh_until = _HEADER.unpack_from(data)
        return fresh_until if magic == _MAGIC and self._clock() < fresh_until else None

    def _read(self, key: str) -> tuple[pa.Table, bool, float] | None:
        """(table, stale, version) when the store has an entry."""
        data = self.store.get(key)
        entry = decode(data) if data is not None else None
        if entry is None:
            return None
        table, fresh_until = entry
        return table, self._clock() >= fresh_until, fresh_until

    def get_or_run(self, key: str, compute: Callable[[], pa.Table], *, ttl: float | None = None,
                   entities: Iterable[str] = (), alternative: Callable[[], pa.Table | None] | None = None,
                   store: bool = True) -> Lookup:
        """The table for `key`: cached, joined in flight, from `alternative` (a roll-up; None when it has none),
        or computed. Failures are not cached: every waiter sees the same error. With `store` False (an answer too
        large to keep, such as a training set) concurrent callers of this process still share one computation,
        and nothing is kept."""
        if not self.enabled:
            CACHE_MISSES.inc()
            return Lookup(compute(), Source.WAREHOUSE, key)
        entities = tuple(entities)
        found = self._read(key) if store else None
        if found is not None:
            table, stale, version = found
            if not stale:
                CACHE_HITS.labels("exact").inc()
                return Lookup(table, Source.EXACT, key, version)
            if self.stale > 0:  # only entries within the stale window are still in the store
                self._revalidate(key, compute, ttl, entities)
                CACHE_HITS.labels("exact").inc()
                return Lookup(table, Source.EXACT, key, version)
        with self._lock:
            pending = self._inflight.get(key)
            owner = pending is None
            if pending is None:
                pending = self._inflight[key] = Future()
        if not owner:
            CACHE_HITS.labels("inflight").inc()
            CACHE_INFLIGHT_JOINS.inc()
            joined = pending.result()
            return Lookup(joined.table, Source.INFLIGHT, key, joined.version)
        try:
            if store:
                lookup = self._compute(key, compute, ttl, entities, alternative)
            else:
                CACHE_MISSES.inc()
                lookup = Lookup(compute(), Source.WAREHOUSE, key)
        except BaseException as error:
            with self._lock:
                del self._inflight[key]
            pending.set_exception(error)
            raise
        with self._lock:
            del self._inflight[key]
        pending.set_result(lookup)
        return lookup

    def _compute(self, key: str, compute: Callable[[], pa.Table], ttl: float | None, entities: tuple[str, ...],
                 alternative: Callable[[], pa.Table | None] | None) -> Lookup:
        """As this process's one computation of `key`: a roll-up, or the warehouse under a lease, or the answer
        another process computes under its lease."""
        if alternative is not None:
            rolled = alternative()
            if rolled is not None:
                CACHE_HITS.labels("rollup").inc()
                CACHE_ROLLUP_HITS.inc()
                version = self.put(key, rolled, ttl=ttl, entities=entities)
                return Lookup(rolled, Source.ROLLUP, key, version)
        while True:
            token = self.store.lease(key, self.lease)
            if token is not None:
                break
            table = self._wait(key)
            if table is not None:
                CACHE_HITS.labels("inflight").inc()
                CACHE_INFLIGHT_JOINS.inc()
                return Lookup(table, Source.INFLIGHT, key)
            # the holder gave up (failed, or died and its lease ran out): take the lease and compute here
        self._hold(key, token)
        try:
            found = self._read(key)  # the previous holder may have finished between our read and our lease
            if found is not None and not found[1]:
                CACHE_HITS.labels("inflight").inc()
                CACHE_INFLIGHT_JOINS.inc()
                return Lookup(found[0], Source.INFLIGHT, key, found[2])
            CACHE_MISSES.inc()
            table = compute()
            version = self.put(key, table, ttl=ttl, entities=entities)
            return Lookup(table, Source.WAREHOUSE, key, version)
        finally:
            self._unhold(key, token)

    def _wait(self, key: str) -> pa.Table | None:
        """Poll while another process holds the lease: its answer, or None once the lease is gone without one."""
        while True:
            time.sleep(self.poll)
            found = self._read(key)
            if found is not None and not found[1]:
                return found[0]
            if not self.store.leased(key):
                found = self._read(key)
                return found[0] if found is not None and not found[1] else None

    def _revalidate(self, key: str, compute: Callable[[], pa.Table], ttl: float | None,
                    entities: tuple[str, ...]) -> None:
        """Recompute a stale entry once, in the background."""
        with self._lock:
            if key in self._inflight:
                return
            pending: Future[Lookup] = Future()
            self._inflight[key] = pending

        def refresh() -> None:
            try:
                token = self.store.lease(key, self.lease)
                if token is None:  # another process is refreshing it
                    pending.set_result(Lookup(pa.table({}), Source.INFLIGHT, key))
                    return
                self._hold(key, token)
                try:
                    CACHE_MISSES.inc()
                    table = compute()
                    self.put(key, table, ttl=ttl, entities=entities)
                    pending.set_result(Lookup(table, Source.WAREHOUSE, key))
                finally:
                    self._unhold(key, token)
            except BaseException as error:  # noqa: BLE001 - the stale entry stays; the next request tries again
                pending.set_exception(error)
            finally:
                with self._lock:
                    self._inflight.pop(key, None)

        threading.Thread(target=refresh, name="cache-revalidate", daemon=True).start()

    # -- leases --------------------------------------------------------------------------------------------------

    def _hold(self, key: str, token: str) -> None:
        with self._lock:
            self._held[key] = token
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew, name="cache-leases", daemon=True)
                self._renewer.start()

    def _unhold(self, key: str, token: str) -> None:
        with self._lock:
            self._held.pop(key, None)
        self.store.release(key, token)

    def _renew(self) -> None:
        """Keep the leases of computations still running from running out."""
        while True:
            time.sleep(self.lease / 3)
            with self._lock:
                held = list(self._held.items())
            for key, token in held:
                self.store.renew(key, token, self.lease)

    # -- writing -------------------------------------------------------------------------------------------------

    def put(self, key: str, table: pa.Table, *, ttl: float | None = None, entities: Iterable[str] = ()) -> float:
        """Keep `table` fresh for `ttl` seconds (default the cache's), filed under each entity it read; returns
        the entry's version."""
        ttl = self.ttl if ttl is None else ttl
        fresh_until = self._clock() + ttl
        self.store.put(key, encode(table, fresh_until), ttl + self.stale)
        for entity in entities:
            self.store.add(f"entity:{entity}", key)
        return fresh_until

    def invalidate(self, entity: str | None = None) -> int:
        """Drop the entries that read `entity` (every entry when None); returns how many were dropped."""
        if entity is None:
            count = self.store.clear()
        else:
            keys: list[str] = sorted(self.store.members(f"entity:{entity}"))
            count = self.store.delete(keys)
            self.store.remove(f"entity:{entity}", keys)
        CACHE_INVALIDATIONS.inc(count)
        return count


class MemoCache(Generic[T]):
    """A small in-process TTL cache of Python values (online feature rows per key) with single flight."""

    def __init__(self, maxsize: int = 2048, ttl: float = 300.0) -> None:
        self._entries: TTLCache[str, T] = TTLCache(maxsize=maxsize, ttl=ttl)
        self._lock = threading.Lock()

    def peek(self, key: str) -> T | None:
        with self._lock:
            return self._entries.get(key)

    def put(self, key: str, value: T) -> None:
        with self._lock:
            self._entries[key] = value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
