"""dbt semantic manifests read as a model: a hand-written manifest (tests/dbt) against hand-written SQL on the
example data, and what cannot be mapped refused with file:line."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from semantic.errors import ModelError
from semantic.execute import SqlWarehouse
from semantic.interop import load_any
from semantic.query import SemanticQuery
from semantic.service import Service

ROOT = Path(__file__).resolve().parents[1]
MANIFEST = Path(__file__).parent / "dbt" / "semantic_manifest.json"


def test_entities_relationships_and_metric_kinds() -> None:
    model = load_any(MANIFEST).model
    orders = model.entities["orders"]
    assert orders.table == "orders" and orders.key == ("order_id",) and orders.time == "ordered_at"
    assert [(r.entity, r.key) for r in orders.relationships] == [("customers", ("customer_id",))]
    kinds = {name: m.kind for name, m in orders.metrics.items()}
    assert kinds == {"order_total": "simple", "order_count": "simple", "buyers": "simple", "large_orders": "simple",
                     "revenue": "simple", "large_share": "derived", "revenue_to_date": "cumulative",
                     "revenue_7d": "cumulative", "revenue_per_order": "derived"}
    assert orders.metrics["revenue_7d"].window is not None and str(orders.metrics["revenue_7d"].window) == "7 days"


def test_answers_equal_hand_written_sql(duckdb_path: Path) -> None:
    model = load_any(MANIFEST).model
    warehouse = SqlWarehouse(f"duckdb:///{duckdb_path}", read_only=True)
    try:
        result = Service(model, warehouse).query(SemanticQuery(
            ("orders.revenue", "orders.order_count", "orders.large_share", "orders.revenue_per_order",
             "orders.buyers", "customers.customers"), ("customers.region",)))
    finally:
        warehouse.close()
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        want = con.execute("""
            WITH o AS (SELECT c.region, SUM(o.amount) AS revenue, COUNT(*) AS n,
                              SUM(CASE WHEN o.amount > 100 THEN 1 ELSE 0 END) / NULLIF(COUNT(*), 0) AS share,
                              SUM(o.amount) / COUNT(*) AS per_order, COUNT(DISTINCT o.customer_id) AS buyers
                       FROM orders o LEFT JOIN customers c USING (customer_id) GROUP BY 1),
                 c AS (SELECT region, COUNT(customer_id) AS customers FROM customers GROUP BY 1)
            SELECT COALESCE(o.region, c.region), revenue, n, share, per_order, buyers, customers
            FROM o FULL JOIN c ON o.region IS NOT DISTINCT FROM c.region""").fetchall()
    key = str
    got = sorted(result.rows, key=key)
    for row, other in zip(got, sorted(want, key=key), strict=True):
        for a, b in zip(row, other, strict=True):
            assert (a is None and b is None) or a == b or math.isclose(float(a), float(b), rel_tol=1e-9), (row, other)
    assert len(got) == len(want)


def test_what_cannot_be_mapped_is_reported_with_file_and_line(tmp_path: Path) -> None:
    manifest = json.loads(MANIFEST.read_text())
    manifest["metrics"] += [
        {"name": "signup_to_order", "type": "conversion",
         "type_params": {"conversion_type_params": {"base_measure": "customers", "conversion_measure": "buyers"}}},
        {"name": "eu_revenue", "type": "simple", "type_params": {"measure": "order_total"},
         "filter": "{{ Dimension('customer__region') }} = 'EU'"}]
    path = tmp_path / "semantic_manifest.json"
    path.write_text(json.dumps(manifest, indent=2))
    with pytest.raises(ModelError) as caught:
        load_any(path)
    text = path.read_text().splitlines()
    messages = {i.message.split(":")[0]: i for i in caught.value.issues}
    conversion, filtered = messages["metric 'signup_to_order'"], messages["metric 'eu_revenue'"]
    assert "conversion metrics" in conversion.message and conversion.file == str(path)
    assert '"signup_to_order"' in text[conversion.line - 1] or '"signup_to_order"' in text[conversion.line]
    assert "metric filters" in filtered.message and filtered.line > conversion.line
    done = subprocess.run([sys.executable, "-m", "api.cli.main", "compile", str(path), "--metric", "orders.revenue"],
                          cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and f"{path}:{conversion.line}" in done.stderr
