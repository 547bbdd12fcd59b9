"""Tenants that try to read each other's rows: the app over HTTP (ASGI) on a real DuckDB file and on PostgreSQL,
with the example model's policies switched on and HS256 tokens. Expected answers are hand-written SQL."""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.ipc
import pytest

from api.app import create_app
from api.auth import Authenticator
from semantic.access import Access
from semantic.execute import SqlWarehouse
from semantic.loader import load
from semantic.service import Service
from tests.tenants import AUDIENCE, SECRET, Client, Counting, analyst, bearer, hand, policied_model

ADMIN = {"sub": "root", "roles": ["admin"]}
REVENUE = """SELECT c.region, SUM(o.amount) FILTER (WHERE o.status <> 'cancelled'), COUNT(*)
             FROM orders o LEFT JOIN customers c ON o.customer_id = c.customer_id GROUP BY c.region"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory, warehouse_url: str) -> Iterator[tuple[Client, Service,
                                                                                          Counting]]:
    model = load(policied_model(tmp_path_factory.mktemp("tenants")))
    warehouse = Counting(SqlWarehouse(warehouse_url))
    service = Service(model, warehouse)
    app = create_app(service, auth=Authenticator(jwt_secret=SECRET, audience=AUDIENCE))
    yield Client(app), service, warehouse
    warehouse.close()


@pytest.fixture(scope="module")
def warehouse(setup: tuple[Client, Service, Counting]) -> Counting:
    return setup[2]


@pytest.fixture(scope="module")
def client(setup: tuple[Client, Service, Counting]) -> Client:
    return setup[0]


def gql(client: Client, query: str, claims: dict[str, Any] | None, **variables: Any) -> dict[str, Any]:
    headers = bearer(claims) if claims is not None else {}
    response = client.post("/graphql", json={"query": query, "variables": variables}, headers=headers)
    assert response.status_code in (200, 401), response.text
    assert "Traceback" not in response.text
    body: dict[str, Any] = response.json()
    return body


def regions(warehouse: Counting) -> dict[str | None, tuple[float, int]]:
    return {region: (float(revenue), count) for region, revenue, count in hand(warehouse, REVENUE)}


QUERY = """query($m: [String!], $d: [String!]) { query(metrics: $m, dimensions: $d) { rows sql cache { hit key } } }"""


def test_each_analyst_gets_their_own_regions_rows(client: Client, warehouse: Counting) -> None:
    expected = regions(warehouse)
    for region in ("EU", "NA"):
        body = gql(client, "{ order { revenue orderCount customer { region } } }", analyst(region))
        rows = body["data"]["order"]
        assert rows == [{"customer": {"region": region}, "revenue": pytest.approx(expected[region][0]),
                         "orderCount": expected[region][1]}]
    admin = gql(client, "{ order { orderCount customer { region } } }", ADMIN)["data"]["order"]
    assert sorted((r["customer"]["region"] or "", r["orderCount"]) for r in admin) == \
        sorted((k or "", v[1]) for k, v in expected.items())


def test_result_cache_is_shared_within_a_region_and_never_across(client: Client, warehouse: Counting) -> None:
    variables = {"m": ["order.order_count"], "d": ["order.status"]}
    eu = gql(client, QUERY, analyst("EU", "ana"), **variables)["data"]["query"]
    na = gql(client, QUERY, analyst("NA", "ned"), **variables)["data"]["query"]
    assert na["cache"]["hit"] is False and na["cache"]["key"] != eu["cache"]["key"]
    expected = hand(warehouse, """SELECT o.status, COUNT(*) FROM orders o JOIN customers c
                                    ON o.customer_id = c.customer_id WHERE c.region = 'NA' GROUP BY 1""")
    assert sorted(map(tuple, na["rows"])) == sorted(expected)
    colleague = gql(client, QUERY, analyst("EU", "eve"), **variables)["data"]["query"]
    assert colleague["cache"] == {"hit": True, "key": eu["cache"]["key"]} and colleague["rows"] == eu["rows"]
    # The same query by the admin: all rows, its own entry.
    admin = gql(client, QUERY, ADMIN, **variables)["data"]["query"]
    assert admin["cache"]["hit"] is False and sum(r[1] for r in admin["rows"]) > sum(r[1] for r in eu["rows"])


def test_plan_cache_and_compile_hold_each_readers_rows(client: Client) -> None:
    document = '{ compile(metrics: ["order_item.units"], dimensions: ["product.category"]) }'
    eu = gql(client, document, analyst("EU"))["data"]["compile"]
    na = gql(client, document, analyst("NA"))["data"]["compile"]
    assert "'EU'" in eu and "'NA'" not in eu and "'NA'" in na and "'EU'" not in na
    assert gql(client, document, analyst("EU", "eve"))["data"]["compile"] == eu
    assert "region" not in gql(client, document, ADMIN)["data"]["compile"]


def test_item_rows_follow_their_orders_region(client: Client, warehouse: Counting) -> None:
    body = gql(client, QUERY, analyst("APAC"), m=["order_item.units"], d=["product.category"])
    expected = hand(warehouse, """SELECT p.category, SUM(i.quantity) FROM order_items i
        JOIN orders o ON i.order_id = o.order_id JOIN customers c ON o.customer_id = c.customer_id
        JOIN products p ON i.product_id = p.product_id WHERE c.region = 'APAC' GROUP BY 1""")
    assert sorted(map(tuple, body["data"]["query"]["rows"])) == sorted(expected)


def test_hidden_members_do_not_exist_for_analysts(client: Client) -> None:
    fields = '{ __type(name: "Order") { fields { name } } }'
    analyst_fields = {f["name"] for f in gql(client, fields, analyst("EU"))["data"]["__type"]["fields"]}
    admin_fields = {f["name"] for f in gql(client, fields, ADMIN)["data"]["__type"]["fields"]}
    assert "grossAmount" in admin_fields and "grossAmount" not in analyst_fields
    assert analyst_fields == admin_fields - {"grossAmount"}
    catalog = '{ catalog { name metrics { name } } }'
    metrics = {e["name"]: {m["name"] for m in e["metrics"]} for e in gql(client, catalog, analyst("EU"))["data"]
               ["catalog"]}
    assert "gross_amount" not in metrics["order"] and "revenue" in metrics["order"]
    typed = gql(client, "{ order { grossAmount } }", analyst("EU"))
    assert typed["errors"][0]["extensions"]["code"] == "UNKNOWN_FIELD"
    ordered = gql(client, "{ order(orderBy: [{grossAmount: DESC}]) { orderCount } }", analyst("EU"))
    assert ordered["errors"][0]["extensions"]["code"] == "UNKNOWN_FIELD"
    assert gql(client, "{ order(orderBy: [{grossAmount: DESC}]) { grossAmount } }", ADMIN)["data"]["order"]
    generic = gql(client, QUERY, analyst("EU"), m=["order.gross_amoun"], d=[])
    error = generic["errors"][0]
    assert error["extensions"]["code"] == "UNKNOWN_FIELD" and "gross_amount" not in error["message"]
    assert gql(client, QUERY, ADMIN, m=["order.gross_amount"], d=[])["data"]["query"]["rows"]


def test_other_roles_are_forbidden_and_nothing_runs(setup: tuple[Client, Service, Counting]) -> None:
    client, _, warehouse = setup
    before = len(warehouse.statements)
    body = gql(client, "{ order { orderCount } }", {"sub": "x", "roles": ["intern"]})
    assert body["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    missing = gql(client, "{ order { orderCount } }", {"sub": "y", "roles": ["analyst"]})  # no region claim
    assert missing["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert "user.region" in missing["errors"][0]["message"]
    products = gql(client, "{ product { productCount } }", {"sub": "x", "roles": ["intern"]})
    assert products["data"]["product"][0]["productCount"] > 0  # an entity without policies stays readable
    assert len(warehouse.statements) == before + 1


def test_an_injection_attempt_is_a_plain_value(client: Client) -> None:
    body = gql(client, QUERY, analyst("EU' OR '1'='1"), m=["order.order_count"], d=[])
    assert body["data"]["query"]["rows"] == [[0]]
    assert "'EU'' OR ''1''=''1'" in body["data"]["query"]["sql"]


def test_feature_lookups_hold_the_policies(client: Client, warehouse: Counting) -> None:
    (eu_id,), (na_id,) = hand(warehouse, "SELECT min(customer_id) FROM customers WHERE region = 'EU' "
                                           "UNION ALL SELECT min(customer_id) FROM customers WHERE region = 'NA'")
    document = f'{{ customerFeatures(keys: [{eu_id}, {na_id}], at: "2024-06-01T00:00:00") ' \
               f'{{ customerId lifetimeRevenue region }} }}'
    eu = gql(client, document, analyst("EU"))["data"]["customerFeatures"]
    admin = gql(client, document, ADMIN)["data"]["customerFeatures"]
    assert eu[0] == admin[0] and eu[0]["region"] == "EU"
    assert eu[1] == {"customerId": na_id, "lifetimeRevenue": None, "region": None}
    assert admin[1]["region"] == "NA"
    latest = client.get(f"/features/customer?key={eu_id}&key={na_id}&feature=region",
                        headers=bearer(analyst("EU")))
    assert latest.status_code == 200 and [r[1] for r in latest.json()["rows"]] == ["EU", None]


def test_snapshots_are_shared_by_equivalent_readers_and_bounded(setup: tuple[Client, Service, Counting],
                                                                warehouse: Counting) -> None:
    client, service, _ = setup
    route = "/features/customer?key=1&feature=region"
    online = client.app.state.online  # type: ignore[attr-defined]
    before = len(online)
    for sub in ("a1", "a2", "a3"):
        assert client.get(route, headers=bearer(analyst("LATAM", sub))).status_code == 200
    assert len(online) == before + 1  # three analysts of one region: one snapshot
    refreshed = client.post("/features/customer/refresh?feature=region", headers=bearer(analyst("LATAM", "a4")))
    (count,) = hand(warehouse, "SELECT count(*) FROM customers WHERE region = 'LATAM'")[0]
    assert refreshed.json()["keys"] == count and len(online) == before + 1
    views = len(service.views)
    for sub in ("b1", "b2"):
        client.get(route, headers=bearer(analyst("LATAM", sub)))
    assert len(service.views) == views  # the same view: no new state per principal
    for index in range(online.max_snapshots + 5):  # many distinct views: the snapshots stay bounded
        client.get(route, headers=bearer(analyst(f"R{index}", f"c{index}")))
    assert len(online) <= online.max_snapshots


def test_training_sets_hold_the_policies(client: Client, warehouse: Counting) -> None:
    ids = [r[0] for r in hand(warehouse, "SELECT customer_id FROM customers ORDER BY customer_id LIMIT 40")]
    spine = pa.table({"customer_id": pa.array(ids, pa.int64()),
                      "event_timestamp": pa.array([pa.scalar(1_717_200_000_000_000, pa.timestamp("us"))] * 40)})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, spine.schema) as writer:
        writer.write_table(spine)
    response = client.post("/features/customer/training?feature=region&feature=lifetime_revenue",
                           content=sink.getvalue(), headers={"content-type": "application/vnd.apache.arrow.stream",
                                                             **bearer(analyst("EU"))})
    assert response.status_code == 200, response.text
    table = pa.ipc.open_stream(response.content).read_all()
    region_of = dict(hand(warehouse, "SELECT customer_id, region FROM customers"))
    for key, region, revenue in zip(table.column("customer_id").to_pylist(), table.column("region").to_pylist(),
                                    table.column("lifetime_revenue").to_pylist(), strict=True):
        if region_of[key] != "EU":
            assert region is None and revenue is None
        else:
            assert region == "EU"


def test_feature_routes_refuse_a_forbidden_reader(setup: tuple[Client, Service, Counting]) -> None:
    client, _, warehouse = setup
    before = len(warehouse.statements)
    intern = bearer({"sub": "i", "roles": ["intern"]})
    for response in (client.get("/features/customer?key=1", headers=intern),
                     client.post("/features/customer/refresh", headers=intern)):
        assert response.status_code == 403 and response.json()["error"]["code"] == "FORBIDDEN"
    assert len(warehouse.statements) == before


@pytest.mark.parametrize("route", ["/features/customer?key=1", "/features/customer/refresh",
                                   "/features/customer/training"])
def test_feature_routes_need_credentials(setup: tuple[Client, Service, Counting], route: str) -> None:
    client, _, warehouse = setup
    before = len(warehouse.statements)
    response = client.request("GET" if "?" in route else "POST", route)
    assert response.status_code == 401 and response.json()["error"]["code"] == "UNAUTHENTICATED"
    assert len(warehouse.statements) == before


def test_idle_snapshots_are_dropped_not_refreshed(setup: tuple[Client, Service, Counting]) -> None:
    from semantic.online import OnlineStore

    _, service, _ = setup
    now = [1000.0]
    online = OnlineStore(service, max_age=5, idle=30, clock=lambda: now[0])
    eu, na = (Access.from_claims(analyst(r)) for r in ("EU", "NA"))
    online.snapshot("customer", ("region",), eu)
    online.snapshot("customer", ("region",), Access.from_claims(analyst("EU", "eve")))  # the same view: shared
    online.snapshot("customer", ("region",), na)
    assert len(online) == 2 and len(online.slots()) == 2
    now[0] += 20
    online.snapshot("customer", ("region",), na)  # read again: NA stays in use
    now[0] += 20
    assert [access.attribute("region") for _, _, access in online.slots()] == ["NA"] and len(online) == 1
