"""Join kinds: LEFT by default so no fact row is lost; INNER only where no row can be lost."""

from __future__ import annotations

from pathlib import Path

from semantic.loader import load
from semantic.plan.planner import plan
from semantic.query import SemanticQuery

MODEL = """
version: 1
name: chain
entities:
  - name: item
    table: items
    key: item_id
    relationships: [{entity: order, key: order_id, required: true}]
    metrics: [{name: units, agg: sum, expr: quantity}]
  - name: order
    table: orders
    key: order_id
    relationships: [{entity: customer, key: customer_id}]
  - name: customer
    table: customers
    key: customer_id
    relationships: [{entity: country, key: country_code, required: true}]
    dimensions: [{name: segment}]
  - name: country
    table: countries
    key: country_code
    dimensions: [{name: continent}]
"""


def joins(tmp_path: Path, dimension: str) -> dict[str, str]:
    path = tmp_path / "chain.yaml"
    path.write_text(MODEL)
    (aggregate,) = plan(load(path), SemanticQuery(("item.units",), (dimension,))).aggregates
    return {join.alias: join.kind for join in aggregate.joins}


def test_required_hops_from_the_base_are_inner(tmp_path: Path) -> None:
    assert joins(tmp_path, "customer.segment") == {"order": "inner", "customer": "left"}


def test_a_required_hop_after_a_left_one_stays_left(tmp_path: Path) -> None:
    """An order whose customer is missing has a NULL country code: an inner join would drop its items."""
    assert joins(tmp_path, "country.continent") == {"order": "inner", "customer": "left", "country": "left"}
