"""Semi-additive (snapshot) metrics: summed across products, but over time the value at the period's last (or
first) count, against hand-written SQL on both warehouses."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest

from semantic.errors import ModelError
from semantic.query import Filter, SemanticQuery
from semantic.service import Service

COUNTS = """SELECT p.category, CAST(DATE_TRUNC('month', i.snapshot_date) AS DATE) AS m, i.snapshot_date AS d, i.on_hand
            FROM inventory_snapshots i JOIN products p ON p.product_id = i.product_id"""


def hand(service: Service, sql: str) -> list[tuple[Any, ...]]:
    return sorted(service.warehouse.run(sql).rows, key=repr)  # type: ignore[union-attr]


def ours(service: Service, metric: str, dims: tuple[str, ...], where: str | None = None) -> list[tuple[Any, ...]]:
    q = SemanticQuery((metric,), dims, Filter.parse(where) if where else None)
    return sorted(service.query(q).rows, key=repr)


@pytest.mark.parametrize(("metric", "edge"), [("inventory.on_hand", "MAX"), ("inventory.opening_stock", "MIN")])
def test_by_category_and_month(service: Service, metric: str, edge: str) -> None:
    expected = hand(service, f"""WITH c AS ({COUNTS}),
        e AS (SELECT category, m, {edge}(d) AS d FROM c GROUP BY 1, 2)
        SELECT c.category, c.m, SUM(c.on_hand) FROM c JOIN e ON c.category = e.category AND c.m = e.m AND c.d = e.d
        GROUP BY 1, 2""")
    assert ours(service, metric, ("product.category", "time:month")) == expected


def test_without_a_time_dimension_takes_the_latest_count(service: Service) -> None:
    expected = hand(service, f"""WITH c AS ({COUNTS}), e AS (SELECT category, MAX(d) AS d FROM c GROUP BY 1)
        SELECT c.category, SUM(c.on_hand) FROM c JOIN e ON c.category = e.category AND c.d = e.d GROUP BY 1""")
    assert ours(service, "inventory.on_hand", ("product.category",)) == expected


def test_a_time_filter_chooses_the_counts_first(service: Service) -> None:
    """Before aggregation: the last count before March 2024 is the answer for all of time up to then."""
    expected = hand(service, f"""WITH c AS ({COUNTS} WHERE i.snapshot_date < DATE '2024-03-01'),
        e AS (SELECT MAX(d) AS d FROM c) SELECT SUM(c.on_hand) FROM c JOIN e ON c.d = e.d""")
    got = ours(service, "inventory.on_hand", (), "time:day < '2024-03-01'")
    assert got == expected


def test_not_summed_over_time(service: Service) -> None:
    """A quarter's stock is its last count, not the sum of its thirteen Mondays."""
    quarter = dict(ours(service, "inventory.on_hand", ("time:quarter",)))
    weekly = dict(ours(service, "inventory.on_hand", ("time:week",)))
    for start, value in quarter.items():
        end = date(start.year + start.month // 10, (start.month + 2) % 12 + 1, 1)
        weeks = sorted(w for w in weekly if start <= w < end)
        assert value == weekly[weeks[-1]] and value < sum(weekly[w] for w in weeks)


def test_snapshots_cannot_accumulate(tmp_path: Any) -> None:
    from semantic.loader import load

    path = tmp_path / "m.yaml"
    path.write_text("""version: 1
entities:
  - name: stock
    table: stock
    key: id
    time: day
    dimensions: [{name: day, type: time}]
    metrics:
      - {name: level, agg: sum, expr: n, semi_additive: last}
      - {name: level_to_date, metric: level, window: unbounded}
""")
    with pytest.raises(ModelError, match="snapshot"):
        load(path)
