"""A fuzz of GraphQL documents and filter strings under policies: no 500, no traceback, no INTERNAL error, no
other tenant's row, no statement but a SELECT.

Run: python -m bench.fuzz_access [--cases 10000] [--orders 2000] [--seed 1] [--examples]

The app (the example model with its policies switched on, HS256 tokens) is served over an httpx ASGI transport on
a DuckDB file made for the run; readers are analysts of each region, an admin, an intern with no policy, an
anonymous caller and an analyst whose region is an injection attempt. `tests/test_access_fuzz.py` runs the same
cases, about a thousand, in CI. Prints the count of each outcome.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlglot
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st
from sqlglot import exp

from api.app import create_app
from api.auth import Authenticator
from examples.shop.generate import generate
from semantic.execute import SqlWarehouse
from semantic.loader import load
from semantic.service import Service
from tests.tenants import AUDIENCE, SECRET, Client, Counting, bearer, policied_model

REGIONS = ("EU", "NA", "APAC", "LATAM")
INJECTIONS = ("EU' OR '1'='1", "'; DROP TABLE orders; --", "EU\\' OR 1=1 --", "x\"); DELETE FROM customers; --",
              "1 UNION SELECT * FROM customers", "${{ user.region }}", "{{ user.region }}")
READERS: dict[str, dict[str, Any] | None] = {
    **{f"analyst {r}": {"sub": f"a-{r}", "roles": ["analyst"], "region": r} for r in REGIONS},
    "admin": {"sub": "root", "roles": ["admin"]},
    "intern": {"sub": "i", "roles": ["intern"]},
    "analyst without region": {"sub": "n", "roles": ["analyst"]},
    "injecting analyst": {"sub": "x", "roles": ["analyst"], "region": INJECTIONS[0]},
    "anonymous": None,
}

DIMENSIONS = ("customer.region", "customer.segment", "order.status", "order.channel", "order.amount",
              "order.is_large", "order.ordered_at", "order.ordered_at:month", "time:month", "time:day",
              "product.category", "order.customer_id", "customer.customer_id", "page_view.page", "order.gross_amount",
              "customer.regio", "nope", "order.order_id")
METRICS = ("order.revenue", "order.order_count", "order.gross_amount", "order.average_order_value",
           "order.revenue_to_date", "order.revenue_rolling_7d", "order.revenue_last_month", "customer.customer_count",
           "order_item.units", "order_item.item_revenue", "page_view.views", "product.product_count",
           "inventory.on_hand", "order.nope", "revenue")
LITERALS = ("'EU'", "'NA'", "'2024-01-01'", "100", "-1", "0.5", "true", "null", "'completed'", "1e308", "'\\''",
            *(f"'{i.replace(chr(39), chr(39) * 2)}'" for i in INJECTIONS))
OPERATORS = ("=", "<>", ">", "<=", "like", "in", "between", "is null", "is not null")


@st.composite
def filters(draw: st.DrawFn) -> str:
    """Filter strings: mostly well-formed conditions over real, hidden and unknown names, sometimes raw text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.text(max_size=40))
    parts = []
    for _ in range(draw(st.integers(1, 3))):
        name = draw(st.sampled_from(DIMENSIONS + METRICS))
        op = draw(st.sampled_from(OPERATORS))
        if op == "in":
            parts.append(f"{name} in ({', '.join(draw(st.lists(st.sampled_from(LITERALS), min_size=1, max_size=3)))})")
        elif op == "between":
            parts.append(f"{name} between {draw(st.sampled_from(LITERALS))} and {draw(st.sampled_from(LITERALS))}")
        elif op.startswith("is"):
            parts.append(f"{name} {op}")
        else:
            parts.append(f"{name} {op} {draw(st.sampled_from(LITERALS))}")
        if draw(st.integers(0, 6)) == 0:
            parts[-1] = draw(st.sampled_from(("(select 1)", "1; drop table orders", "sleep(10)", "lower(x)",
                                              "order.status = 'a' or 1 = 1", "not " + parts[-1])))
    return f" {draw(st.sampled_from(('and', 'or')))} ".join(parts)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.title() for p in rest)


@st.composite
def documents(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """A GraphQL document and its variables: the generic query, typed fields, compile, features, introspection,
    catalog, or text that is not GraphQL."""
    kind = draw(st.sampled_from(("query", "query", "typed", "compile", "features", "introspection", "catalog",
                                 "garbage")))
    if kind in ("query", "compile"):
        variables: dict[str, Any] = {
            "m": draw(st.lists(st.sampled_from(METRICS), max_size=3, unique=True)),
            "d": draw(st.lists(st.sampled_from(DIMENSIONS), max_size=2, unique=True)),
            "w": draw(st.one_of(st.none(), filters())),
            "o": draw(st.lists(st.sampled_from(("-order.revenue", "customer.region", "order.status desc")),
                               max_size=1)),
            "l": draw(st.one_of(st.none(), st.integers(-2, 50))),
        }
        if kind == "query":
            return ("query($m: [String!], $d: [String!], $w: String, $o: [String!], $l: Int) { query(metrics: $m, "
                    "dimensions: $d, where: $w, orderBy: $o, limit: $l) { columns { name } rows sql cache { hit } } }",
                    variables)
        return ("query($m: [String!], $d: [String!], $w: String, $o: [String!], $l: Int) { compile(metrics: $m, "
                "dimensions: $d, where: $w, orderBy: $o, limit: $l) }", variables)
    if kind == "typed":
        entity = draw(st.sampled_from(("order", "customer", "orderItem", "product", "pageView")))
        fields = draw(st.lists(st.sampled_from(("orderCount", "revenue", "grossAmount", "customerCount", "status",
                                                "region", "units", "views", "customer { region segment }",
                                                "order { status customer { region } }", "category", "nope")),
                               min_size=1, max_size=3, unique=True))
        where = draw(st.sampled_from(("", '(where: {customer: {region: {eq: "NA"}}})',
                                      '(where: {status: {in: ["completed"]}})', '(limit: 3)',
                                      f'(where: {{customer: {{region: {{eq: {json.dumps(INJECTIONS[0])}}}}}}})')))
        return f"{{ {entity}{where} {{ {' '.join(fields)} }} }}", {}
    if kind == "features":
        keys = draw(st.lists(st.integers(-1, 400), min_size=1, max_size=5))
        names = draw(st.lists(st.sampled_from(("region", "segment", "lifetime_revenue", "orders_7d", "nope")),
                              min_size=1, max_size=2, unique=True))
        at = draw(st.sampled_from(("", ', at: "2024-06-01T00:00:00"', ', at: "not a time"')))
        selected = " ".join(_camel(n) for n in names)
        if draw(st.booleans()):
            return f"{{ customerFeatures(keys: {json.dumps(keys)}{at}) {{ customerId {selected} }} }}", {}
        return (f'{{ features(entity: "customer", keys: {json.dumps(keys)}, names: {json.dumps(names)}{at}) '
                f"{{ rows }} }}"), {}
    if kind == "introspection":
        name = draw(st.sampled_from(("Order", "Customer", "OrderWhere", "Query", "CustomerFeatures")))
        return f'{{ __type(name: "{name}") {{ fields {{ name }} inputFields {{ name }} }} }}', {}
    if kind == "catalog":
        return "{ catalog { name dimensions { name } metrics { name } features { name } } }", {}
    return draw(st.text(max_size=60)), {}


@dataclass
class Fuzz:
    """The app under test and the tally of outcomes."""

    client: Client
    warehouse: Counting
    outcomes: Counter[str] = field(default_factory=Counter)
    examples: dict[str, str] = field(default_factory=dict)  # one case per outcome, to reproduce it

    def check(self, reader: str, document: str, variables: dict[str, Any]) -> None:
        claims = READERS[reader]
        before = len(self.warehouse.statements)
        response = self.client.post("/graphql", json={"query": document, "variables": variables},
                                    headers=bearer(claims) if claims is not None else {})
        text = response.text
        assert response.status_code in (200, 400, 401), f"HTTP {response.status_code} for {document!r}: {text}"
        assert "Traceback" not in text and 'File "' not in text, text
        if not response.headers.get("content-type", "").startswith("application/json"):
            assert response.status_code == 400, text  # the GraphQL server's own refusal of a request it cannot read
            self.outcomes["400 (not a GraphQL request)"] += 1
            return
        body = response.json()
        codes = [e.get("extensions", {}).get("code", "?") for e in body.get("errors") or []]
        assert "INTERNAL" not in codes, f"{reader}: {document!r} {variables!r}: {text}"
        for sql in self.warehouse.statements[before:]:
            assert _is_select(sql), sql
        if claims is not None and claims.get("region") in REGIONS:
            others = set(REGIONS) - {claims["region"]}
            leaked = [v for v in _values(body.get("data")) if v in others]
            assert not leaked, f"{reader} saw {leaked} for {document!r} {variables!r}"
        if claims is not None and claims.get("region") == INJECTIONS[0]:
            assert not [v for v in _values(body.get("data")) if v in REGIONS], text
        outcome = f"{response.status_code} {codes[0] if codes else 'ok'}"
        self.outcomes[outcome] += 1
        self.examples.setdefault(outcome, f"{reader}: {document} {json.dumps(variables)} -> "
                                          f"{(body.get('errors') or [{}])[0].get('message', '')}")


def _is_select(sql: str) -> bool:
    tree = sqlglot.parse_one(sql, read="duckdb")
    return isinstance(tree, exp.Query) and not any(
        isinstance(n, exp.Insert | exp.Update | exp.Delete | exp.Drop | exp.Create | exp.Command)
        for n in tree.walk())


def _values(data: Any, key: str = "") -> Iterator[Any]:
    """Every value in a response's data, except the SQL text (which echoes the caller's own literals)."""
    if isinstance(data, dict):
        for k, v in data.items():
            if k not in ("sql", "compile"):
                yield from _values(v, k)
    elif isinstance(data, list):
        for item in data:
            yield from _values(item, key)
    else:
        yield data


def fuzz(folder: Path, orders: int = 2000) -> Fuzz:
    data = generate(folder / "shop.duckdb", orders=orders, seed=13)
    warehouse = Counting(SqlWarehouse(f"duckdb:///{data}", read_only=True))
    service = Service(load(policied_model(folder)), warehouse)
    return Fuzz(Client(create_app(service, auth=Authenticator(jwt_secret=SECRET, audience=AUDIENCE))), warehouse)


def run(target: Fuzz, cases: int, random_seed: int = 0) -> None:
    """`cases` generated cases, reproducible from `random_seed`."""

    @seed(random_seed)
    @settings(max_examples=cases, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(reader=st.sampled_from(sorted(READERS)), case=documents())
    def one(reader: str, case: tuple[str, dict[str, Any]]) -> None:
        target.check(reader, *case)

    one()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--examples", action="store_true", help="print one case of each outcome")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        target = fuzz(Path(folder), args.orders)
        started = time.perf_counter()
        run(target, args.cases, args.seed)
        seconds = time.perf_counter() - started
        target.warehouse.close()
    total = sum(target.outcomes.values())
    print(f"{total:,} cases in {seconds:.0f} s ({len(target.warehouse.statements):,} statements, all SELECT); "
          f"no 500, no traceback, no INTERNAL, no other tenant's row")
    print(f"{'outcome':<40} {'cases':>8}")
    for outcome, count in target.outcomes.most_common():
        print(f"{outcome:<40} {count:>8,}")
    if args.examples:
        for outcome, example in target.examples.items():
            print(f"\n{outcome}: {example}")


if __name__ == "__main__":
    main()
