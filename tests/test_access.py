"""Policy semantics on a real DuckDB file, answers from hand-written SQL: unions of rows, hidden members (and what is
built on them), joined dimension rows, derived and cumulative metrics, list attributes, views shared by equivalent
readers, load-time checks with file:line, and the CLI's `--as`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from examples.shop.generate import generate
from semantic.access import Access
from semantic.errors import ForbiddenError, ModelError, UnknownFieldError
from semantic.execute import SqlWarehouse
from semantic.loader import load
from semantic.query import SemanticQuery
from semantic.service import Service
from tests.tenants import ROOT, hand, policied_model

EXAMPLE = ROOT / "examples" / "shop" / "model.yaml"


def with_policies(folder: Path, policies: dict[str, list[dict[str, Any]]], name: str = "model.yaml") -> Path:
    """The example model with these policies (entity -> policies) and no others."""
    document = yaml.safe_load(EXAMPLE.read_text())
    for entity in document["entities"]:
        entity.pop("policies", None)
        if entity["name"] in policies:
            entity["policies"] = policies[entity["name"]]
    path = folder / name
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("access") / "shop.duckdb", orders=600, seed=5)


@pytest.fixture(scope="module")
def warehouse(data: Path) -> Iterator[SqlWarehouse]:
    found = SqlWarehouse(f"duckdb:///{data}", read_only=True)
    yield found
    found.close()


def service_for(tmp_path: Path, warehouse: SqlWarehouse, policies: dict[str, list[dict[str, Any]]]) -> Service:
    return Service(load(with_policies(tmp_path, policies)), warehouse)


def who(*roles: str, **attributes: Any) -> Access:
    return Access.from_claims({"sub": "someone", "roles": list(roles), **attributes})


def rows(service: Service, access: Access, metrics: tuple[str, ...], dims: tuple[str, ...] = ()) -> list[Any]:
    return sorted(service.query(SemanticQuery(metrics, dims), access).rows, key=repr)


def test_matching_policies_unite_their_rows(tmp_path: Path, warehouse: SqlWarehouse) -> None:
    service = service_for(tmp_path, warehouse, {"order": [
        {"roles": ["analyst"], "rows": "customer.region = {{ user.region }}"},
        {"roles": ["auditor"], "rows": "order.status = 'cancelled'"}]})
    both = rows(service, who("analyst", "auditor", region="EU"), ("order.order_count",))
    (expected,) = hand(warehouse, """SELECT count(*) FROM orders o LEFT JOIN customers c ON o.customer_id =
                                      c.customer_id WHERE c.region = 'EU' OR o.status = 'cancelled'""")
    assert both == [expected]
    (auditor,) = hand(warehouse, "SELECT count(*) FROM orders WHERE status = 'cancelled'")
    assert rows(service, who("auditor"), ("order.order_count",)) == [auditor]


def test_a_member_is_hidden_only_if_every_matching_policy_hides_it(tmp_path: Path, warehouse: SqlWarehouse
                                                                   ) -> None:
    service = service_for(tmp_path, warehouse, {"order": [
        {"roles": ["analyst"], "hide": ["gross_amount", "amount"]}, {"roles": ["auditor"], "hide": ["amount"]}]})
    analyst = service.view(who("analyst")).model.entities["order"]
    both = service.view(who("analyst", "auditor")).model.entities["order"]
    assert "gross_amount" not in analyst.metrics and "gross_amount" in both.metrics
    assert "amount" not in analyst.dimensions and "amount" not in both.dimensions
    with pytest.raises(UnknownFieldError) as error:
        service.query(SemanticQuery(("order.gross_amount",)), who("analyst"))
    assert "gross_amount" not in str(error.value).split("'order.gross_amount'")[1]  # not offered as a hint
    (total,) = hand(warehouse, "SELECT sum(amount) FROM orders")
    assert rows(service, who("analyst", "auditor"), ("order.gross_amount",)) == [pytest.approx(total)]


def test_what_is_built_on_a_hidden_member_is_hidden_too(tmp_path: Path, warehouse: SqlWarehouse) -> None:
    service = service_for(tmp_path, warehouse, {"order": [{"roles": ["analyst"], "hide": ["revenue"]}]})
    view = service.view(who("analyst")).model
    order, customer = view.entities["order"], view.entities["customer"]
    for gone in ("revenue", "average_order_value", "revenue_rolling_7d", "revenue_growth_yoy", "revenue_last_year",
                 "revenue_per_view"):
        assert gone not in order.metrics
    assert "order_count" in order.metrics and "gross_amount" in order.metrics
    assert "lifetime_revenue" not in customer.features and "revenue_per_order_30d" not in customer.features
    assert "orders_last_30d" in customer.features


def test_rows_a_reader_may_not_see_join_as_no_row(tmp_path: Path, warehouse: SqlWarehouse) -> None:
    service = service_for(tmp_path, warehouse, {"customer": [
        {"roles": ["analyst"], "rows": "customer.region = {{ user.region }}"}]})
    got = rows(service, who("analyst", region="EU"), ("order.order_count",), ("customer.segment",))
    expected = hand(warehouse, """SELECT CASE WHEN c.region = 'EU' THEN c.segment END, count(*) FROM orders o
                                   LEFT JOIN customers c ON o.customer_id = c.customer_id GROUP BY 1""")
    assert got == sorted(expected, key=repr)  # every order counts (order has no policy); others' customers: NULL


def test_cumulative_derived_and_filled_metrics_hold_the_rows(tmp_path: Path, warehouse: SqlWarehouse) -> None:
    service = service_for(tmp_path, warehouse, {"order": [
        {"roles": ["analyst"], "rows": "customer.region = {{ user.region }}"}]})
    ana = who("analyst", region="APAC")
    result = service.query(SemanticQuery(("order.revenue_to_date", "order.average_order_value"), ("time:year",)),
                           ana).rows
    filled = service.query(SemanticQuery(("order.order_count",), ("time:day",), fill="zero"), ana).rows
    (monthly,) = hand(warehouse, """SELECT count(*) FROM orders o JOIN customers c ON o.customer_id = c.customer_id
                                    WHERE c.region = 'APAC'""")[0]
    assert sum(r[1] for r in filled) == monthly and any(r[1] == 0 for r in filled)
    expected = hand(warehouse, """SELECT sum(o.amount) FILTER (WHERE o.status <> 'cancelled'),
                                         sum(o.amount) FILTER (WHERE o.status <> 'cancelled') / count(*)
                                  FROM orders o JOIN customers c ON o.customer_id = c.customer_id
                                  WHERE c.region = 'APAC' AND year(o.ordered_at) = (
                                    SELECT max(year(ordered_at)) FROM orders o2 JOIN customers c2
                                    ON o2.customer_id = c2.customer_id WHERE c2.region = 'APAC')""")
    (last_year_aov,) = [r[2] for r in result if r[0] == max(r[0] for r in result)]
    assert last_year_aov == pytest.approx(float(expected[0][1]))
    (total,) = hand(warehouse, """SELECT sum(o.amount) FILTER (WHERE o.status <> 'cancelled') FROM orders o
                                  JOIN customers c ON o.customer_id = c.customer_id WHERE c.region = 'APAC'""")[0]
    assert max(r[1] for r in result) == pytest.approx(float(total))


def test_list_attributes_fill_an_in_and_refuse_one_value(tmp_path: Path, warehouse: SqlWarehouse) -> None:
    service = service_for(tmp_path, warehouse, {"customer": [
        {"roles": ["analyst"], "rows": "customer.region in ({{ user.regions }})"},
        {"roles": ["manager"], "rows": "customer.region = {{ user.regions }}"}]})
    got = rows(service, who("analyst", regions=["EU", "NA"]), ("customer.customer_count",), ("customer.region",))
    expected = hand(warehouse, "SELECT region, count(*) FROM customers WHERE region IN ('EU', 'NA') GROUP BY 1")
    assert got == sorted(expected, key=repr)
    assert [r[0] for r in rows(service, who("analyst", regions="EU"), ("customer.customer_count",),
                               ("customer.region",))] == ["EU"]
    with pytest.raises(ForbiddenError):
        service.query(SemanticQuery(("customer.customer_count",)), who("manager", regions=["EU", "NA"]))
    with pytest.raises(ForbiddenError):
        service.query(SemanticQuery(("customer.customer_count",)), who("analyst", regions={"a": 1}))


def test_views_are_shared_by_equivalent_readers_only(tmp_path: Path, warehouse: SqlWarehouse) -> None:
    service = Service(load(policied_model(tmp_path)), warehouse)
    eu1, eu2 = who("analyst", region="EU"), Access.from_claims({"sub": "b", "roles": ["analyst", "intern"],
                                                                "region": "EU", "team": "x"})
    assert service.view(eu1).fingerprint == service.view(eu2).fingerprint != ""
    assert service.view(who("analyst", region="NA")).fingerprint != service.view(eu1).fingerprint
    admin = service.view(who("admin")).fingerprint
    assert admin == service.view(Access.from_claims({"sub": "other-admin", "roles": ["admin"]})).fingerprint
    assert admin != service.view(eu1).fingerprint
    assert service.view(who("analyst", region="EU")).shape == service.view(who("analyst", region="NA")).shape
    for index in range(600):  # many principals of a few regions: a few views
        service.view(who("analyst", region=["EU", "NA", "APAC"][index % 3], sub=f"p{index}"))
    assert len(service.views) <= 5


BAD = [
    ({"roles": ["analyst"], "hide": ["nope"]}, "hides 'nope'"),
    ({"roles": ["analyst"], "hide": ["order_id"]}, "cannot hide 'order_id'"),
    ({"roles": ["analyst"], "rows": "customer.region = {{ region }}"}, "unknown placeholder"),
    ({"roles": ["analyst"], "rows": "customer.region = '{{ user.region }}'"}, "do not quote it"),
    ({"roles": ["analyst"], "rows": "customer.region = = {{ user.region }}"}, "cannot parse"),
    ({"roles": ["analyst"], "rows": "customer.regio = {{ user.region }}"}, "regio"),
    ({"roles": ["analyst"], "rows": "page_view.page = 'home'"}, "no entity reaches"),
    ({"roles": ["analyst"], "rows": "order.amount > 'x'"}, "is a number"),
    ({"roles": "analyst"}, "needs `roles`"),
    ({"roles": ["analyst"], "row": "x"}, "unknown key 'row'"),
]


def test_a_policy_filter_is_about_its_own_entity(tmp_path: Path) -> None:
    path = with_policies(tmp_path, {"customer": [{"roles": ["analyst"], "rows": "order.status = 'completed'"}]})
    with pytest.raises(ModelError, match="must be about 'customer'"):
        load(path)


@pytest.mark.parametrize(("policy", "message"), BAD, ids=[m for _, m in BAD])
def test_bad_policies_are_refused_at_load_with_file_and_line(tmp_path: Path, policy: dict[str, Any],
                                                             message: str) -> None:
    path = with_policies(tmp_path, {"order": [policy]})
    with pytest.raises(ModelError) as error:
        load(path)
    (issue,) = [i for i in error.value.issues if message in i.message]
    assert issue.file == str(path) and issue.line > 0
    assert "policies:" in path.read_text().splitlines()[issue.line - 2] or issue.line > 1


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def test_the_cli_is_trusted_unless_as(tmp_path: Path, data: Path, warehouse: SqlWarehouse) -> None:
    model = str(policied_model(tmp_path))
    url = f"duckdb:///{data}"
    eu = json.dumps({"sub": "ana", "roles": ["analyst"], "region": "EU"})
    trusted = cli("query", model, "--metric", "order.order_count", "--by", "customer.region", "--format", "json",
                  "--warehouse", url)
    as_eu = cli("query", model, "--metric", "order.order_count", "--by", "customer.region", "--format", "json",
                "--warehouse", url, "--as", eu)
    assert trusted.returncode == 0 and as_eu.returncode == 0, as_eu.stderr
    assert len(json.loads(trusted.stdout)["rows"]) == 5
    (count,) = hand(warehouse, """SELECT count(*) FROM orders o JOIN customers c ON o.customer_id = c.customer_id
                                  WHERE c.region = 'EU'""")[0]
    assert json.loads(as_eu.stdout)["rows"] == [["EU", count]]
    compiled = cli("compile", model, "--metric", "order.order_count", "--as", eu)
    assert compiled.returncode == 0 and "'EU'" in compiled.stdout
    hidden = cli("compile", model, "--metric", "order.gross_amount", "--as", eu)
    assert hidden.returncode == 2 and "UNKNOWN_FIELD" in hidden.stderr and "Traceback" not in hidden.stderr
    forbidden = cli("query", model, "--metric", "order.order_count", "--warehouse", url, "--as", '{"sub": "x"}')
    assert forbidden.returncode == 2 and "FORBIDDEN" in forbidden.stderr
    features = cli("features", model, "--entity", "customer", "--key", "1", "--key", "2", "--feature", "region",
                   "--at", "2030-01-01", "--format", "json", "--warehouse", url, "--as", eu)
    region_of = dict(hand(warehouse, "SELECT customer_id, region FROM customers WHERE customer_id IN (1, 2)"))
    assert [r[1] for r in json.loads(features.stdout)["rows"]] == \
        [region_of[k] if region_of[k] == "EU" else None for k in (1, 2)]
    bad = cli("query", model, "--metric", "order.order_count", "--as", "not json")
    assert bad.returncode == 2 and "--as" in bad.stderr
