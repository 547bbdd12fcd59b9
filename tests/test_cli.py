"""The `semantic` command, run as a user would: exit statuses, output formats, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest

from examples.shop.generate import generate

ROOT = Path(__file__).resolve().parents[1]
MODEL = str(ROOT / "examples" / "shop")


@pytest.fixture(scope="module")
def shop_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("cli") / "shop.duckdb", orders=2000)


def semantic(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_query_json_equals_hand_written_sql(shop_file: Path) -> None:
    run = semantic("query", MODEL, "--metric", "order.revenue", "--by", "customer.region", "--format", "json",
                   "--warehouse", f"duckdb:///{shop_file}")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert out["columns"] == [{"name": "customer.region", "type": "string"},
                              {"name": "order.revenue", "type": "number"}]
    with duckdb.connect(str(shop_file), read_only=True) as con:
        expected = dict(con.sql("""select c.region, sum(o.amount) filter (where o.status <> 'cancelled')
                                   from orders o left join customers c using (customer_id) group by 1""").fetchall())
    got = {region: revenue for region, revenue in out["rows"]}
    expected = {k: float(v) for k, v in expected.items()}
    assert got.keys() == expected.keys()
    assert all(got[k] == pytest.approx(v, rel=1e-9) for k, v in expected.items())


def test_query_csv_and_table(shop_file: Path) -> None:
    common = ("--metric", "order.order_count", "--by", "order.status", "--order-by", "order.status",
              "--warehouse", f"duckdb:///{shop_file}")
    csv = semantic("query", MODEL, *common, "--format", "csv")
    assert csv.returncode == 0, csv.stderr
    lines = csv.stdout.strip().splitlines()
    assert lines[0] == "order.status,order.order_count"
    assert [line.split(",")[0] for line in lines[1:]] == ["cancelled", "completed", "returned", "shipped"]
    table = semantic("query", MODEL, *common)
    assert table.returncode == 0 and "(4 rows)" in table.stdout


def test_bad_query_exits_2_with_a_hint(shop_file: Path) -> None:
    run = semantic("query", MODEL, "--metric", "order.revnue", "--warehouse", f"duckdb:///{shop_file}")
    assert run.returncode == 2
    assert "Did you mean 'order.revenue'" in run.stderr and "Traceback" not in run.stderr


def test_fanout_exits_2(shop_file: Path) -> None:
    run = semantic("query", MODEL, "--metric", "customer.customer_count", "--by", "order.status",
                   "--warehouse", f"duckdb:///{shop_file}")
    assert run.returncode == 2 and "FANOUT" in run.stderr


def test_warehouse_failure_exits_1(tmp_path: Path) -> None:
    empty = tmp_path / "empty.duckdb"
    duckdb.connect(str(empty)).close()
    run = semantic("query", MODEL, "--metric", "order.revenue", "--warehouse", f"duckdb:///{empty}")
    assert run.returncode == 1, run.stderr
    assert "orders" in run.stderr and "Traceback" not in run.stderr


def test_compile_prints_dialect_sql() -> None:
    run = semantic("compile", MODEL, "--metric", "order.revenue", "--by", "order.ordered_at:week",
                   "--dialect", "bigquery")
    assert run.returncode == 0, run.stderr
    assert "`order`" in run.stdout and "Aggregate order" in run.stdout


def test_validate_reports_every_problem_with_file_and_line(tmp_path: Path) -> None:
    model = tmp_path / "broken.yaml"
    model.write_text("""version: 1
name: broken
entities:
  - name: order
    table: orders
    key: order_id
    relationships:
      - {entity: custmer, key: customer_id}
    metrics:
      - {name: revenue, agg: summ, expr: amount}
      - {name: aov, expr: "revenue / nullif(order_cnt, 0)"}
""")
    run = semantic("validate", str(model))
    assert run.returncode == 2
    lines = [line.strip() for line in run.stderr.splitlines()]
    assert "3 problems" in lines[0]
    assert any(line.startswith(f"{model}:8:") and "Did you mean 'customer'" not in line and "custmer" in line
               for line in lines)
    assert any(line.startswith(f"{model}:10:") and "Did you mean 'sum'" in line for line in lines)
    assert any(line.startswith(f"{model}:11:") and "order_cnt" in line for line in lines)
    assert "Traceback" not in run.stderr


def test_validate_example_and_schema() -> None:
    assert semantic("validate", MODEL).returncode == 0
    schema = semantic("schema", MODEL)
    assert schema.returncode == 0
    assert schema.stdout.strip() == (ROOT / "schema.graphql").read_text().strip()


def test_features_command(shop_file: Path) -> None:
    run = semantic("features", MODEL, "--entity", "customer", "--key", "1", "--key", "2", "--at", "2024-06-01",
                   "--feature", "orders_last_30d", "--feature", "region", "--format", "json",
                   "--warehouse", f"duckdb:///{shop_file}")
    assert run.returncode == 0, run.stderr
    out = json.loads(run.stdout)
    assert [c["name"] for c in out["columns"]] == ["customer_id", "orders_last_30d", "region"]
    assert [row[0] for row in out["rows"]] == [1, 2]


def test_features_command_refuses_a_key_of_the_wrong_type(shop_file: Path) -> None:
    run = semantic("features", MODEL, "--entity", "customer", "--key", "one", "--warehouse", f"duckdb:///{shop_file}")
    assert run.returncode == 2 and "integers" in run.stderr and "Traceback" not in run.stderr
