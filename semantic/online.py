"""Online lookups: feature values for a batch of keys, served from memory where possible.

The store sits above the service (it is given one, and `api/` holds it): every value it serves was computed by
`Service.features` or `Service.training_set`, so by the one point-in-time builder and the one statement path.

Two ways a lookup is answered, one rule for both (the value for (key, t) is the training-set value for (key, t)):
- as of an explicit time `at`: per key from the shared result cache, keyed by (entity, features, at, key,
  warehouse, the reader's view); the keys a batch misses are computed together in one statement, so overlapping
  batches reuse each other's entries;
- as of "now" (no `at`): from a snapshot of every key of the entity as of the snapshot's time, materialized as a
  training set (one spine of all keys) and refreshed when older than `max_age` seconds or on demand.

Per-reader state is bounded: snapshots are kept per (entity, features, view fingerprint), so readers whose policies
resolve alike share one; at most `max_snapshots` are kept (least recently used evicted), and one not read for
`idle` seconds is no longer refreshed and is dropped.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from semantic.access import TRUSTED, Access
from semantic.cache import MemoCache, Source, result_key
from semantic.features.request import FeatureRequest
from semantic.plan.planner import OutputColumn
from semantic.service import Result, Service
from semantic.types import feature_type


@dataclass(frozen=True)
class Snapshot:
    at: datetime  # naive UTC: the time every value is as of
    names: tuple[str, ...]
    rows: dict[tuple[Any, ...], tuple[Any, ...]]  # key -> feature values
    built: float  # monotonic seconds
    seconds: float  # how long it took to build
    access: Access  # one reader of the view it was built for: the background refresh reads as them


Slot = tuple[str, tuple[str, ...], str]  # entity, features, view fingerprint


class OnlineStore:
    """Feature lookups for one service: per-key cache for explicit times, snapshots for the latest values."""

    def __init__(self, service: Service, *, max_age: float = 60.0, maxsize: int = 200_000, ttl: float = 300.0,
                 clock: Any = time.monotonic, max_snapshots: int = 16, idle: float | None = None) -> None:
        self.service = service
        self.max_age = max_age
        self.max_snapshots = max_snapshots
        self.idle = idle if idle is not None else max(5 * max_age, 60.0)
        self.rows: MemoCache[tuple[Any, ...]] = MemoCache(maxsize=maxsize, ttl=ttl)
        self._snapshots: OrderedDict[Slot, Snapshot] = OrderedDict()
        self._used: dict[Slot, float] = {}  # when each snapshot was last read
        self._building = threading.Lock()
        self._state = threading.Lock()  # guards the two dicts; never held while building
        self._columns: dict[tuple[str, tuple[str, ...]], tuple[OutputColumn, ...]] = {}
        self._clock = clock

    def __len__(self) -> int:
        """How many snapshots are kept."""
        return len(self._snapshots)

    def slots(self) -> list[tuple[str, tuple[str, ...], Access]]:
        """The (entity, features, reader) of every snapshot worth keeping fresh; those idle too long are dropped."""
        now = self._clock()
        with self._state:
            for slot in [s for s, used in self._used.items() if now - used > self.idle]:
                self._snapshots.pop(slot, None)
                del self._used[slot]
            return [(entity, names, snapshot.access) for (entity, names, _), snapshot in self._snapshots.items()]

    def lookup(self, request: FeatureRequest, access: Access = TRUSTED) -> Result:
        """One row per requested key, in request order: the key columns, then the features."""
        if request.at is None:
            return self._from_snapshot(request, access)
        return self._from_cache(request, access)

    def from_memory(self, request: FeatureRequest, access: Access = TRUSTED) -> Result | None:
        """The answer when memory holds all of it (a fresh snapshot, or every key cached), else None: callers on
        an event loop answer these at once and send only the rest to a worker thread."""
        fingerprint = self.service.view(access).fingerprint
        if request.at is None:
            current = self._snapshots.get((request.entity, request.names, fingerprint))
            if current is None or self._clock() - current.built >= self.max_age:
                return None
            return self._from_snapshot(request, access)
        found = {}
        for key in dict.fromkeys(request.keys):
            value = self.rows.peek(self._key(request, key, fingerprint))
            if value is None:
                return None
            found[key] = value
        rows = tuple((*key, *found[key]) for key in request.keys)
        return Result(self.columns(request), rows, "", True, f"{len(found)}/{len(found)}", Source.EXACT)

    def columns(self, request: FeatureRequest) -> tuple[OutputColumn, ...]:
        slot = (request.entity, request.names)
        if slot not in self._columns:
            model = self.service.model
            entity = model.entities[request.entity]
            keys = tuple(OutputColumn(c, c, entity.dimensions[c].type, "key") for c in entity.key)
            self._columns[slot] = keys + tuple(
                OutputColumn(n, n, feature_type(model, entity, entity.features[n]), "feature",
                             entity.features[n].description) for n in request.names)
        return self._columns[slot]

    # -- as of an explicit time: per key -------------------------------------------------------------------------

    def _key(self, request: FeatureRequest, key: tuple[Any, ...], scope: str) -> str:
        """A per-key entry, within the reader's view (`scope`: its fingerprint)."""
        warehouse = self.service.warehouse.identity if self.service.warehouse is not None else ""
        text = f"features|{request.entity}|{','.join(request.names)}|{request.at}|{key!r}"
        return result_key(text, warehouse, scope)

    def _from_cache(self, request: FeatureRequest, access: Access) -> Result:
        scope = self.service.view(access).fingerprint
        wanted = list(dict.fromkeys(request.keys))
        found: dict[tuple[Any, ...], tuple[Any, ...]] = {}
        missing = []
        for key in wanted:
            value = self.rows.peek(self._key(request, key, scope))
            if value is None:
                missing.append(key)
            else:
                found[key] = value
        sql = ""
        if missing:
            batch = FeatureRequest(request.entity, tuple(missing), request.names, request.at)
            computed = self.service.features(batch, access)
            sql = computed.sql
            width = len(self.service.model.entities[request.entity].key)
            for key, row in zip(missing, computed.rows, strict=True):
                found[key] = tuple(row[width:])
                self.rows.put(self._key(request, key, scope), found[key])
        rows = tuple((*key, *found[key]) for key in request.keys)
        return Result(self.columns(request), rows, sql, not missing, f"{len(wanted) - len(missing)}/{len(wanted)}",
                      Source.WAREHOUSE if missing else Source.EXACT)

    # -- latest: snapshots ---------------------------------------------------------------------------------------

    def snapshot(self, entity: str, names: tuple[str, ...], access: Access = TRUSTED, *,
                 refresh: bool = False) -> Snapshot:
        """The entity's snapshot for these features as `access` may read them, built now if missing, stale or
        `refresh` is set; shared by every reader of the same view."""
        slot = (entity, names, self.service.view(access).fingerprint)
        current = self._fresh(slot, refresh)
        if current is not None:
            return current
        with self._building:  # one build at a time; a caller that waited finds the fresh one
            current = self._fresh(slot, refresh)
            if current is not None:
                return current
            built = self._build(entity, names, access, refresh)
            with self._state:
                self._snapshots[slot] = built
                self._snapshots.move_to_end(slot)
                self._used[slot] = self._clock()
                while len(self._snapshots) > self.max_snapshots:
                    oldest, _ = self._snapshots.popitem(last=False)
                    self._used.pop(oldest, None)
            return built

    def _fresh(self, slot: Slot, refresh: bool) -> Snapshot | None:
        current = self._snapshots.get(slot)
        if refresh or current is None or self._clock() - current.built >= self.max_age:
            return None
        self._used[slot] = self._clock()
        return current

    def _build(self, entity: str, names: tuple[str, ...], access: Access, refresh: bool = False) -> Snapshot:
        """The snapshot from the service's cache store, so every process sharing it serves the same one and one
        rebuild (under the store's lease) serves all; built here when the store has none younger than `max_age`
        (an explicit `refresh` drops the stored one first)."""
        model = self.service.model
        started = self._clock()
        found = model.entities[entity]
        warehouse = self.service.warehouse.identity if self.service.warehouse is not None else ""
        key = result_key(f"snapshot|{entity}|{','.join(names)}", warehouse, self.service.view(access).fingerprint)
        if refresh:
            self.service.cache.store.delete([key])

        def build() -> pa.Table:
            at = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
            keys = self.service.keys(entity, access)
            spine = keys.append_column("event_timestamp", pa.array([at] * keys.num_rows, pa.timestamp("us")))
            return self.service.training_set(entity, spine, names, access=access)

        table = self.service.cache.get_or_run(key, build, ttl=self.max_age).table
        stamps = table.column("event_timestamp")
        at = stamps[0].as_py() if len(stamps) else datetime.now(UTC).replace(microsecond=0, tzinfo=None)
        key_columns = [table.column(c).to_pylist() for c in found.key]
        values = [table.column(n).to_pylist() for n in names]
        rows = {tuple(k): tuple(v) for k, v in zip(zip(*key_columns, strict=True), zip(*values, strict=True),
                                                   strict=True)}
        return Snapshot(at, names, rows, self._clock(), self._clock() - started, access)

    def _from_snapshot(self, request: FeatureRequest, access: Access) -> Result:
        snapshot = self.snapshot(request.entity, request.names, access)
        unknown = (None,) * len(request.names)
        rows = tuple((*key, *snapshot.rows.get(key, unknown)) for key in request.keys)
        return Result(self.columns(request), rows, "", True, f"snapshot as of {snapshot.at.isoformat()}",
                      Source.EXACT)
