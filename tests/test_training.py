"""Training sets on DuckDB and PostgreSQL, checked against a brute-force oracle written from DESIGN.md's rules.

The oracle reads the tables into Python once per warehouse, then answers each spine row (key k, time t) by scanning
that key's rows:
- metric feature: the metric over the related entity's rows with time <= t (and > t - window); a count is 0 for a
  key whose own row exists with its time <= t, null when the key is unknown or not there yet; other aggregates are
  null without rows in the window, and for an unknown key;
- latest feature: among the related rows with time <= t, created <= t (and time >= t - ttl), the greatest by
  (time, created, key columns in declared order); null for an unknown key;
- dimension feature: the entity's own value when its time <= t, else null;
- derived feature: the expression over those values.

Two data sets: the example shop, and `pit`, a small one built here so that ties on event time and on created time,
null values, null times, rows written before their event time, keys without events and rows of unknown keys are
common. Spines come from hypothesis: keys known and unknown, times on event times, exactly `window` or `ttl` after
them, a microsecond either side, or anywhere; with duplicate rows.
"""

from __future__ import annotations

import io
import math
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import anyio
import duckdb
import httpx
import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.app import create_app
from examples.shop.generate import generate
from semantic import execute
from semantic.errors import QueryError, UnknownFieldError, WarehouseError, WarehouseTimeoutError
from semantic.execute import PREFIX_MIN_ROWS, SqlWarehouse
from semantic.features import build as feature_build
from semantic.features.request import FeatureRequest
from semantic.features.training import Spine, assemble, build_training
from semantic.loader import load
from semantic.model import Model
from semantic.plan.planner import OutputColumn
from semantic.service import Service
from semantic.sql.render import render

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "examples" / "shop"
HOUR, DAY, MICRO = timedelta(hours=1), timedelta(days=1), timedelta(microseconds=1)
PROPERTY = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
Row = dict[str, Any]


def same(expected: Any, got: Any) -> bool:
    if expected is None or got is None:
        return expected is None and got is None
    if isinstance(expected, float) or isinstance(got, float):
        return math.isclose(expected, got, rel_tol=1e-9, abs_tol=1e-9)
    return bool(expected == got)


def rows_of(service: Service, sql: str) -> list[Row]:
    assert service.warehouse is not None
    table = service.warehouse.run(sql)
    return [dict(zip(table.names, row, strict=True)) for row in table.rows]


def by(rows: list[Row], key: str) -> dict[Any, list[Row]]:
    grouped: dict[Any, list[Row]] = defaultdict(list)
    for row in rows:
        grouped[row[key]].append(row)
    return grouped


# -- the oracle ---------------------------------------------------------------------------------------------------


@dataclass
class Oracle:
    """DESIGN.md's rules over tables held in Python, for one entity."""

    entities: dict[Any, Row]  # key -> the entity's own row
    entity_time: str
    events: dict[str, tuple[dict[Any, list[Row]], str]]  # source -> (rows by foreign key, time column)
    latest: dict[str, tuple[dict[Any, list[Row]], str, str | None, tuple[str, ...]]]  # source -> (rows, time, created, key)

    def at(self, key: Any, t: datetime | None) -> Callable[..., Any]:
        own = self.entities.get(key)
        exists = own is not None
        known = own is not None and t is not None and own[self.entity_time] is not None and own[self.entity_time] <= t

        def rows(source: str, window: timedelta | None) -> list[Row]:
            found, time = self.events[source]
            if t is None:
                return []
            return [r for r in found.get(key, []) if r[time] is not None and r[time] <= t
                    and (window is None or r[time] > t - window)]

        def count(source: str, window: timedelta | None, fn: Callable[[list[Row]], int] = len) -> int | None:
            return fn(rows(source, window)) if known else None

        def aggregate(source: str, window: timedelta | None, fn: Callable[[list[Row]], Any]) -> Any:
            matched = rows(source, window)
            return fn(matched) if exists and matched else None

        def latest(source: str, column: str, ttl: timedelta | None) -> Any:
            found, time, created, ranking = self.latest[source]
            if not exists or t is None:
                return None
            candidates = [r for r in found.get(key, []) if r[time] is not None and r[time] <= t
                          and (created is None or (r[created] is not None and r[created] <= t))
                          and (ttl is None or r[time] >= t - ttl)]
            if not candidates:
                return None
            order = (time, *([created] if created else []), *ranking)
            return max(candidates, key=lambda r: tuple(r[c] for c in order))[column]

        def dimension(column: str) -> Any:
            return own[column] if known and own is not None else None

        def answer(kind: str, *args: Any) -> Any:
            rules: dict[str, Callable[..., Any]] = {"count": count, "aggregate": aggregate, "latest": latest,
                                                    "dimension": dimension}
            return rules[kind](*args)

        return answer


def nullif(value: Any) -> Any:
    return None if value == 0 else value


def divide(a: Any, b: Any) -> Any:
    return None if a is None or b is None or b == 0 else a / b


def check(result: pa.Table, spine: list[tuple[Any, datetime | None]], expected: Callable[[Any, datetime | None], Row],
          names: list[str]) -> None:
    assert result.num_rows == len(spine)
    assert result.column("row_id").to_pylist() == list(range(len(spine)))
    got = result.select(names).to_pylist()
    for i, (key, t) in enumerate(spine):
        want = expected(key, t)
        for name in names:
            assert same(want[name], got[i][name]), f"row {i} (key {key!r}, t {t}): {name} = {got[i][name]!r}, " \
                                                   f"expected {want[name]!r}"


# -- the shop -----------------------------------------------------------------------------------------------------

SHOP_FEATURES = ["orders_last_30d", "lifetime_revenue", "revenue_last_90d", "views_last_7d", "region", "segment",
                 "revenue_per_order_30d", "orders_7d", "revenue_7d"]


def around(anchors: set[tuple[Any, datetime]]) -> list[tuple[Any, datetime]]:
    """Each (key, time) and a microsecond either side."""
    return sorted({(k, t + d) for k, t in anchors if k is not None for d in (-MICRO, timedelta(0), MICRO)},
                  key=lambda a: (a[1], a[0]))


@dataclass
class Shop:
    oracle: Oracle
    keys: list[Any]
    anchors: list[tuple[Any, datetime]]  # a key and a time at or around one of its rows' edges

    def expected(self, key: Any, t: datetime | None) -> Row:
        f = self.oracle.at(key, t)

        def revenue(rows: list[Row]) -> Any:  # SUM over the rows passing the filter: null when none does
            kept = [r["amount"] for r in rows if r["status"] is not None and r["status"] != "cancelled"]
            return sum(kept) if kept else None

        row = {
            "orders_last_30d": f("count", "orders", 30 * DAY), "lifetime_revenue": f("aggregate", "orders", None, revenue),
            "revenue_last_90d": f("aggregate", "orders", 90 * DAY, revenue), "views_last_7d": f("count", "views", 7 * DAY),
            "region": f("dimension", "region"), "segment": f("dimension", "segment"),
            "orders_7d": f("latest", "stats", "orders_7d", 2 * DAY), "revenue_7d": f("latest", "stats", "revenue_7d", 2 * DAY),
        }
        row["revenue_per_order_30d"] = divide(row["revenue_last_90d"], nullif(row["orders_last_30d"]))
        return row


@pytest.fixture(scope="module")
def shop(service: Service) -> Shop:
    """The example's tables in Python, with keys and times worth trying: customers with daily stats, with orders,
    without; orphan keys of orders; unknown keys; and times on and around their events."""
    customers = {r["customer_id"]: r for r in rows_of(service, "SELECT * FROM customers")}
    orders = by(rows_of(service, "SELECT customer_id, ordered_at, status, amount FROM orders"), "customer_id")
    views = by(rows_of(service, "SELECT customer_id, viewed_at FROM page_views"), "customer_id")
    stats = by(rows_of(service, "SELECT * FROM customer_daily_stats"), "customer_id")
    oracle = Oracle(customers, "signed_up_at", {"orders": (orders, "ordered_at"), "views": (views, "viewed_at")},
                    {"stats": (stats, "event_timestamp", "created_timestamp", ("customer_id", "event_timestamp"))})
    with_stats = sorted(k for k in stats if k in customers)[:8]
    restated = sorted({r["customer_id"] for rows in stats.values() for r in rows
                       if sum(o["event_timestamp"] == r["event_timestamp"] for o in stats[r["customer_id"]]) > 1})[:4]
    with_orders = sorted(k for k in orders if k in customers and k not in stats)[:6]
    silent = sorted(k for k in customers if k not in orders)[:3]
    orphans = sorted(k for k in orders if k is not None and k not in customers)[:3]
    keys = [*with_stats, *restated, *with_orders, *silent, *orphans, 0, 10**7]
    anchors: set[tuple[Any, datetime]] = set()
    for key in keys:
        for r in stats.get(key, []):
            anchors |= {(key, r["event_timestamp"]), (key, r["created_timestamp"]), (key, r["event_timestamp"] + 2 * DAY)}
        for r in orders.get(key, []):
            anchors |= {(key, r["ordered_at"] + d) for d in (timedelta(0), 30 * DAY, 90 * DAY)}
        for r in views.get(key, []):
            anchors |= {(key, r["viewed_at"]), (key, r["viewed_at"] + 7 * DAY)}
        if key in customers:
            anchors.add((key, customers[key]["signed_up_at"]))
    return Shop(oracle, keys, around(anchors))


@st.composite
def spines(draw: st.DrawFn, keys: list[Any], anchors: list[tuple[Any, datetime]], low: datetime,
           high: datetime) -> list[tuple[Any, datetime | None]]:
    """Rows of (key, time): on the edges of the key's own rows, or any key at any time (a few null); some
    repeated."""
    key = st.one_of(st.sampled_from(keys), st.just(None)) if draw(st.booleans()) else st.sampled_from(keys)
    anywhere = st.tuples(key, st.one_of(st.sampled_from([t for _, t in anchors]), st.datetimes(low, high)))
    row = st.one_of(st.sampled_from(anchors), anywhere)
    rows: list[tuple[Any, datetime | None]] = draw(st.lists(row, min_size=1, max_size=30))
    for _ in range(draw(st.integers(0, 4))):
        rows.insert(draw(st.integers(0, len(rows))), rows[draw(st.integers(0, len(rows) - 1))])
    if draw(st.integers(0, 9)) == 0:
        rows.append((rows[0][0], None))
    return rows


def spine_table(rows: list[tuple[Any, datetime | None]], key: str) -> pa.Table:
    return pa.table({key: pa.array([k for k, _ in rows], pa.int64()),
                     "event_timestamp": pa.array([t for _, t in rows], pa.timestamp("us")),
                     "row_id": pa.array(range(len(rows)), pa.int64())})


@given(data=st.data())
@PROPERTY
def test_shop_training_set_matches_the_oracle(service: Service, shop: Shop, data: st.DataObject) -> None:
    spine = data.draw(spines(shop.keys, shop.anchors, datetime(2022, 12, 30), datetime(2025, 1, 3)))
    result = service.training_set("customer", spine_table(spine, "customer_id"), SHOP_FEATURES)
    check(result, spine, shop.expected, SHOP_FEATURES)


WHEN = {"early": "SELECT TIMESTAMP '2023-03-15 12:00:00'",
        # when the median daily-stats row was written: that row and others are within their 2-day ttl
        "stats-live": "SELECT created_timestamp FROM customer_daily_stats ORDER BY created_timestamp "
                      "LIMIT 1 OFFSET (SELECT COUNT(*) / 2 FROM customer_daily_stats)",
        "last-second": "SELECT TIMESTAMP '2024-12-31 23:59:59'"}


@pytest.mark.parametrize("when", WHEN)
def test_online_and_training_agree_for_every_customer(service: Service, when: str) -> None:
    """One `at` for all keys (online) and the same time on every spine row (training) give the same values."""
    assert service.warehouse is not None
    at = service.warehouse.run(WHEN[when]).rows[0][0]
    keys = [r["customer_id"] for r in rows_of(service, "SELECT customer_id FROM customers")] + [10**7]
    online = service.features(FeatureRequest.create(service.model, "customer", keys, None, at))
    names = [c.name for c in online.columns][1:]
    training = service.training_set("customer", pa.table({"customer_id": keys, "event_timestamp": [at] * len(keys)}))
    assert names == list(service.model.entities["customer"].features)
    got = training.select(names).to_pylist()
    for row, values in zip(online.rows, got, strict=True):
        for name, value in zip(names, row[1:], strict=True):
            assert same(value, values[name]), f"customer {row[0]} at {at}: {name} online {value!r}, " \
                                              f"training {values[name]!r}"
    if when == "stats-live":
        assert training.column("orders_7d").null_count < len(keys)  # the median row at least


# -- pit: ties, nulls and edges -----------------------------------------------------------------------------------

PIT_MODEL = """
version: 1
name: pit
entities:
  - name: member
    table: pit_members
    key: member_id
    time: joined_at
    dimensions:
      - {name: member_id, type: integer}
      - {name: joined_at, type: time}
      - {name: tier}
      - {name: score, type: integer}
    features:
      - {name: events_3h, metric: event.event_count, window: 3 hours}
      - {name: events_all, metric: event.event_count}
      - {name: amount_3h, metric: event.amount_sum, window: 3 hours}
      - {name: big_6h, metric: event.big_count, window: 6 hours}
      - {name: amount_max_6h, metric: event.amount_max, window: 6 hours}
      - {name: kinds, metric: event.kinds}
      - {name: kinds_3h, metric: event.kinds, window: 3 hours}
      - {name: amount_avg, metric: event.amount_avg}
      - {name: amount_median_6h, metric: event.amount_median, window: 6 hours}
      - {name: amount_per_event_6h, metric: event.amount_per_event, window: 6 hours}
      - {name: events_plus_one_3h, metric: event.events_plus_one, window: 3 hours}
      - {name: value, latest: snapshot.value}
      - {name: value_2h, latest: snapshot.value, ttl: 2 hours}
      - {name: label_4h, latest: snapshot.label, ttl: 4 hours}
      - {name: last_amount, latest: event.amount}
      - {name: last_kind_3h, latest: event.kind, ttl: 3 hours}
      - {name: tier, dimension: tier}
      - {name: score, dimension: score}
      - {name: score_plus_events, expr: "score + events_3h"}
  - name: event
    table: pit_events
    key: event_id
    time: occurred_at
    relationships:
      - {entity: member, key: member_id}
    dimensions:
      - {name: event_id, type: integer}
      - {name: member_id, type: integer}
      - {name: occurred_at, type: time}
      - {name: amount, type: integer}
      - {name: kind}
    metrics:
      - {name: event_count, agg: count}
      - {name: amount_sum, agg: sum, expr: amount}
      - {name: big_count, agg: count, filter: "amount >= 5"}
      - {name: amount_max, agg: max, expr: amount}
      - {name: kinds, agg: count_distinct, expr: kind}
      - {name: amount_avg, agg: avg, expr: amount}
      - {name: amount_median, agg: median, expr: amount}
      - {name: amount_per_event, expr: "amount_sum / nullif(event_count, 0)"}
      - {name: events_plus_one, expr: "event_count + 1"}
  - name: snapshot
    table: pit_snapshots
    key: [member_id, snapshot_id]
    time: as_of
    created: written_at
    relationships:
      - {entity: member, key: member_id}
    dimensions:
      - {name: member_id, type: integer}
      - {name: snapshot_id, type: integer}
      - {name: as_of, type: time}
      - {name: written_at, type: time}
      - {name: value, type: integer}
      - {name: label}
"""
PIT_FEATURES = ["events_3h", "events_all", "amount_3h", "big_6h", "amount_max_6h", "kinds", "kinds_3h", "amount_avg",
                "amount_median_6h", "amount_per_event_6h", "events_plus_one_3h", "value", "value_2h", "label_4h", "tier", "score",
                "score_plus_events", "last_amount", "last_kind_3h"]
BASE = datetime(2024, 1, 1)
PIT_COLUMNS = {
    "pit_members": [("member_id", "INTEGER"), ("joined_at", "TIMESTAMP"), ("tier", "TEXT"), ("score", "INTEGER")],
    "pit_events": [("event_id", "INTEGER"), ("member_id", "INTEGER"), ("occurred_at", "TIMESTAMP"), ("amount", "INTEGER"),
                   ("kind", "TEXT")],
    "pit_snapshots": [("member_id", "INTEGER"), ("snapshot_id", "INTEGER"), ("as_of", "TIMESTAMP"),
                      ("written_at", "TIMESTAMP"), ("value", "INTEGER"), ("label", "TEXT")],
}


def pit_rows() -> dict[str, list[tuple[Any, ...]]]:
    """Members 1-12 (5 never joined, 12 joins late, 11 and 12 have no events); events of members 1-10, of the unknown
    13 and of nobody, on a 30-minute grid; snapshots of 1-8, 11 and 13 on an hourly grid, written up to 3 hours late
    or an hour early, with copies tied on time and created time (the greater snapshot_id wins) and copies tied on
    time only, written half an hour later or earlier than the original."""
    rng = np.random.default_rng(11)

    def maybe(value: Any, p: float) -> Any:
        return None if rng.random() < p else value

    members = [(m, None if m == 5 else BASE + (40 * HOUR if m == 12 else int(rng.integers(0, 24)) * HOUR),
                maybe(str(rng.choice(["gold", "silver"])), 0.3), maybe(int(rng.integers(0, 50)), 0.2))
               for m in range(1, 13)]
    events = []
    for event_id in range(1, 181):
        member = int(rng.choice([*range(1, 11), 13])) if rng.random() > 0.05 else None
        events.append((event_id, member, maybe(BASE + int(rng.integers(0, 150)) * HOUR / 2, 0.03),
                       maybe(int(rng.integers(0, 10)), 0.15), maybe(str(rng.choice(["x", "y", "z"])), 0.15)))
    snapshots = []
    for snapshot_id in range(1, 141):
        at = BASE + int(rng.integers(0, 75)) * HOUR
        late = [timedelta(0), timedelta(0), HOUR / 2, HOUR, 3 * HOUR, -HOUR][int(rng.integers(0, 6))]
        snapshots.append((int(rng.choice([*range(1, 9), 11, 13])), snapshot_id, at, maybe(at + late, 0.04),
                          maybe(int(rng.integers(0, 100)), 0.1), maybe(str(rng.choice(["p", "q"])), 0.2)))
    for i, source in enumerate(rng.choice(len(snapshots), 60, replace=False)):
        member, _, at, written, _, label = snapshots[source]
        if written is not None and i % 3:  # tied on time only: created breaks the tie, against the key's order
            written += HOUR / 2 if i % 3 == 1 else -HOUR / 2
        snapshots.append((member, 200 + i, at, written, maybe(int(rng.integers(0, 100)), 0.1), label))
    return {"pit_members": members, "pit_events": events, "pit_snapshots": snapshots}


@dataclass
class Pit:
    service: Service
    oracle: Oracle
    keys: list[Any]
    anchors: list[tuple[Any, datetime]]

    def expected(self, key: Any, t: datetime | None) -> Row:
        f = self.oracle.at(key, t)

        def amounts(rows: list[Row]) -> list[int]:
            return [r["amount"] for r in rows if r["amount"] is not None]

        def kinds(rows: list[Row]) -> int:
            return len({r["kind"] for r in rows if r["kind"] is not None})

        row = {
            "events_3h": f("count", "events", 3 * HOUR), "events_all": f("count", "events", None),
            "amount_3h": f("aggregate", "events", 3 * HOUR, lambda rs: sum(amounts(rs)) if amounts(rs) else None),
            "big_6h": f("count", "events", 6 * HOUR, lambda rs: sum(1 for a in amounts(rs) if a >= 5)),
            "amount_max_6h": f("aggregate", "events", 6 * HOUR, lambda rs: max(amounts(rs), default=None)),
            "kinds": f("count", "events", None, kinds), "kinds_3h": f("count", "events", 3 * HOUR, kinds),
            "amount_avg": f("aggregate", "events", None,
                            lambda rs: statistics.fmean(amounts(rs)) if amounts(rs) else None),
            "amount_median_6h": f("aggregate", "events", 6 * HOUR,
                                  lambda rs: float(statistics.median(amounts(rs))) if amounts(rs) else None),
            "amount_per_event_6h": f("aggregate", "events", 6 * HOUR,
                                     lambda rs: sum(amounts(rs)) / len(rs) if amounts(rs) else None),
            # a derived metric over a count: null without events in the window, as the missing group is
            "events_plus_one_3h": f("aggregate", "events", 3 * HOUR, lambda rs: len(rs) + 1),
            "value": f("latest", "snapshots", "value", None), "value_2h": f("latest", "snapshots", "value", 2 * HOUR),
            "label_4h": f("latest", "snapshots", "label", 4 * HOUR),
            # events have no created time, and many share one (a 30-minute grid): the greatest event_id wins
            "last_amount": f("latest", "events", "amount", None), "last_kind_3h": f("latest", "events", "kind", 3 * HOUR),
            "tier": f("dimension", "tier"), "score": f("dimension", "score"),
        }
        row["score_plus_events"] = None if row["score"] is None or row["events_3h"] is None \
            else row["score"] + row["events_3h"]
        return row


def _create_pit_tables(url: str) -> None:
    data = pit_rows()
    if url.startswith("duckdb"):
        with duckdb.connect(url.removeprefix("duckdb:///")) as con:
            for table, columns in PIT_COLUMNS.items():
                con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns)})")
                con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in columns)})", data[table])
        return
    with psycopg.connect(url, autocommit=True) as con:
        for table, columns in PIT_COLUMNS.items():
            con.execute(f"DROP TABLE IF EXISTS {table}")
            con.execute(f"CREATE TABLE {table} ({', '.join(f'{c} {t}' for c, t in columns)})")
            con.cursor().executemany(f"INSERT INTO {table} VALUES ({', '.join('%s' for _ in columns)})", data[table])


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def pit(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pit]:
    folder = tmp_path_factory.mktemp("pit")
    (folder / "model.yaml").write_text(PIT_MODEL)
    url = f"duckdb:///{folder / 'pit.duckdb'}" if request.param == "duckdb" else \
        str(request.getfixturevalue("postgres_url"))
    _create_pit_tables(url)
    warehouse = SqlWarehouse(url)
    try:
        yield _pit(Service(load(folder), warehouse))
    finally:
        warehouse.close()


def _pit(service: Service) -> Pit:
    members = {r["member_id"]: r for r in rows_of(service, "SELECT * FROM pit_members")}
    events = rows_of(service, "SELECT * FROM pit_events")
    snapshots = rows_of(service, "SELECT * FROM pit_snapshots")
    oracle = Oracle(members, "joined_at", {"events": (by(events, "member_id"), "occurred_at")},
                    {"snapshots": (by(snapshots, "member_id"), "as_of", "written_at", ("member_id", "snapshot_id")),
                     "events": (by(events, "member_id"), "occurred_at", None, ("event_id",))})
    anchors = {(k, m["joined_at"]) for k, m in members.items() if m["joined_at"]}
    anchors |= {(e["member_id"], e["occurred_at"] + d) for e in events if e["occurred_at"]
                for d in (timedelta(0), 3 * HOUR, 6 * HOUR)}
    anchors |= {(s["member_id"], s["as_of"] + d) for s in snapshots for d in (timedelta(0), 2 * HOUR, 4 * HOUR)}
    anchors |= {(s["member_id"], s["written_at"]) for s in snapshots if s["written_at"]}
    return Pit(service, oracle, [*range(0, 15)], around(anchors))


@given(data=st.data())
@PROPERTY
def test_pit_training_set_matches_the_oracle(pit: Pit, data: st.DataObject) -> None:
    spine = data.draw(spines(pit.keys, pit.anchors, BASE - 2 * HOUR, BASE + 84 * HOUR))
    result = pit.service.training_set("member", spine_table(spine, "member_id"), PIT_FEATURES)
    check(result, spine, pit.expected, PIT_FEATURES)


def test_pit_edges_are_exact(pit: Pit) -> None:
    """Every edge of members 1-4 and a microsecond either side: event times, exactly a window after them (out) and
    a microsecond before (in), exactly a ttl after a row (in), created times (known from then), join times."""
    spine: list[tuple[Any, datetime | None]] = [a for a in pit.anchors if a[0] in (1, 2, 3, 4)]
    result = pit.service.training_set("member", spine_table(spine, "member_id"), PIT_FEATURES)
    check(result, spine, pit.expected, PIT_FEATURES)


def test_duplicate_key_rows_resolve_to_the_greatest_key(pit: Pit) -> None:
    """Snapshot copies tied on time and created time: the one with the greater snapshot_id is the latest."""
    ties = rows_of(pit.service, """SELECT a.member_id, a.written_at, b.value FROM pit_snapshots a
                                   JOIN pit_snapshots b ON a.member_id = b.member_id AND a.as_of = b.as_of
                                    AND a.written_at = b.written_at AND b.snapshot_id > a.snapshot_id
                                   WHERE b.snapshot_id >= 200 AND a.member_id IN (1, 2, 3, 4, 6, 7, 8)""")
    assert ties, "the pit data has rows tied on time and created time"
    spine = [(r["member_id"], r["written_at"]) for r in ties]
    result = pit.service.training_set("member", spine_table(spine, "member_id"), ["value"])
    check(result, spine, pit.expected, ["value"])


def _postgres_only(pit: Pit) -> SqlWarehouse:
    warehouse = pit.service.warehouse
    if not isinstance(warehouse, SqlWarehouse) or warehouse.dialect != "postgres":
        pytest.skip("answering a spine in parts is PostgreSQL's")
    return warehouse


def _count_parts(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of parts (connections) of each training set, as `SqlWarehouse._split` runs them."""
    counts: list[int] = []
    calls: list[int] = []
    split, postgres = SqlWarehouse._split, SqlWarehouse._postgres

    def counting_postgres(self: SqlWarehouse, *args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return postgres(self, *args, **kwargs)

    def counting_split(self: SqlWarehouse, sql: str, tables: Any) -> pa.Table:
        calls.clear()
        try:
            return split(self, sql, tables)
        finally:
            counts.append(len(calls))

    monkeypatch.setattr(SqlWarehouse, "_postgres", counting_postgres)
    monkeypatch.setattr(SqlWarehouse, "_split", counting_split)
    return counts


@pytest.mark.parametrize("arrays_from", [0, 10**12], ids=["arrays", "range-joins"])
def test_pit_in_parts_matches_the_oracle(pit: Pit, arrays_from: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A spine answered in two parts on two connections (by its keys, dealt round) gives the oracle's values for
    every edge, in both forms; each part reads only its own keys' rows."""
    _postgres_only(pit)
    monkeypatch.setattr(feature_build, "PREFIX_MIN_ROWS", arrays_from)
    monkeypatch.setattr(execute, "SPLIT_MIN_ROWS", 0)
    counts = _count_parts(monkeypatch)
    spine: list[tuple[Any, datetime | None]] = [*pit.anchors, (99, BASE), (3, None)]
    result = pit.service.training_set("member", spine_table(spine, "member_id"), PIT_FEATURES)
    check(result, spine, pit.expected, PIT_FEATURES)
    assert counts == [2]


def test_pit_parts_read_one_snapshot(pit: Pit, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows committed after the first part began are seen by no part: the second imports the first's snapshot.
    Here an event per member lands just before the second part's first statement."""
    warehouse = _postgres_only(pit)
    monkeypatch.setattr(feature_build, "PREFIX_MIN_ROWS", 0)
    monkeypatch.setattr(execute, "SPLIT_MIN_ROWS", 0)
    at = BASE + timedelta(hours=30)
    spine = spine_table([(k, at) for k in pit.keys], "member_id")
    before = pit.service.training_set("member", spine, PIT_FEATURES)
    inserted: list[bool] = []
    run_part = SqlWarehouse._postgres

    def writing_first(self: SqlWarehouse, connection: Any, sqls: Any, tables: Any, begin: Any = (),
                      **kwargs: Any) -> Any:
        if any("SNAPSHOT" in statement for statement in begin) and not inserted:
            with psycopg.connect(str(warehouse.engine.url).replace("+psycopg", ""), autocommit=True) as con:
                con.execute("INSERT INTO pit_events SELECT 9000 + member_id, member_id, %s, 1, 'late' "
                            "FROM pit_members", (at - timedelta(minutes=1),))
            inserted.append(True)
        return run_part(self, connection, sqls, tables, begin, **kwargs)

    monkeypatch.setattr(SqlWarehouse, "_postgres", writing_first)
    try:
        during = pit.service.training_set("member", spine, PIT_FEATURES)
        assert inserted
        assert during.equals(before)
        monkeypatch.setattr(SqlWarehouse, "_postgres", run_part)
        after = pit.service.training_set("member", spine, PIT_FEATURES)
        assert after.column("events_3h").to_pylist() != before.column("events_3h").to_pylist()  # the rows are there
    finally:
        with psycopg.connect(str(warehouse.engine.url).replace("+psycopg", ""), autocommit=True) as con:
            con.execute("DELETE FROM pit_events WHERE event_id >= 9000")


def test_pit_parts_only_with_spare_connections(pit: Pit, monkeypatch: pytest.MonkeyPatch) -> None:
    """With no connection to spare in the pool the spine is answered whole, on one, never waiting for another;
    with one to spare, in two parts."""
    warehouse = _postgres_only(pit)
    monkeypatch.setattr(feature_build, "PREFIX_MIN_ROWS", 0)
    monkeypatch.setattr(execute, "SPLIT_MIN_ROWS", 0)
    counts = _count_parts(monkeypatch)
    narrow = SqlWarehouse(str(warehouse.engine.url), pool_size=1, pool_timeout=0.5)
    try:
        service = Service(pit.service.model, narrow)
        spine: list[tuple[Any, datetime | None]] = [(k, BASE + timedelta(hours=30)) for k in pit.keys]
        held = narrow._raw()
        try:
            check(service.training_set("member", spine_table(spine, "member_id"), PIT_FEATURES), spine,
                  pit.expected, PIT_FEATURES)
        finally:
            held.close()
        assert counts == [1]
        check(service.training_set("member", spine_table(spine, "member_id"), PIT_FEATURES), spine, pit.expected,
              PIT_FEATURES)
        assert counts == [1, 2]
    finally:
        narrow.close()


def test_pit_failing_part_stops_the_others(pit: Pit, monkeypatch: pytest.MonkeyPatch) -> None:
    """A part the warehouse refuses (here a division by zero in the second part's statement) cancels the first
    part's statement (here a 30 s sleep) at once; the refusal is the error."""
    warehouse = _postgres_only(pit)
    monkeypatch.setattr(execute, "SPLIT_MIN_ROWS", 0)
    postgres = SqlWarehouse._postgres

    def faulty(self: SqlWarehouse, connection: Any, sqls: Any, tables: Any, begin: Any = (), **kwargs: Any) -> Any:
        second = any("SNAPSHOT" in statement for statement in begin)
        return postgres(self, connection, ["SELECT 1 / 0 AS x" if second else "SELECT pg_sleep(30)"], tables, begin,
                        **kwargs)

    monkeypatch.setattr(SqlWarehouse, "_postgres", faulty)
    patient = SqlWarehouse(str(warehouse.engine.url), timeout=None)
    try:
        spine: list[tuple[Any, datetime | None]] = [(k, BASE) for k in pit.keys]
        started = time.monotonic()
        with pytest.raises(WarehouseError, match="SQLSTATE 22012"):  # division by zero
            Service(pit.service.model, patient).training_set("member", spine_table(spine, "member_id"), ["tier"])
        assert time.monotonic() - started < 15
        assert patient._arrow_pool is not None and patient._arrow_pool.checkedout() == 0
    finally:
        patient.close()


def test_pit_failed_part_fails_the_whole(pit: Pit, monkeypatch: pytest.MonkeyPatch) -> None:
    """Parts past the statement time limit: one error, the time limit's, and every connection back in the pool,
    usable (each part's transaction rolled back)."""
    warehouse = _postgres_only(pit)
    monkeypatch.setattr(feature_build, "PREFIX_MIN_ROWS", 0)
    monkeypatch.setattr(execute, "SPLIT_MIN_ROWS", 0)
    counts = _count_parts(monkeypatch)
    hasty = SqlWarehouse(str(warehouse.engine.url), timeout=0.25)
    try:
        service = Service(pit.service.model, hasty)
        spine = pa.table({"member_id": np.tile(np.array(pit.keys, np.int64), 30_000),
                          "event_timestamp": pa.array([BASE + timedelta(hours=30)] * (30_000 * len(pit.keys)))})
        with pytest.raises(WarehouseTimeoutError, match=r"longer than the 0\.25 s limit"):
            service.training_set("member", spine, PIT_FEATURES)
        assert counts == [2]
        assert hasty._arrow_pool is not None and hasty._arrow_pool.checkedout() == 0
        hasty.timeout = None
        assert hasty.arrow("SELECT 1 AS one").column("one").to_pylist() == [1]
    finally:
        hasty.close()


@pytest.mark.parametrize("hours", [3, 27.5, 50])
def test_pit_online_and_training_agree(pit: Pit, hours: float) -> None:
    """The online lookup (one `at`) gives what the training set gives for the same time, ties and all."""
    at = BASE + timedelta(hours=hours)
    keys = pit.keys
    online = pit.service.features(FeatureRequest.create(pit.service.model, "member", keys, PIT_FEATURES, at))
    training = pit.service.training_set("member", spine_table([(k, at) for k in keys], "member_id"), PIT_FEATURES)
    for row, values in zip(online.rows, training.select(PIT_FEATURES).to_pylist(), strict=True):
        for name, value in zip(PIT_FEATURES, row[1:], strict=True):
            assert same(value, values[name]), f"member {row[0]} at {at}: {name} online {value!r}, " \
                                              f"training {values[name]!r}"
    check(training, [(k, at) for k in keys], pit.expected, PIT_FEATURES)


# -- time columns stored as DATE and TIMESTAMPTZ, hand-computed ----------------------------------------------------

STORED_MODEL = """
version: 1
name: stored
entities:
  - name: member
    table: st_members
    key: member_id
    time: joined_at
    dimensions:
      - {name: member_id, type: integer}
      - {name: joined_at, type: time, storage: timestamptz}
    features:
      - {name: visits_2d, metric: visit.visit_count, window: 2 days}
      - {name: spent, metric: visit.spent}
      - {name: spent_2d, metric: visit.spent, window: 2 days}
      - {name: last_spent, latest: visit.amount}
      - {name: last_day, latest: visit.day, ttl: 1 day}
      - {name: level, latest: reading.level}
      - {name: level_1h, latest: reading.level, ttl: 1 hour}
  - name: visit
    table: st_visits
    key: visit_id
    time: day
    relationships:
      - {entity: member, key: member_id}
    dimensions:
      - {name: visit_id, type: integer}
      - {name: member_id, type: integer}
      - {name: day, type: time, storage: date}
      - {name: amount, type: integer}
    metrics:
      - {name: visit_count, agg: count}
      - {name: spent, agg: sum, expr: amount}
  - name: reading
    table: st_readings
    key: [member_id, reading_id]
    time: taken_at
    created: stored_at
    relationships:
      - {entity: member, key: member_id}
    dimensions:
      - {name: member_id, type: integer}
      - {name: reading_id, type: integer}
      - {name: taken_at, type: time, storage: timestamptz}
      - {name: stored_at, type: time, storage: timestamptz}
      - {name: level, type: integer}
"""
STORED_ROWS = {
    "st_members": ("member_id INTEGER, joined_at TIMESTAMPTZ",
                   [(1, "2024-01-01 00:00:00+00"), (2, "2024-01-01 00:00:00+00")]),
    # member 1: two visits on one day (one without an amount), one two days later, one of an unknown member
    "st_visits": ("visit_id INTEGER, member_id INTEGER, day DATE, amount INTEGER",
                  [(1, 1, "2024-01-02", 5), (2, 1, "2024-01-02", None), (3, 1, "2024-01-04", 7), (4, 9, "2024-01-02", 1)]),
    # readings 10 and 11 tie on their time; 11 is stored first, 10 later (the greater created time wins once known);
    # 12 is later but stored later still; 13 ties 12 on both times (the greater key wins)
    "st_readings": ("member_id INTEGER, reading_id INTEGER, taken_at TIMESTAMPTZ, stored_at TIMESTAMPTZ, level INTEGER",
                    [(1, 10, "2024-01-02 12:00:00+00", "2024-01-02 13:00:00+00", 100),
                     (1, 11, "2024-01-02 12:00:00+00", "2024-01-02 12:30:00+00", 200),
                     (1, 12, "2024-01-03 00:00:00+00", "2024-01-03 05:00:00+00", 300),
                     (1, 13, "2024-01-03 00:00:00+00", "2024-01-03 05:00:00+00", 400)]),
}
STORED_FEATURES = ["visits_2d", "spent", "spent_2d", "last_spent", "last_day", "level", "level_1h"]
_AT = datetime(2024, 1, 2)
_DAY2, _DAY4 = date(2024, 1, 2), date(2024, 1, 4)
STORED_EXPECTED = [  # (member, t) -> visits_2d, spent, spent_2d, last_spent, last_day, level, level_1h
    (1, _AT - timedelta(microseconds=1), (0, None, None, None, None, None, None)),
    # a DATE is its midnight; the visit without an amount is the last (id 2)
    (1, _AT, (2, 5, 5, None, _DAY2, None, None)),
    (1, _AT + timedelta(hours=12, minutes=29), (2, 5, 5, None, _DAY2, None, None)),  # 11 is not stored yet
    (1, _AT + timedelta(hours=12, minutes=30), (2, 5, 5, None, _DAY2, 200, 200)),
    (1, _AT + timedelta(hours=13), (2, 5, 5, None, _DAY2, 100, 100)),  # 10 known now: the greater created time
    (1, _AT + timedelta(hours=13, microseconds=1), (2, 5, 5, None, _DAY2, 100, None)),  # over an hour old
    (1, _AT + timedelta(days=1), (2, 5, 5, None, _DAY2, 100, None)),  # a day old: still within the ttl
    (1, _AT + timedelta(days=1, hours=4), (2, 5, 5, None, None, 100, None)),  # 12 and 13 not stored yet
    (1, _AT + timedelta(days=1, hours=5), (2, 5, 5, None, None, 400, None)),  # 13: the greater key of a full tie
    (1, _AT + timedelta(days=2), (1, 12, 7, 7, _DAY4, 400, None)),  # the window (t - 2 days, t] leaves out day 2
    (1, _AT + timedelta(days=2) - timedelta(microseconds=1), (2, 5, 5, None, None, 400, None)),
    (1, _AT + timedelta(days=9), (0, 12, None, 7, None, 400, None)),  # an empty window: 0 visits, no sum
    (2, _AT + timedelta(days=9), (0, None, None, None, None, None, None)),  # a member without rows
    (9, _AT + timedelta(days=9), (None, None, None, None, None, None, None)),  # an unknown key
    (1, None, (None, None, None, None, None, None, None)),
]


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def stored(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("stored")
    (folder / "model.yaml").write_text(STORED_MODEL)
    url = f"duckdb:///{folder / 'stored.duckdb'}" if request.param == "duckdb" else \
        str(request.getfixturevalue("postgres_url"))
    if url.startswith("duckdb"):
        with duckdb.connect(url.removeprefix("duckdb:///")) as con:
            con.execute("SET TimeZone = 'UTC'")
            for table, (columns, rows) in STORED_ROWS.items():
                con.execute(f"CREATE TABLE {table} ({columns})")
                con.executemany(f"INSERT INTO {table} VALUES ({', '.join('?' for _ in rows[0])})", rows)
    else:
        with psycopg.connect(url, autocommit=True) as con:
            con.execute("SET TimeZone = 'UTC'")
            for table, (columns, rows) in STORED_ROWS.items():
                con.execute(f"DROP TABLE IF EXISTS {table}")
                con.execute(f"CREATE TABLE {table} ({columns})")
                con.cursor().executemany(f"INSERT INTO {table} VALUES ({', '.join('%s' for _ in rows[0])})", rows)
    warehouse = SqlWarehouse(url)
    try:
        yield Service(load(folder), warehouse)
    finally:
        warehouse.close()


@pytest.mark.parametrize("arrays_from", [0, 10**12], ids=["arrays", "range-joins"])
def test_date_and_timestamptz_columns(stored: Service, arrays_from: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Event times stored as DATE (a day is its midnight) and TIMESTAMPTZ, against hand-computed values: ties on
    time, created times, a ttl, window edges a microsecond either side, an empty window, unknown keys, a null time;
    on PostgreSQL in both its forms (per-key arrays from `PREFIX_MIN_ROWS` spine rows, range joins below)."""
    monkeypatch.setattr(feature_build, "PREFIX_MIN_ROWS", arrays_from)
    spine = [(key, t) for key, t, _ in STORED_EXPECTED]
    result = stored.training_set("member", spine_table(spine, "member_id"), STORED_FEATURES)
    for (key, t, want), got in zip(STORED_EXPECTED, result.select(STORED_FEATURES).to_pylist(), strict=True):
        assert tuple(got.values()) == want, f"member {key} at {t}"


# -- the spine: order, types, forms, refusals ----------------------------------------------------------------------


def test_every_row_once_in_order_typed(service: Service) -> None:
    keys = [5, 10**7, 3, 5, 1, 3, 10**7]
    spine = pa.table({"note": [f"row {i}" for i in range(len(keys))], "customer_id": pa.array(keys, pa.int32()),
                      "event_timestamp": [datetime(2024, 6, 1)] * len(keys), "flag": [True, False, None] * 2 + [True]})
    result = service.training_set("customer", spine)
    features = list(service.model.entities["customer"].features)
    assert result.column_names == ["note", "customer_id", "event_timestamp", "flag", *features]
    assert result.select(["note", "customer_id", "flag"]).equals(spine.select(["note", "customer_id", "flag"]))
    types = {f.name: f.type for f in result.schema}
    assert types["orders_last_30d"] == pa.int64() and types["orders_7d"] == pa.int64()
    assert types["lifetime_revenue"] == pa.float64() and types["region"] == pa.string()
    assert result.column("orders_last_30d").null_count == 2  # the unknown key, twice: integers with nulls
    rows = result.to_pylist()
    assert rows[0] | {"note": None} == rows[3] | {"note": None}  # duplicates kept, equal
    assert all(rows[1][f] is None for f in features)
    frame = service.training_set("customer", spine, ["orders_last_30d", "orders_7d"], pandas=True)
    assert str(frame["orders_last_30d"].dtype) == "Int64" and str(frame["orders_7d"].dtype) == "Int64"
    assert frame["orders_last_30d"].isna().sum() == 2


def test_answer_rows_in_any_order(model: Model) -> None:
    """The statement has no ORDER BY: answer rows in any order are put in spine order by `spine_row`; an answer
    missing a spine row, repeating one or naming one outside the spine is refused."""
    spine = Spine.create(model, "customer", pa.table({"customer_id": [7, 8, 7, 9],
                                                      "event_timestamp": [datetime(2024, 6, 1)] * 4}))
    columns = [OutputColumn("orders_last_30d", "f0", "integer", "feature"), OutputColumn("region", "f1", "string",
                                                                                         "feature")]
    shuffled = pa.table({"spine_row": [2, 0, 3, 1], "f0": [12, 10, None, 11], "f1": ["c", "a", "d", "b"]})
    result = assemble(spine, shuffled, columns)
    assert result.column_names == ["customer_id", "event_timestamp", "orders_last_30d", "region"]
    assert result.column("orders_last_30d").to_pylist() == [10, 11, 12, None]
    assert result.column("region").to_pylist() == ["a", "b", "c", "d"]
    assert result.column("customer_id").to_pylist() == [7, 8, 7, 9]
    for rows in ([2, 0, 3], [2, 0, 2, 1], [2, 0, 4, 1], [-1, 0, 2, 1], [2, 0, None, 1]):
        answer = pa.table({"spine_row": pa.array(rows, pa.int64()), "f0": [1] * len(rows), "f1": ["x"] * len(rows)})
        with pytest.raises(WarehouseError, match="not each spine row once"):
            assemble(spine, answer, columns)


def test_spine_time_forms(service: Service) -> None:
    """Aware times are instants (converted to UTC), dates are midnight, ISO text is parsed, any column name works."""
    naive = datetime(2024, 6, 1, 10, 30)
    expected = service.training_set("customer", pa.table({"customer_id": [1, 2], "event_timestamp": [naive] * 2}))
    paris = naive.replace(tzinfo=UTC).astimezone(ZoneInfo("Europe/Paris"))
    forms = [pa.array([paris] * 2, pa.timestamp("us", tz="Europe/Paris")), pa.array(["2024-06-01T10:30:00"] * 2),
             pa.array(["2024-06-01T12:30:00+02:00"] * 2), pa.array([naive] * 2, pa.timestamp("ns"))]
    for form in forms:
        result = service.training_set("customer", pa.table({"customer_id": [1, 2], "asked_at": form}),
                                      time_column="asked_at")
        assert result.drop(["asked_at"]).to_pylist() == expected.drop(["event_timestamp"]).to_pylist()
    day = service.training_set("customer", pa.table({"customer_id": [1], "event_timestamp": [date(2024, 6, 1)]}))
    midnight = service.training_set("customer", pa.table({"customer_id": [1],
                                                          "event_timestamp": [datetime(2024, 6, 1)]}))
    assert day.drop(["event_timestamp"]).to_pylist() == midnight.drop(["event_timestamp"]).to_pylist()


def test_null_keys_and_times_give_null_rows(service: Service) -> None:
    spine = pa.table({"customer_id": pa.array([1, None, 1], pa.int64()),
                      "event_timestamp": pa.array([None, datetime(2024, 6, 1), datetime(2024, 6, 1)])})
    rows = service.training_set("customer", spine).to_pylist()
    features = list(service.model.entities["customer"].features)
    assert [all(row[f] is None for f in features) for row in rows] == [True, True, False]


def test_empty_spine(service: Service) -> None:
    spine = pa.table({"customer_id": pa.array([], pa.int64()), "event_timestamp": pa.array([], pa.timestamp("us"))})
    result = service.training_set("customer", spine, ["orders_last_30d", "region"])
    assert result.num_rows == 0
    assert result.schema.field("orders_last_30d").type == pa.int64()


@pytest.mark.parametrize(("spine", "names", "error", "words"), [
    (pa.table({"event_timestamp": [datetime(2024, 1, 1)]}), None, QueryError, "no column 'customer_id'"),
    (pa.table({"customer_id": [1]}), None, QueryError, "no column 'event_timestamp'"),
    (pa.table({"customer_id": [1], "event_timestamp": [datetime(2024, 1, 1)], "region": ["EU"]}), None, QueryError,
     "named like the feature(s) region"),
    (pa.table({"customer_id": ["abc"], "event_timestamp": [datetime(2024, 1, 1)]}), None, QueryError,
     "the key customer.customer_id is an integer"),
    (pa.table({"customer_id": [1], "event_timestamp": [True]}), None, QueryError, "must hold timestamps"),
    (pa.table({"customer_id": [1], "event_timestamp": ["yesterday"]}), None, QueryError, "not an ISO 8601"),
    (pa.table({"customer_id": [1], "event_timestamp": [datetime(2024, 1, 1)]}), ["regoin"], UnknownFieldError,
     "Did you mean 'region'"),
], ids=["no-key", "no-time", "clash", "key-type", "time-type", "time-text", "unknown-feature"])
def test_spine_refusals(model: Model, spine: pa.Table, names: list[str] | None, error: type[Exception],
                        words: str) -> None:
    with pytest.raises(error, match=None) as raised:
        Spine.create(model, "customer", spine, names)
    assert words in str(raised.value)


def test_duckdb_reads_latest_and_metric_features_in_two_statements(model: Model) -> None:
    """With a warehouse that runs statements on one snapshot, DuckDB answers the latest and dimension features in
    one statement and the metric and derived ones in another (less memory: ASOF joins beside the final joins by
    spine row make DuckDB hold those joins' probe rows); every feature once, in one statement or the other."""
    names = [n for n in model.entities["customer"].features]
    spine = Spine.create(model, "customer", pa.table({"customer_id": [1], "event_timestamp": [datetime(2024, 1, 1)]}),
                         names)
    kinds = {n: model.entities["customer"].features[n].kind for n in names}
    split = [[c.name for c in columns] for _, columns in build_training(model, spine, "s", "duckdb", split=True)]
    assert {kinds[n] for n in split[1]} <= {"metric", "derived"} and {kinds[n] for n in split[0]}.isdisjoint(
        {"metric", "derived"}) and sorted(split[0] + split[1]) == sorted(names), split
    assert len(build_training(model, spine, "s", "duckdb")) == 1
    assert len(build_training(model, spine, "s", "postgres", split=True)) == 1


def test_postgres_reads_arrays_for_large_spines_only(model: Model) -> None:
    """Range joins cost per spine row, the per-key arrays a sort of every source: PostgreSQL reads the arrays from
    `PREFIX_MIN_ROWS` spine rows on."""
    def sql(rows: int) -> str:
        return render(feature_build.build_training(model, "customer", ["orders_last_30d"], "s", "postgres", rows)[0],
                      "postgres")

    assert "WIDTH_BUCKET" in sql(PREFIX_MIN_ROWS)
    assert "WIDTH_BUCKET" not in sql(PREFIX_MIN_ROWS - 1)


def test_the_spine_is_a_table_not_literals(model: Model) -> None:
    """The keys and times reach SQL only as the registered table; DuckDB gets ASOF, PostgreSQL ROW_NUMBER."""
    spine = Spine.create(model, "customer", pa.table({"customer_id": [987654321],
                                                      "event_timestamp": [datetime(2031, 7, 9, 8, 7, 6)]}))
    duck = render(build_training(model, spine, "the_spine", "duckdb")[0][0], "duckdb")
    postgres = render(build_training(model, spine, "the_spine", "postgres")[0][0], "postgres")
    for sql in (duck, postgres):
        assert "987654321" not in sql and "2031" not in sql and '"the_spine"' in sql
    assert "ASOF LEFT JOIN" in duck and "ROW_NUMBER" not in duck
    assert "ASOF" not in postgres and "ROW_NUMBER() OVER" in postgres


# -- the command line and HTTP -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("training") / "shop.duckdb", orders=1500)


def a_spine(n: int = 40) -> pa.Table:
    rng = np.random.default_rng(3)
    seconds = rng.integers(0, 730 * 86_400, n).astype("timedelta64[s]") + np.datetime64("2023-01-01T00:00:00")
    return pa.table({"customer_id": pa.array(rng.integers(1, 170, n), pa.int64()),
                     "event_timestamp": pa.array(seconds.astype("datetime64[us]")), "label": rng.integers(0, 2, n)})


def semantic(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_cli_spine_round_trip(shop_file: Path, tmp_path: Path, suffix: str) -> None:
    spine = a_spine()
    source, target = tmp_path / f"spine{suffix}", tmp_path / f"out{suffix}"
    if suffix == ".csv":
        pa_csv.write_csv(spine, source)
    else:
        pq.write_table(spine, source)
    run = semantic("features", str(MODEL), "--entity", "customer", "--spine", str(source), "--out", str(target),
                   "--warehouse", f"duckdb:///{shop_file}")
    assert run.returncode == 0, run.stderr
    nulls = pa_csv.ConvertOptions(null_values=[""], strings_can_be_null=True, quoted_strings_can_be_null=False)
    got = pq.read_table(target) if suffix == ".parquet" else pa_csv.read_csv(target, convert_options=nulls)
    warehouse = SqlWarehouse(f"duckdb:///{shop_file}", read_only=True)
    expected = Service(load(MODEL), warehouse).training_set("customer", spine)
    warehouse.close()
    assert got.column_names == expected.column_names
    if suffix == ".parquet":
        assert got.equals(expected)
    else:  # CSV has no types: compare the values
        for name in expected.column_names:
            want = expected.column(name).to_pylist()
            assert all(same(w, g) for w, g in zip(want, got.column(name).to_pylist(), strict=True)), name


def test_cli_spine_options(shop_file: Path, tmp_path: Path) -> None:
    source = tmp_path / "spine.parquet"
    pq.write_table(a_spine(5).rename_columns(["customer_id", "as_of", "label"]), source)
    warehouse = ("--warehouse", f"duckdb:///{shop_file}")
    run = semantic("features", str(MODEL), "--entity", "customer", "--spine", str(source), "--out",
                   str(tmp_path / "out.parquet"), "--time-column", "as_of", "--feature", "region", *warehouse)
    assert run.returncode == 0, run.stderr
    assert pq.read_table(tmp_path / "out.parquet").column_names == ["customer_id", "as_of", "label", "region"]
    refused = [
        ("--spine", str(source), "--out", str(tmp_path / "x.parquet")),  # no time column named event_timestamp
        ("--spine", str(source), "--time-column", "as_of"),  # no --out
        ("--spine", str(source), "--out", str(tmp_path / "x.txt"), "--time-column", "as_of"),
        ("--spine", str(source), "--out", str(tmp_path / "x.csv"), "--key", "1", "--time-column", "as_of"),
    ]
    for args in refused:
        run = semantic("features", str(MODEL), "--entity", "customer", *args, *warehouse)
        assert run.returncode == 2 and "Traceback" not in run.stderr, run.stderr


def post(service: Service, path: str, body: bytes, content_type: str) -> httpx.Response:
    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=create_app(service))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return await client.post(path, content=body, headers={"content-type": content_type})

    return anyio.run(send)


def encoded(table: pa.Table, fmt: str) -> tuple[bytes, str]:
    sink = io.BytesIO()
    if fmt == "arrow":
        with pa.ipc.new_stream(sink, table.schema) as writer:
            writer.write_table(table)
        return sink.getvalue(), "application/vnd.apache.arrow.stream"
    if fmt == "parquet":
        pq.write_table(table, sink)
        return sink.getvalue(), "application/vnd.apache.parquet"
    pa_csv.write_csv(table, sink)
    return sink.getvalue(), "text/csv"


@pytest.mark.parametrize("fmt", ["arrow", "parquet", "csv"])
def test_http_training_set(service: Service, fmt: str) -> None:
    spine = a_spine(300)
    body, content_type = encoded(spine, fmt)
    response = post(service, "/features/customer/training?feature=orders_last_30d&feature=orders_7d&feature=region",
                    body, content_type)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/vnd.apache.arrow.stream"
    got = pa.ipc.open_stream(response.content).read_all()
    expected = service.training_set("customer", spine, ["orders_last_30d", "orders_7d", "region"])
    assert got.to_pylist() == expected.to_pylist()
    assert got.schema.field("orders_last_30d").type == pa.int64()


@pytest.mark.parametrize(("path", "body", "content_type", "status", "code"), [
    ("/features/customer/training", b"customer_id,event_timestamp\n1,2024-01-01\n", "text/plain", 400, "BAD_QUERY"),
    ("/features/customer/training", b"not parquet", "application/vnd.apache.parquet", 400, "BAD_QUERY"),
    ("/features/customer/training", b"not arrow", "application/vnd.apache.arrow.stream", 400, "BAD_QUERY"),
    ("/features/customer/training", b"customer_id,event_timestamp\nx,2024-01-01\n", "text/csv", 400, "BAD_QUERY"),
    ("/features/custmer/training", b"customer_id,event_timestamp\n1,2024-01-01\n", "text/csv", 422, "UNKNOWN_FIELD"),
    ("/features/customer/training?feature=nope", b"customer_id,event_timestamp\n1,2024-01-01\n", "text/csv", 422,
     "UNKNOWN_FIELD"),
    ("/features/customer/training", b"id,event_timestamp\n1,2024-01-01\n", "text/csv", 422, "BAD_QUERY"),
    ("/features/customer/training?time_column=t", b"customer_id,t\n1,soon\n", "text/csv", 422, "BAD_QUERY"),
])
def test_http_errors_are_json(service: Service, path: str, body: bytes, content_type: str, status: int,
                              code: str) -> None:
    response = post(service, path, body, content_type)
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code and response.json()["error"]["message"]


def test_http_warehouse_down_is_503(model: Model) -> None:
    down = Service(model, SqlWarehouse("postgresql://postgres@127.0.0.1:9/nowhere"))
    response = post(down, "/features/customer/training", b"customer_id,event_timestamp\n1,2024-01-01\n", "text/csv")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "WAREHOUSE_UNAVAILABLE"
