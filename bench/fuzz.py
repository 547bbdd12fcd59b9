"""A fuzz of the running server: GraphQL documents and variables, filter strings, feature routes and spine bodies,
all over HTTP to a real `semantic serve` process. Every answer must be a clear one: no 500, no INTERNAL error, no
error without a code, no traceback or class path; and the server's memory stays bounded.

Run: python -m bench.fuzz [--cases 12000] [--orders 2000] [--seed 1]

`tests/test_fuzz.py` runs the same cases, about a thousand, in CI. Prints the count of each outcome per kind and
the server's RSS before and after.
"""

from __future__ import annotations

import argparse
import io
import json
import re
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

NAMES = ("order.revenue", "order.order_count", "order.amount", "order.status", "order.ordered_at",
         "order.ordered_at:day", "order.ordered_at:second", "time:month", "time:week", "customer.region",
         "customer.signed_up_at", "order.is_large", "order.buyers", "order.revenue_rolling_7d", "nope.x", "order",
         "x", "customer.region:day", "order.p90_amount", "order_item.units", "page_view.visitors")
FILTER_TOKENS = (*NAMES, "=", "<>", "!=", "<", ">=", "and", "or", "not", "in", "(", ")", ",", "between", "like",
                 "is", "null", "true", "false", "'EU'", "'2024-01-01'", "'0001-01-01'", "'9999-12-31'", "1", "-1",
                 "1e309", "'\\'", "''''", "->", "::", "lower(", "coalesce(", "select", "*", "--", "/*", "$$", "\\",
                 ";", "'%'", "99999999999999999999999", "+", "/", "0", "'not-a-date'", "E'x'", "@", "?", "$1")
GRAPHQL_TOKENS = ("{", "}", "(", ")", "[", "]", ":", "...", "query", "fragment F on Order", "F", "__schema",
                  "__type(name: \"Order\")", "ofType", "types", "fields", "name", "kind", "catalog", "order",
                  "customer", "revenue", "orderCount", "region", "orderedAt", "grain: MONTH", "grain: X", "where:",
                  "limit: 3", "limit: -1", "offset: 1e9", "$v", "$v: Int", "@include(if: true)", "@skip(if: $v)",
                  "a:", "b:", "\"x\"", "1", "null", "mutation", "subscription", "query Q", "customerFeatures",
                  "keys: [1, 2]", "at: \"2024-01-01\"", "compile", "features(entity: \"customer\", keys: [1])",
                  "rows", "__typename", "#", ",")
ENTITIES = ("customer", "order", "nope", "", "customer%00", "..%2f..", "daily_stats")
TYPES = ("text/csv", "application/vnd.apache.parquet", "application/vnd.apache.arrow.stream", "application/json",
         "", "text/plain", "application/vnd.apache.arrow.file")
LEAK = re.compile(r"Traceback|File \"|sqlglot\.|duckdb\.|psycopg\.|_duckdb|\.py\b|Exception:|0x[0-9a-f]{6,}")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
filters = st.one_of(st.lists(st.sampled_from(FILTER_TOKENS), min_size=1, max_size=25).map(" ".join),
                    st.text(max_size=60))
names = st.lists(st.sampled_from(NAMES), max_size=4)
GENERIC = ("query($m: [String!], $d: [String!], $w: String, $o: [String!], $l: Int, $off: Int, $tz: String, "
           "$f: Fill) { query(metrics: $m, dimensions: $d, where: $w, orderBy: $o, limit: $l, offset: $off, "
           "timezone: $tz, fill: $f) { columns { name type } rows sql } }")
COMPILE = ("query($m: [String!], $d: [String!], $w: String, $dialect: Dialect) { compile(metrics: $m, "
           "dimensions: $d, where: $w, dialect: $dialect) }")
TYPED = "query($w: OrderWhere, $l: Int) { order(where: $w, limit: $l) { status revenue customer { region } } }"
FEATURES = ("query($e: String!, $k: JSON!, $n: [String!], $at: DateTime) { features(entity: $e, keys: $k, "
            "names: $n, at: $at) { columns { name } rows } }")
ZONES = ("UTC", "Europe/Paris", "America", "localtime", "posix/Europe/Paris", "x" * 300, "", "+05:00")


def generic_variables() -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries({}, optional={
        "m": names, "d": names, "w": filters, "o": st.lists(st.sampled_from([*NAMES, *(f"-{n}" for n in NAMES)]),
                                                              max_size=2),
        "l": st.integers(min_value=-5, max_value=2**40) | json_values, "off": st.integers(-2, 10),
        "tz": st.sampled_from(ZONES) | st.text(max_size=10), "f": st.sampled_from(["zero", "null", "x"])})


def where_inputs() -> st.SearchStrategy[Any]:
    condition = st.fixed_dictionaries({}, optional={
        "status": st.fixed_dictionaries({}, optional={"eq": st.text(max_size=8), "in": st.lists(st.text(max_size=4),
                                                                                                max_size=3),
                                                      "like": st.text(max_size=6)}),
        "amount": st.fixed_dictionaries({}, optional={"gt": st.floats(), "lte": json_values}),
        "orderedAt": st.fixed_dictionaries({}, optional={"gte": st.text(max_size=12) | st.just("0001-01-01")}),
        "customer": st.fixed_dictionaries({}, optional={"region": st.fixed_dictionaries(
            {}, optional={"eq": st.sampled_from(["EU", "x'--", "\\'"])})})})
    return st.recursive(condition, lambda inner: st.fixed_dictionaries({}, optional={
        "and": st.lists(inner, max_size=3), "or": st.lists(inner, max_size=3), "not": inner}), max_leaves=6)


def documents() -> st.SearchStrategy[tuple[str, dict[str, Any], str | None]]:
    """(document, variables, operationName)."""
    raw = st.lists(st.sampled_from(GRAPHQL_TOKENS), min_size=1, max_size=30).map(" ".join)
    return st.one_of(
        st.tuples(st.just(GENERIC), generic_variables(), st.none()),
        st.tuples(st.just(COMPILE), st.fixed_dictionaries({"m": names, "w": filters}, optional={
            "dialect": st.sampled_from(["duckdb", "postgres", "snowflake", "bigquery", "trino", "spark", "x"])}),
            st.none()),
        st.tuples(st.just(TYPED), st.fixed_dictionaries({}, optional={"w": where_inputs() | json_values,
                                                                      "l": json_values}), st.none()),
        st.tuples(st.just(FEATURES), st.fixed_dictionaries({"e": st.sampled_from(ENTITIES), "k": json_values},
                                                           optional={"n": st.lists(st.text(max_size=12), max_size=3),
                                                                     "at": json_values}), st.none()),
        st.tuples(raw, st.dictionaries(st.sampled_from(["v", "w", "x"]), json_values, max_size=2),
                  st.none() | st.sampled_from(["Q", "A", ""])),
        st.tuples(st.text(max_size=80), st.just({}), st.none()),
    )


def lookups() -> st.SearchStrategy[tuple[str, str, list[tuple[str, str | int | float | bool | None]]]]:
    params = st.lists(st.tuples(st.sampled_from(["key", "at", "feature", "x"]),
                                st.one_of(st.integers(-3, 5000).map(str), st.text(max_size=30),
                                          st.sampled_from(["0001-01-01", "9999-12-31", "2024-01-01T00:00:00+14:00",
                                                           "region", "lifetime_revenue", '{"customer_id": 1}']))),
                      max_size=6)
    return st.tuples(st.sampled_from(["GET", "POST"]), st.sampled_from(ENTITIES), params)


def _arrow(rows: int) -> bytes:
    table = pa.table({"customer_id": pa.array(range(1, rows + 1), pa.int64()),
                      "event_timestamp": pa.array([1_700_000_000_000_000] * rows, pa.timestamp("us"))})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def _parquet(rows: int) -> bytes:
    sink = io.BytesIO()
    pq.write_table(pa.table({"customer_id": list(range(1, rows + 1)), "event_timestamp": ["2024-01-01"] * rows}),
                   sink)
    return sink.getvalue()


def spines() -> st.SearchStrategy[tuple[str, bytes, list[tuple[str, str | int | float | bool | None]]]]:
    csv_rows = st.lists(st.tuples(st.text(max_size=6), st.text(max_size=12) | st.just("2024-01-01")), max_size=5)
    csv = st.tuples(st.sampled_from(["customer_id,event_timestamp", "customer_id", "x,y", "\xff\xfe,a", ""]),
                    csv_rows).map(lambda p: "\n".join([p[0], *(",".join(r) for r in p[1])]).encode("utf-8",
                                                                                                 "surrogatepass"))
    valid = st.sampled_from([_arrow(3), _parquet(3)])
    cut = st.tuples(valid, st.integers(0, 400)).map(lambda p: p[0][: p[1]])
    body = st.one_of(csv, valid, cut, st.binary(max_size=200))
    params = st.lists(st.tuples(st.sampled_from(["feature", "time_column"]),
                                st.sampled_from(["region", "lifetime_revenue", "nope", "event_timestamp", "x"])),
                      max_size=3)
    return st.tuples(st.sampled_from(TYPES), body, params)


class Fuzz:
    """Sends each case and checks the answer; counts outcomes per kind."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(timeout=60)
        self.outcomes: dict[str, Counter[str]] = {}

    def __enter__(self) -> Fuzz:
        return self

    def __exit__(self, *exc: object) -> None:
        self.client.close()  # its pooled sockets, or they are left for the garbage collector to warn about

    def check(self, kind: str, response: httpx.Response, case: object) -> None:
        counter = self.outcomes.setdefault(kind, Counter())
        text = response.text
        assert response.status_code != 500, (case, text)
        assert response.status_code < 500 or response.status_code == 503, (case, response.status_code, text)
        assert not LEAK.search(text if "json" in response.headers.get("content-type", "") else ""), (case, text)
        codes: list[str] = []
        if "json" in response.headers.get("content-type", ""):
            body = response.json()
            errors = body.get("errors") or ([body["error"]] if isinstance(body, dict) and "error" in body else [])
            for error in errors:
                code = (error.get("extensions") or {}).get("code") or error.get("code")
                assert code, (case, error)
                assert code != "INTERNAL", (case, error)
                codes.append(code)
        counter[f"{response.status_code} {codes[0] if codes else 'ok'}"] += 1

    def graphql(self, case: tuple[str, dict[str, Any], str | None]) -> None:
        document, variables, operation = case
        payload: dict[str, Any] = {"query": document, "variables": variables}
        if operation is not None:
            payload["operationName"] = operation
        # Encoded here: httpx refuses NaN and infinities, which Python's json writes as NaN and Infinity (not
        # JSON: the server must refuse them as a bad request)
        response = self.client.post(f"{self.url}/graphql", content=json.dumps(payload).encode(),
                                    headers={"content-type": "application/json"})
        self.check("graphql", response, case)

    def filter(self, text: str) -> None:
        body = {"query": GENERIC, "variables": {"m": ["order.revenue"], "d": ["customer.region"], "w": text}}
        self.check("filter", self.client.post(f"{self.url}/graphql", json=body), text)

    def route(self, case: tuple[str, str, list[tuple[str, str | int | float | bool | None]]]) -> None:
        method, entity, params = case
        path = f"/features/{entity}" + ("/refresh" if method == "POST" else "")
        self.check("route", self.client.request(method, f"{self.url}{path}", params=list(params)), case)

    def spine(self, case: tuple[str, bytes, list[tuple[str, str | int | float | bool | None]]]) -> None:
        content_type, body, params = case
        response = self.client.post(f"{self.url}/features/customer/training", content=body, params=params,
                                    headers={"content-type": content_type})
        self.check("spine", response, (content_type, body[:80], params))

    def run(self, cases: int, seed_value: int = 1) -> dict[str, Counter[str]]:
        """About `cases` cases in all, split over the four kinds (GraphQL documents get the largest share)."""
        shares: dict[str, tuple[Callable[[Any], None], st.SearchStrategy[Any], float]] = {
            "graphql": (self.graphql, documents(), 0.4), "filter": (self.filter, filters, 0.25),
            "route": (self.route, lookups(), 0.2), "spine": (self.spine, spines(), 0.15)}
        for check, strategy, share in shares.values():
            self._run(check, strategy, max(int(cases * share), 1), seed_value)
        return self.outcomes

    @staticmethod
    def _run(check: Callable[[Any], None], strategy: st.SearchStrategy[Any], count: int, seed_value: int) -> None:
        @seed(seed_value)
        @settings(max_examples=count, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(strategy)
        def case(value: Any) -> None:
            check(value)

        case()


def main() -> None:
    from tests.serving import rss_mb, shop_server

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=12_000)
    parser.add_argument("--orders", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    with shop_server(args.orders) as (url, pid):
        before = rss_mb(pid)
        started = time.monotonic()
        with Fuzz(url) as fuzz:
            outcomes = fuzz.run(args.cases, args.seed)
        seconds = time.monotonic() - started
        after = rss_mb(pid)
    total = sum(sum(c.values()) for c in outcomes.values())
    print(f"{total:,} cases in {seconds:.0f} s; server RSS {before:.0f} MB before, {after:.0f} MB after")
    for kind, counter in outcomes.items():
        print(f"  {kind:8} {sum(counter.values()):6,}  " + json.dumps(dict(counter.most_common(8))))
    print("no 500, no INTERNAL, no error without a code, no traceback or class path")


if __name__ == "__main__":
    main()
