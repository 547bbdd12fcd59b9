"""Online lookups: feature values for a batch of keys, served from memory where possible.

The store sits above the service (it is given one, and `api/` holds it): every value it serves was computed by
`Service.features` or `Service.training_set`, so by the one point-in-time builder and the one statement path.

Two ways a lookup is answered, one rule for both (the value for (key, t) is the training-set value for (key, t)):
- as of an explicit time `at`: per key from the shared result cache, keyed by (entity, features, at, key,
  warehouse, scope); the keys a batch misses are computed together in one statement, so overlapping batches reuse
  each other's entries;
- as of "now" (no `at`): from a snapshot of every key of the entity as of the snapshot's time, materialized as a
  training set (one spine of all keys) and refreshed when older than `max_age` seconds or on demand.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pyarrow as pa

from semantic.cache import MemoCache, Source, result_key
from semantic.features.build import feature_type
from semantic.features.request import FeatureRequest
from semantic.plan.planner import OutputColumn
from semantic.service import Result, Service


@dataclass(frozen=True)
class Snapshot:
    at: datetime  # naive UTC: the time every value is as of
    names: tuple[str, ...]
    rows: dict[tuple[Any, ...], tuple[Any, ...]]  # key -> feature values
    built: float  # monotonic seconds
    seconds: float  # how long it took to build


class OnlineStore:
    """Feature lookups for one service: per-key cache for explicit times, snapshots for the latest values."""

    def __init__(self, service: Service, *, max_age: float = 60.0, maxsize: int = 200_000, ttl: float = 300.0,
                 clock: Any = time.monotonic) -> None:
        self.service = service
        self.max_age = max_age
        self.rows: MemoCache[tuple[Any, ...]] = MemoCache(maxsize=maxsize, ttl=ttl)
        self._snapshots: dict[tuple[str, tuple[str, ...], str], Snapshot] = {}
        self._building = threading.Lock()
        self._columns: dict[tuple[str, tuple[str, ...]], tuple[OutputColumn, ...]] = {}
        self._clock = clock

    def slots(self) -> list[tuple[str, tuple[str, ...], str]]:
        """The (entity, features, scope) of every snapshot built so far."""
        return list(self._snapshots)

    def lookup(self, request: FeatureRequest, scope: str = "") -> Result:
        """One row per requested key, in request order: the key columns, then the features."""
        if request.at is None:
            return self._from_snapshot(request, scope)
        return self._from_cache(request, scope)

    def from_memory(self, request: FeatureRequest, scope: str = "") -> Result | None:
        """The answer when memory holds all of it (a fresh snapshot, or every key cached), else None: callers on
        an event loop answer these at once and send only the rest to a worker thread."""
        if request.at is None:
            current = self._snapshots.get((request.entity, request.names, scope))
            if current is None or self._clock() - current.built >= self.max_age:
                return None
            return self._from_snapshot(request, scope)
        found = {}
        for key in dict.fromkeys(request.keys):
            value = self.rows.peek(self._key(request, key, scope))
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
        warehouse = self.service.warehouse.identity if self.service.warehouse is not None else ""
        text = f"features|{request.entity}|{','.join(request.names)}|{request.at}|{key!r}"
        return result_key(text, warehouse, scope)

    def _from_cache(self, request: FeatureRequest, scope: str) -> Result:
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
            computed = self.service.features(batch, scope)
            sql = computed.sql
            width = len(self.service.model.entities[request.entity].key)
            for key, row in zip(missing, computed.rows, strict=True):
                found[key] = tuple(row[width:])
                self.rows.put(self._key(request, key, scope), found[key])
        rows = tuple((*key, *found[key]) for key in request.keys)
        return Result(self.columns(request), rows, sql, not missing, f"{len(wanted) - len(missing)}/{len(wanted)}",
                      Source.WAREHOUSE if missing else Source.EXACT)

    # -- latest: snapshots ---------------------------------------------------------------------------------------

    def snapshot(self, entity: str, names: tuple[str, ...], scope: str = "", *, refresh: bool = False) -> Snapshot:
        """The entity's snapshot for these features, built now if missing, stale or `refresh` is set."""
        slot = (entity, names, scope)
        current = self._snapshots.get(slot)
        if not refresh and current is not None and self._clock() - current.built < self.max_age:
            return current
        with self._building:  # one build at a time; a caller that waited finds the fresh one
            current = self._snapshots.get(slot)
            if not refresh and current is not None and self._clock() - current.built < self.max_age:
                return current
            self._snapshots[slot] = self._build(entity, names, scope)
            return self._snapshots[slot]

    def _build(self, entity: str, names: tuple[str, ...], scope: str) -> Snapshot:
        model = self.service.model
        started = self._clock()
        at = datetime.now(UTC).replace(microsecond=0, tzinfo=None)
        found = model.entities[entity]
        keys = self.service.keys(entity, scope)
        spine = keys.append_column("event_timestamp", pa.array([at] * keys.num_rows, pa.timestamp("us")))
        table = self.service.training_set(entity, spine, names, scope=scope)
        key_columns = [table.column(c).to_pylist() for c in found.key]
        values = [table.column(n).to_pylist() for n in names]
        rows = {tuple(k): tuple(v) for k, v in zip(zip(*key_columns, strict=True), zip(*values, strict=True),
                                                   strict=True)}
        return Snapshot(at, names, rows, self._clock(), self._clock() - started)

    def _from_snapshot(self, request: FeatureRequest, scope: str) -> Result:
        snapshot = self.snapshot(request.entity, request.names, scope)
        unknown = (None,) * len(request.names)
        rows = tuple((*key, *snapshot.rows.get(key, unknown)) for key in request.keys)
        return Result(self.columns(request), rows, "", True, f"snapshot as of {snapshot.at.isoformat()}",
                      Source.EXACT)
