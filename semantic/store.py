"""Where cached bytes live: the `Store` Protocol, an in-process store bounded by bytes, and a Redis store shared by
every process that names the same URL.

A store holds opaque bytes under string keys (results as Arrow IPC, feature snapshots, small values), sets of keys
(which entries read an entity; the roll-up index), and leases (cross-process single flight). It never raises for
being unreachable: a Redis store that cannot reach its server answers like an empty cache (misses, leases granted
at once), counts the failure, warns once per outage and tries again a second later, so requests go to the
warehouse and the cache comes back by itself.

Choose one with `open_store(url)`: `memory://` (optionally `memory://?max_bytes=N`) or `redis://host:port/db`
(optionally `?prefix=name:`, default `semantic:`).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, TypeVar
from urllib.parse import parse_qs, urlsplit

from semantic.errors import QueryError
from semantic.metrics import CACHE_BYTES, CACHE_EVICTIONS, CACHE_STORE_ERRORS

log = logging.getLogger("semantic.cache")
T = TypeVar("T")
DEFAULT_MAX_BYTES = 256 * 1024 * 1024


class Store(Protocol):
    identity: str  # for messages: the URL without a password

    def get(self, key: str) -> bytes | None: ...

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        """Keep `value` for `ttl` seconds (None: until evicted or deleted)."""
        ...

    def swap(self, key: str, value: bytes) -> bytes | None:
        """Set `value` and return what was there before, atomically (refresh keys: one process sees a change)."""
        ...

    def delete(self, keys: list[str]) -> int: ...

    def add(self, group: str, member: str) -> None:
        """Add `member` to the set `group`."""
        ...

    def members(self, group: str) -> set[str]: ...

    def remove(self, group: str, members: list[str]) -> None: ...

    def lease(self, key: str, seconds: float) -> str | None:
        """A token if this caller now holds the lease on `key` for `seconds`, None if another holder has it."""
        ...

    def renew(self, key: str, token: str, seconds: float) -> None: ...

    def release(self, key: str, token: str) -> None: ...

    def leased(self, key: str) -> bool: ...

    def clear(self) -> int:
        """Drop every key of this store (only its own: a Redis store's prefix), returning how many."""
        ...

    def close(self) -> None: ...


class MemoryStore:
    """One process's store: least recently used entries go first once the bytes held pass `max_bytes`."""

    identity = "memory://"

    def __init__(self, max_bytes: int = DEFAULT_MAX_BYTES, clock: Callable[[], float] = time.monotonic) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, tuple[bytes, float | None]] = OrderedDict()
        self._groups: dict[str, set[str]] = {}
        self._leases: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()
        self._clock = clock
        self.bytes = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            value, expires = found
            if expires is not None and self._clock() >= expires:
                self._drop(key)
                return None
            self._entries.move_to_end(key)
            return value

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        if len(value) > self.max_bytes:
            return  # larger than the whole store: keeping it would evict everything else for one entry
        with self._lock:
            self._drop(key)
            self._entries[key] = (value, None if ttl is None else self._clock() + ttl)
            self.bytes += len(value)
            while self.bytes > self.max_bytes:
                oldest = next(iter(self._entries))
                self._drop(oldest)
                CACHE_EVICTIONS.inc()
            CACHE_BYTES.set(self.bytes)

    def swap(self, key: str, value: bytes) -> bytes | None:
        with self._lock:
            found = self._entries.get(key)
            self._drop(key)
            self._entries[key] = (value, None)
            self.bytes += len(value)
            return found[0] if found else None

    def _drop(self, key: str) -> None:
        found = self._entries.pop(key, None)
        if found is not None:
            self.bytes -= len(found[0])

    def delete(self, keys: list[str]) -> int:
        with self._lock:
            present = [k for k in keys if k in self._entries]
            for key in present:
                self._drop(key)
            CACHE_BYTES.set(self.bytes)
            return len(present)

    def add(self, group: str, member: str) -> None:
        with self._lock:
            self._groups.setdefault(group, set()).add(member)

    def members(self, group: str) -> set[str]:
        with self._lock:
            return set(self._groups.get(group, ()))

    def remove(self, group: str, members: list[str]) -> None:
        with self._lock:
            self._groups.get(group, set()).difference_update(members)

    def lease(self, key: str, seconds: float) -> str | None:
        with self._lock:
            held = self._leases.get(key)
            if held is not None and held[1] > self._clock():
                return None
            token = uuid.uuid4().hex
            self._leases[key] = (token, self._clock() + seconds)
            return token

    def renew(self, key: str, token: str, seconds: float) -> None:
        with self._lock:
            if self._leases.get(key, ("", 0.0))[0] == token:
                self._leases[key] = (token, self._clock() + seconds)

    def release(self, key: str, token: str) -> None:
        with self._lock:
            if self._leases.get(key, ("", 0.0))[0] == token:
                del self._leases[key]

    def leased(self, key: str) -> bool:
        with self._lock:
            held = self._leases.get(key)
            return held is not None and held[1] > self._clock()

    def clear(self) -> int:
        with self._lock:
            count = len(self._entries)
            self._entries.clear()
            self._groups.clear()
            self.bytes = 0
            CACHE_BYTES.set(0)
            return count

    def close(self) -> None:
        pass


# Compare-and-delete / compare-and-extend: only the holder of a lease may release or renew it.
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"
_RENEW = ("if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) "
          "else return 0 end")


class RedisStore:
    """A store in Redis under one key prefix, shared by every process with the same URL and prefix."""

    retry_after = 1.0  # seconds without trying the server after a failure

    def __init__(self, url: str, prefix: str = "semantic:") -> None:
        import redis
        from redis.backoff import NoBackoff
        from redis.retry import Retry

        parts = urlsplit(url)
        self.identity = f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"
        self.prefix = prefix
        # Short timeouts and no retries: an unreachable cache must cost a request milliseconds, not seconds.
        self.client = redis.Redis.from_url(url.split("?")[0], socket_timeout=1.0, socket_connect_timeout=0.5,
                                           retry=Retry(NoBackoff(), 0))
        self._errors: tuple[type[BaseException], ...] = (redis.RedisError, OSError)
        self._down_until = 0.0
        self._down = False

    def _call(self, what: Callable[[], T], otherwise: T) -> T:
        if self._down and time.monotonic() < self._down_until:
            CACHE_STORE_ERRORS.inc()
            return otherwise
        try:
            result = what()
        except self._errors as error:
            CACHE_STORE_ERRORS.inc()
            if not self._down:
                log.warning("cache store %s is unreachable (%s); answering from the warehouse until it is back",
                            self.identity, error)
            self._down, self._down_until = True, time.monotonic() + self.retry_after
            return otherwise
        if self._down:
            self._down = False
            log.warning("cache store %s is reachable again", self.identity)
        return result

    @property
    def reachable(self) -> bool:
        """False since the last failure, until a command succeeds again."""
        return not self._down

    def _k(self, kind: str, key: str) -> str:
        return f"{self.prefix}{kind}:{key}"

    def get(self, key: str) -> bytes | None:
        value: Any = self._call(lambda: self.client.get(self._k("r", key)), None)
        return bytes(value) if value is not None else None

    def put(self, key: str, value: bytes, ttl: float | None = None) -> None:
        milliseconds = max(1, int(ttl * 1000)) if ttl is not None else None
        self._call(lambda: self.client.set(self._k("r", key), value, px=milliseconds), None)

    def swap(self, key: str, value: bytes) -> bytes | None:
        found: Any = self._call(lambda: self.client.set(self._k("r", key), value, get=True), None)
        return bytes(found) if found is not None else None

    def delete(self, keys: list[str]) -> int:
        if not keys:
            return 0
        count: Any = self._call(lambda: self.client.delete(*(self._k("r", k) for k in keys)), 0)
        return int(count)

    def add(self, group: str, member: str) -> None:
        self._call(lambda: self.client.sadd(self._k("g", group), member), None)

    def members(self, group: str) -> set[str]:
        empty: Any = set()
        found: Any = self._call(lambda: self.client.smembers(self._k("g", group)), empty)
        return {m.decode() if isinstance(m, bytes) else str(m) for m in found}

    def remove(self, group: str, members: list[str]) -> None:
        if members:
            self._call(lambda: self.client.srem(self._k("g", group), *members), None)

    def lease(self, key: str, seconds: float) -> str | None:
        token = uuid.uuid4().hex
        # Unreachable: granted, so the caller computes instead of waiting for a holder nobody can see.
        granted: Any = True
        granted = self._call(lambda: self.client.set(self._k("l", key), token, nx=True,
                                                     px=max(1, int(seconds * 1000))), granted)
        return token if granted else None

    def renew(self, key: str, token: str, seconds: float) -> None:
        self._call(lambda: self.client.eval(_RENEW, 1, self._k("l", key), token, max(1, int(seconds * 1000))),
                   None)

    def release(self, key: str, token: str) -> None:
        self._call(lambda: self.client.eval(_RELEASE, 1, self._k("l", key), token), None)

    def leased(self, key: str) -> bool:
        return bool(self._call(lambda: self.client.exists(self._k("l", key)), 0))

    def clear(self) -> int:
        def drop() -> int:
            count = 0
            batch: list[Any] = []
            for name in self.client.scan_iter(match=f"{self.prefix}*", count=500):
                batch.append(name)
                if len(batch) >= 500:
                    count += int(self.client.delete(*batch))
                    batch = []
            if batch:
                count += int(self.client.delete(*batch))
            return count

        return self._call(drop, 0)

    def close(self) -> None:
        self.client.close()


def open_store(url: str | None) -> Store:
    """The store a URL names; None or empty: an in-process store with the default bound.

    >>> open_store("memory://?max_bytes=1024").max_bytes  # type: ignore[attr-defined]
    1024
    """
    if not url:
        return MemoryStore()
    parts = urlsplit(url)
    options = {k: v[-1] for k, v in parse_qs(parts.query).items()}
    if parts.scheme == "memory":
        try:
            return MemoryStore(int(options.get("max_bytes", DEFAULT_MAX_BYTES)))
        except ValueError:
            raise QueryError(f"cache URL {url!r}: max_bytes must be a whole number of bytes") from None
    if parts.scheme in ("redis", "rediss"):
        return RedisStore(url, options.get("prefix", "semantic:"))
    raise QueryError(f"unsupported cache URL {url!r}; use redis://host:port/db or memory://")
