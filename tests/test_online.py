"""Online lookups: per-key caching for explicit times, snapshots for the latest values; the same values as the
training set for the same (key, time), on DuckDB and PostgreSQL."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

import pyarrow as pa
import pytest

from semantic.access import Access
from semantic.features.request import FeatureRequest
from semantic.online import OnlineStore
from semantic.service import Service

AT = datetime(2024, 6, 15, 12)


def same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9)
    return bool(a == b)


def customers(service: Service) -> list[int]:
    return sorted(r[0] for r in service.warehouse.run("SELECT customer_id FROM customers").rows)  # type: ignore[union-attr]


def request(service: Service, keys: list[Any], at: datetime | None = AT) -> FeatureRequest:
    return FeatureRequest.create(service.model, "customer", keys, None, at)


def test_overlapping_batches_reuse_each_others_keys(service: Service) -> None:
    online = OnlineStore(service)
    first = online.lookup(request(service, [1, 2, 3]))
    assert first.cache_key == "0/3" and not first.cache_hit
    second = online.lookup(request(service, [3, 2, 4, 4]))
    assert second.cache_key == "2/3"  # 2 and 3 from the cache, only 4 computed
    again = online.lookup(request(service, [4, 1]))
    assert again.cache_hit and again.sql == ""  # nothing reached the warehouse
    direct = service.features(request(service, [3, 2, 4, 4]))
    assert second.rows == direct.rows and [c.name for c in second.columns] == [c.name for c in direct.columns]


def test_times_do_not_share_entries_and_equivalent_readers_do(service: Service) -> None:
    online = OnlineStore(service)
    online.lookup(request(service, [1, 2]))
    assert online.lookup(request(service, [1, 2], datetime(2024, 6, 15, 12, 0, 1))).cache_key == "0/2"
    # The example has no policies: every reader has the same view of it, so they share entries.
    other = Access.from_claims({"sub": "b", "roles": ["analyst"]})
    assert online.lookup(request(service, [1, 2]), other).cache_key == "2/2"


@pytest.mark.parametrize("at", [datetime(2023, 3, 15, 12), AT, datetime(2024, 12, 31, 23, 59, 59)])
def test_online_equals_training_for_every_customer(service: Service, at: datetime) -> None:
    """Through the per-key cache, half the keys warm from an earlier batch: the training set's values."""
    online = OnlineStore(service)
    keys = [*customers(service), 10 ** 7]
    online.lookup(request(service, keys[::2], at))
    got = online.lookup(request(service, keys, at))
    training = service.training_set("customer", pa.table({"customer_id": keys, "event_timestamp": [at] * len(keys)}))
    names = list(service.model.entities["customer"].features)
    for row, values in zip(got.rows, training.select(names).to_pylist(), strict=True):
        for name, value in zip(names, row[1:], strict=True):
            assert same(value, values[name]), f"customer {row[0]} at {at}: {name} {value!r} vs {values[name]!r}"


def test_latest_values_come_from_a_snapshot_equal_to_training_at_its_time(service: Service) -> None:
    clock = [0.0]
    online = OnlineStore(service, max_age=60, clock=lambda: clock[0])
    keys = [*customers(service)[:50], 10 ** 7]
    got = online.lookup(request(service, keys, None))
    snapshot = online.snapshot("customer", tuple(service.model.entities["customer"].features))
    assert got.cache_key == f"snapshot as of {snapshot.at.isoformat()}"
    assert len(snapshot.rows) == len(customers(service))
    training = service.training_set("customer", pa.table({"customer_id": keys,
                                                          "event_timestamp": [snapshot.at] * len(keys)}))
    names = list(service.model.entities["customer"].features)
    for row, values in zip(got.rows, training.select(names).to_pylist(), strict=True):
        assert all(same(v, values[n]) for n, v in zip(names, row[1:], strict=True)), row
    clock[0] = 30.0
    assert online.snapshot("customer", tuple(names)) is snapshot  # still fresh
    clock[0] = 61.0
    assert online.snapshot("customer", tuple(names)) is not snapshot  # stale: rebuilt
