"""OSI models and queries: the compliance suite's kinds of case, on our own data and our own hand-written SQL.

The data differs from the suite's fixtures on purpose (several orphans, a NULL foreign key, a NULL region, a
customer with returns and no orders, ties in the window order), so an answer shaped to those fixtures would fail.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import pytest
import yaml

from semantic.interop import load_any
from semantic.interop.osi_model import OsiError, read
from semantic.interop.osi_query import compile_query, read_query
from semantic.service import Service

ROOT = Path(__file__).resolve().parents[1]

DATA = """
CREATE TABLE customers (id INTEGER, region VARCHAR, segment VARCHAR);
INSERT INTO customers VALUES (1, 'north', 'a'), (2, 'south', 'b'), (3, NULL, 'a'), (4, 'south', 'c'),
                             (5, 'west', 'b');
CREATE TABLE orders (id INTEGER, customer_id INTEGER, amount DECIMAL(10, 2), status VARCHAR);
INSERT INTO orders VALUES (1, 1, 10.50, 'done'), (2, 1, 4.25, 'open'), (3, 2, 99.00, 'done'),
                          (4, 3, 7.00, 'done'), (5, 42, 3.00, 'done'), (6, NULL, 8.00, 'open'),
                          (7, 4, 4.25, 'done'), (8, 4, 4.25, 'done'), (9, 43, 1.00, 'void');
CREATE TABLE returns (id INTEGER, customer_id INTEGER, amount DECIMAL(10, 2));
INSERT INTO returns VALUES (1, 5, 2.00), (2, 1, 1.50), (3, 77, 9.00);
CREATE TABLE lines (id INTEGER, order_id INTEGER, qty INTEGER, price DOUBLE);
INSERT INTO lines VALUES (1, 1, 2, 3.5), (2, 1, 1, 10.0), (3, 3, 5, 1.25), (4, 9, 3, 2.0);
CREATE TABLE depots (depot_id INTEGER, stock INTEGER);
INSERT INTO depots VALUES (1, 10);
"""

MODEL: dict[str, Any] = {
    "name": "shop_osi",
    "datasets": [
        {"name": "customers", "source": "customers", "primary_key": ["id"], "fields": [
            {"name": "id", "expression": "id", "dimension": {}},
            {"name": "region", "expression": "region", "dimension": {}},
            {"name": "segment", "expression": "segment", "dimension": {}},
            {"name": "label", "expression": "'r=' || region_segment", "dimension": {}},  # declared before its input
            {"name": "region_segment", "expression": "region || '/' || segment", "dimension": {}},
        ]},
        {"name": "orders", "source": "orders", "primary_key": ["id"], "fields": [
            {"name": "id", "expression": "id", "dimension": {}},
            {"name": "customer_id", "expression": "customer_id", "dimension": {}},
            {"name": "status", "expression": "status", "dimension": {}},
            {"name": "amount", "expression": "amount"},
            {"name": "is_done", "expression": "status = 'done'"},
            {"name": "rank_in_customer",
             "expression": "ROW_NUMBER() OVER (PARTITION BY orders.customer_id ORDER BY orders.amount DESC, "
                           "orders.id)"},
            {"name": "top_only", "expression": "CASE WHEN rank_in_customer = 1 THEN amount ELSE 0 END"},
        ]},
        {"name": "returns", "source": "returns", "primary_key": ["id"], "fields": [
            {"name": "id", "expression": "id", "dimension": {}},
            {"name": "customer_id", "expression": "customer_id", "dimension": {}},
            {"name": "amount", "expression": "amount"},
        ]},
        {"name": "lines", "source": "lines", "primary_key": ["id"], "fields": [
            {"name": "id", "expression": "id", "dimension": {}},
            {"name": "order_id", "expression": "order_id", "dimension": {}},
            {"name": "discounted", "expression": "total * 0.5"},  # a chain declared in reverse order
            {"name": "total", "expression": "qty * price"},
            {"name": "qty", "expression": "qty"},
            {"name": "price", "expression": "price"},
        ]},
        {"name": "depots", "source": "depots", "primary_key": ["depot_id"], "fields": [
            {"name": "depot_id", "expression": "depot_id", "dimension": {}},
            {"name": "stock", "expression": "stock"},
        ]},
    ],
    "relationships": [
        {"name": "orders_customer", "from": "orders", "to": "customers", "from_columns": ["customer_id"],
         "to_columns": ["id"]},
        {"name": "returns_customer", "from": "returns", "to": "customers", "from_columns": ["customer_id"],
         "to_columns": ["id"]},
        {"name": "lines_order", "from": "lines", "to": "orders", "from_columns": ["order_id"],
         "to_columns": ["id"]},
    ],
    "metrics": [
        {"name": "revenue", "expression": "SUM(orders.amount)"},
        {"name": "order_count", "expression": "COUNT(orders.id)"},
        {"name": "statuses", "expression": "COUNT(DISTINCT orders.status)"},
        {"name": "refunds", "expression": "SUM(returns.amount)"},
        {"name": "net", "expression": "revenue - refunds"},
        {"name": "avg_amount", "expression": "SUM(orders.amount) / COUNT(orders.id)"},
        {"name": "line_value", "expression": "SUM(lines.discounted)"},
        {"name": "top_total", "expression": "SUM(orders.top_only)"},
        {"name": "stock", "expression": "SUM(depots.stock)"},
        {"name": "running", "expression": "SUM(orders.amount) OVER (PARTITION BY orders.customer_id "
                                          "ORDER BY orders.id ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"},
    ],
}


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("osi") / "osi.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute(DATA)
    return path


def _rows(database: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(database), read_only=True) as connection:
        return [tuple(float(v) if hasattr(v, "as_tuple") else v for v in row)
                for row in connection.execute(sql).fetchall()]


def _answer(database: Path, query: dict[str, Any], model: dict[str, Any] | None = None
            ) -> tuple[list[str], list[tuple[Any, ...]]]:
    osi = read(model or MODEL)
    sql = compile_query(Service(osi.model, None), read_query(query, osi), "duckdb")
    with duckdb.connect(str(database), read_only=True) as connection:
        result = connection.execute(sql)
        names = [d[0] for d in result.description]
        return names, [tuple(float(v) if hasattr(v, "as_tuple") else v for v in row) for row in result.fetchall()]


def _same(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]], ordered: bool = False) -> None:
    def key(row: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple((v is None, str(v)) for v in row)

    if not ordered:
        got, want = sorted(got, key=key), sorted(want, key=key)
    assert len(got) == len(want), (got, want)
    for g, w in zip(got, want, strict=True):
        for a, b in zip(g, w, strict=True):
            assert (a is None and b is None) or (isinstance(a, float) and math.isclose(a, b)) or a == b, (got, want)


def test_aggregation_keeps_orphans_under_null(database: Path) -> None:
    names, rows = _answer(database, {"dataset": "customers", "dimensions": ["customers.region"],
                                     "measures": [{"name": "rev", "metric": "revenue"}]})
    assert names == ["region", "rev"]
    _same(rows, _rows(database, "SELECT c.region, SUM(o.amount) FROM orders o LEFT JOIN customers c "
                                "ON o.customer_id = c.id GROUP BY 1"))


def test_two_facts_stitch_on_the_shared_dimension(database: Path) -> None:
    _, rows = _answer(database, {"dimensions": ["customers.region"], "measures": [
        {"name": "revenue", "metric": "revenue"}, {"name": "refunds", "metric": "refunds"},
        {"name": "net", "metric": "net"}]})
    _same(rows, _rows(database, """
        WITH o AS (SELECT c.region, SUM(o.amount) AS revenue FROM orders o LEFT JOIN customers c
                   ON o.customer_id = c.id GROUP BY 1),
             r AS (SELECT c.region, SUM(r.amount) AS refunds FROM returns r LEFT JOIN customers c
                   ON r.customer_id = c.id GROUP BY 1)
        SELECT COALESCE(o.region, r.region), o.revenue, r.refunds, o.revenue - r.refunds
        FROM o FULL OUTER JOIN r ON o.region IS NOT DISTINCT FROM r.region"""))


def test_grand_total_of_two_facts(database: Path) -> None:
    _, rows = _answer(database, {"measures": [{"name": "a", "metric": "revenue"}, {"name": "b", "metric": "refunds"},
                                              {"name": "c", "metric": "avg_amount"}]})
    _same(rows, _rows(database, "SELECT (SELECT SUM(amount) FROM orders), (SELECT SUM(amount) FROM returns), "
                                "(SELECT SUM(amount) / COUNT(id) FROM orders)"))


def test_field_chains_in_any_declaration_order(database: Path) -> None:
    _, rows = _answer(database, {"dimensions": ["orders.status"], "measures": [{"name": "v", "metric": "line_value"}]})
    _same(rows, _rows(database, "SELECT o.status, SUM(l.qty * l.price * 0.5) FROM lines l LEFT JOIN orders o "
                                "ON l.order_id = o.id GROUP BY 1"))
    names, rows = _answer(database, {"dimensions": ["customers.label"], "measures": [{"name": "n",
                                                                                      "metric": "order_count"}]})
    assert names == ["label", "n"]
    _same(rows, _rows(database, "SELECT 'r=' || (c.region || '/' || c.segment), COUNT(o.id) FROM orders o "
                                "LEFT JOIN customers c ON o.customer_id = c.id GROUP BY 1"))


def test_windowed_field_read_by_another_field(database: Path) -> None:
    _, rows = _answer(database, {"dimensions": ["orders.customer_id"], "measures": [{"name": "t",
                                                                                    "metric": "top_total"}]})
    _same(rows, _rows(database, """
        SELECT customer_id, SUM(CASE WHEN rn = 1 THEN amount ELSE 0 END) FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY amount DESC, id) AS rn FROM orders)
        GROUP BY 1"""))


def test_scalar_query_is_one_row_per_row_with_a_qualify_style_filter(database: Path) -> None:
    # `status` and `amount` repeat across rows: only the hidden primary key keeps them apart
    names, rows = _answer(database, {"dataset": "orders", "fields": ["orders.status", "orders.amount",
                                                                     "customers.region"],
                                     "filters": ["orders.rank_in_customer = 1"]})
    assert names == ["status", "amount", "region"]
    _same(rows, _rows(database, """
        SELECT o.status, o.amount, c.region FROM (
            SELECT *, ROW_NUMBER() OVER (PARTITION BY customer_id ORDER BY amount DESC, id) AS rn FROM orders) o
        LEFT JOIN customers c ON o.customer_id = c.id WHERE o.rn = 1"""))


def test_windowed_metric_is_a_field_of_its_home(database: Path) -> None:
    _, rows = _answer(database, {"dataset": "orders", "fields": ["orders.id", "orders.running"],
                                 "order_by": [{"target": "orders.id"}]})
    _same(rows, _rows(database, "SELECT id, SUM(amount) OVER (PARTITION BY customer_id ORDER BY id ROWS BETWEEN "
                                "UNBOUNDED PRECEDING AND CURRENT ROW) FROM orders ORDER BY id"), ordered=True)


@pytest.mark.parametrize(("direction", "nulls"), [("ASC", "NULLS LAST"), ("DESC", "NULLS FIRST")])
def test_order_puts_nulls_high(database: Path, direction: str, nulls: str) -> None:
    _, rows = _answer(database, {"dimensions": ["customers.region"], "measures": [{"name": "r", "metric": "revenue"}],
                                 "order_by": [{"target": "customers.region", "direction": direction}],
                                 "limit": 3})
    _same(rows, _rows(database, f"SELECT c.region, SUM(o.amount) FROM orders o LEFT JOIN customers c "
                                f"ON o.customer_id = c.id GROUP BY 1 ORDER BY 1 {direction} {nulls} LIMIT 3"),
          ordered=True)


def test_where_list_is_a_conjunction_and_having_filters_measures(database: Path) -> None:
    _, rows = _answer(database, {"dimensions": ["customers.region"],
                                 "measures": [{"name": "r", "metric": "revenue"}, {"name": "n", "metric": "statuses"}],
                                 "filters": ["orders.is_done", "orders.amount > 4"], "qualify": ["r > 5"]})
    _same(rows, _rows(database, "SELECT c.region, SUM(o.amount), COUNT(DISTINCT o.status) FROM orders o "
                                "LEFT JOIN customers c ON o.customer_id = c.id WHERE o.status = 'done' "
                                "AND o.amount > 4 GROUP BY 1 HAVING SUM(o.amount) > 5"))


def _with(section: str, *items: dict[str, Any], at: int | None = None) -> dict[str, Any]:
    """MODEL plus `items` in a top-level section, or among the fields of dataset number `at`."""
    model = json.loads(json.dumps(MODEL))
    target = model[section] if at is None else model["datasets"][at]["fields"]
    target.extend(items)
    return model


REVENUE = {"dimensions": ["customers.region"], "measures": [{"name": "r", "metric": "revenue"}]}


@pytest.mark.parametrize(("model", "query", "code"), [
    (_with("metrics", {"name": "x", "expression": "SUM(orders.amount)", "grain": "FIXED"}), REVENUE,
     "E_DEFERRED_KEY_REJECTED"),
    (_with("relationships", {"name": "r2", "from": "returns", "to": "customers", "from_columns": ["customer_id"],
                             "to_columns": ["id"], "asof": "returns.id"}), REVENUE, "E_DEFERRED_KEY_REJECTED"),
    (_with("metrics", {"name": "x", "expression": "PERCENTILE_CONT(0.5) WITHIN GROUP (ORDER BY orders.amount)"}),
     REVENUE, "E_DEFERRED_KEY_REJECTED"),
    (_with("metrics", {"name": "x", "expression": "MAX(SUM(orders.amount))"}), REVENUE,
     "E_NESTED_AGGREGATION_DEFERRED"),
    (_with("metrics", {"name": "x", "expression": "orders.running / 2"}), REVENUE, "E_WINDOWED_METRIC_COMPOSITION"),
    (_with("datasets", {"name": "p", "expression": "q || 'x'"}, {"name": "q", "expression": "p || 'y'"}, at=0),
     REVENUE, "E_FIELD_DEPENDENCY_CYCLE"),
    (_with("datasets", {"name": "Filter", "expression": "1"}, at=0), REVENUE, "E_RESERVED_NAME"),
    (_with("datasets", {"name": "n", "expression": "COUNT(id)"}, at=0), REVENUE, "E_AGGREGATE_IN_FIELD"),
    (_with("datasets", {"name": "first", "expression": "orders.amount"}, at=0), REVENUE,
     "E_UNAGGREGATED_FINER_GRAIN_REFERENCE"),
    (_with("datasets", {"name": "w", "expression": "SUM(amount) OVER (ORDER BY id GROUPS BETWEEN 1 PRECEDING AND "
                                                   "CURRENT ROW)"}, at=1), REVENUE, "E_DEFERRED_FRAME_MODE"),
    (MODEL, {**REVENUE, "fields": ["customers.id"]}, "E_MIXED_QUERY_SHAPE"),
    (MODEL, {"dimensions": [], "measures": []}, "E_EMPTY_AGGREGATION_QUERY"),
    (MODEL, {"dataset": "orders", "fields": []}, "E_EMPTY_SCALAR_QUERY"),
    (MODEL, {"dimensions": ["customers.region"], "measures": [{"name": "x", "metric": "nope"}]}, "E_NAME_NOT_FOUND"),
    (MODEL, {"dimensions": ["customers.nope"], "measures": [{"name": "x", "metric": "revenue"}]}, "E_NAME_NOT_FOUND"),
    (MODEL, {"dimensions": ["customers.region"], "measures": [{"name": "s", "metric": "stock"}]}, "E_NO_PATH"),
    (MODEL, {"measures": [{"name": "s", "metric": "stock"}, {"name": "r", "metric": "revenue"}]},
     "E3013_NO_STITCHING_DIMENSION"),
    (MODEL, {**REVENUE, "filters": ["SUM(orders.amount) > 1"]}, "E_AGGREGATE_IN_WHERE"),
    (MODEL, {**REVENUE, "filters": ["RANK() OVER (ORDER BY orders.id) = 1"]}, "E_WINDOW_IN_WHERE"),
    (MODEL, {**REVENUE, "qualify": ["customers.region = 'north'"]}, "E_NON_AGGREGATE_IN_HAVING"),
    (MODEL, {**REVENUE, "qualify": ["customers.region = 'north' OR r > 1"]}, "E_MIXED_PREDICATE_LEVEL"),
    (MODEL, {"dataset": "customers", "fields": ["customers.region", "orders.id"]}, "E_FAN_OUT_IN_SCALAR_QUERY"),
    (MODEL, {"dataset": "orders", "fields": ["orders.id", "revenue"]}, "E_AGGREGATE_IN_SCALAR_QUERY"),
    (MODEL, {**REVENUE, "grouping_sets": [["customers.region"]]}, "E_DEFERRED_KEY_REJECTED"),
    (MODEL, {"dimensions": ["customers.region"], "measures": [{"name": "x", "metric": "running"}]},
     "E_UNSUPPORTED"),
])
def test_refusals_carry_the_osi_code(model: dict[str, Any], query: dict[str, Any], code: str) -> None:
    with pytest.raises(OsiError) as caught:
        osi = read(model)
        compile_query(Service(osi.model, None), read_query(query, osi), "duckdb")
    assert caught.value.code == code, caught.value.message
    assert caught.value.message


def test_ambiguous_paths_are_refused() -> None:
    model = json.loads(json.dumps(MODEL))
    model["datasets"][1]["fields"].append({"name": "seller_id", "expression": "customer_id", "dimension": {}})
    model["relationships"].append({"name": "orders_seller", "from": "orders", "to": "customers",
                                   "from_columns": ["seller_id"], "to_columns": ["id"]})
    osi = read(model)
    with pytest.raises(OsiError) as caught:
        compile_query(Service(osi.model, None), read_query(REVENUE, osi), "duckdb")
    assert caught.value.code == "E_AMBIGUOUS_PATH"


def test_core_spec_form_reads_like_the_flat_form(database: Path, tmp_path: Path) -> None:
    def spec(expression: str) -> dict[str, Any]:
        return {"dialects": [{"dialect": "ANSI_SQL", "expression": expression}]}

    core = json.loads(json.dumps(MODEL))
    for dataset in core["datasets"]:
        for f in dataset["fields"]:
            f["expression"] = spec(f["expression"])
    for metric in core["metrics"]:
        metric["expression"] = spec(metric["expression"])
    path = tmp_path / "core.yaml"
    path.write_text(yaml.safe_dump({"version": "0.1", "semantic_model": [core]}))
    osi = load_any(path)
    assert set(osi.model.entities) == {"customers", "orders", "returns", "lines", "depots"}
    assert _answer(database, REVENUE, core) == _answer(database, REVENUE)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "api.cli.main", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def test_cli_compiles_runs_and_refuses(database: Path, tmp_path: Path) -> None:
    model, query, bad = tmp_path / "model.yaml", tmp_path / "q.json", tmp_path / "bad.json"
    model.write_text(yaml.safe_dump(MODEL))
    query.write_text(json.dumps(REVENUE))
    bad.write_text(json.dumps({"dimensions": [], "measures": []}))
    compiled = _cli("compile", str(model), "--query-file", str(query), "--dialect", "duckdb")
    assert compiled.returncode == 0, compiled.stderr
    want = _rows(database, "SELECT c.region, SUM(o.amount) FROM orders o LEFT JOIN customers c "
                           "ON o.customer_id = c.id GROUP BY 1")
    _same(_rows(database, compiled.stdout), want)
    ran = _cli("query", str(model), "--query-file", str(query), "--format", "json", "--warehouse",
               f"duckdb:///{database}")
    assert ran.returncode == 0, ran.stderr
    body = json.loads(ran.stdout)
    assert [c["name"] for c in body["columns"]] == ["region", "r"]
    _same([tuple(r) for r in body["rows"]], want)
    refused = _cli("compile", str(model), "--query-file", str(bad), "--dialect", "duckdb")
    assert refused.returncode == 2 and "E_EMPTY_AGGREGATION_QUERY" in refused.stderr and not refused.stdout
    mixed = _cli("compile", str(model), "--query-file", str(query), "--metric", "orders.revenue")
    assert mixed.returncode == 2 and "--query-file is the whole query" in mixed.stderr


def test_the_suite_adapter_runs_as_the_harness_runs_it(database: Path, tmp_path: Path) -> None:
    """The OSI harness runs bench/osi_adapter.py as a script from the suite's folder: bench/ is then first on the
    path, where bench/graphql.py once shadowed graphql-core and every case failed on import."""
    model, query = tmp_path / "model.yaml", tmp_path / "q.json"
    model.write_text(yaml.safe_dump(MODEL))
    query.write_text(json.dumps(REVENUE))
    ran = subprocess.run([sys.executable, str(ROOT / "bench" / "osi_adapter.py"), "sql", "--model", str(model),
                          "--query-file", str(query), "--dialect", "duckdb"], cwd=tmp_path, capture_output=True,
                         text=True, timeout=120)
    assert ran.returncode == 0, ran.stderr
    want = _rows(database, "SELECT c.region, SUM(o.amount) FROM orders o LEFT JOIN customers c "
                           "ON o.customer_id = c.id GROUP BY 1")
    _same(_rows(database, ran.stdout), want)


def test_osi_query_on_our_own_model(duckdb_path: Path, tmp_path: Path) -> None:
    query = tmp_path / "q.json"
    query.write_text(json.dumps({"dimensions": ["customer.region"],
                                 "measures": [{"name": "orders", "metric": "order_count"}]}))
    ran = _cli("query", "--query-file", str(query), "--format", "json", "--warehouse", f"duckdb:///{duckdb_path}")
    assert ran.returncode == 0, ran.stderr
    got = sorted((tuple(r) for r in json.loads(ran.stdout)["rows"]), key=str)
    want = sorted(_rows(duckdb_path, "SELECT c.region, COUNT(*) FROM orders o LEFT JOIN customers c "
                                     "USING (customer_id) GROUP BY 1"), key=str)
    assert got == [tuple(w) for w in want]


def test_export_reads_back_with_the_same_answers(model: Any, duckdb_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "shop.osi.yaml"
    done = _cli("export", "--format", "osi", "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert "not exported: order.revenue_rolling_7d: cumulative" in done.stderr
    assert "not exported: order.revenue_growth_yoy: it is built on" in done.stderr
    osi = load_any(out)
    query = {"dimensions": ["customer.region", "order.channel"], "measures": [
        {"name": "revenue", "metric": "revenue"}, {"name": "aov", "metric": "average_order_value"},
        {"name": "buyers", "metric": "buyers"}, {"name": "lines", "metric": "item_revenue"}]}
    sql = compile_query(Service(osi.model, None), read_query(query, osi), "duckdb")
    want = _rows(duckdb_path, """
        WITH o AS (SELECT c.region, o.channel, SUM(o.amount) FILTER (WHERE o.status <> 'cancelled') AS revenue,
                          SUM(o.amount) FILTER (WHERE o.status <> 'cancelled') / NULLIF(COUNT(*), 0) AS aov,
                          COUNT(DISTINCT o.customer_id) AS buyers
                   FROM orders o LEFT JOIN customers c USING (customer_id) GROUP BY ALL),
             i AS (SELECT c.region, o.channel, SUM(i.quantity * i.unit_price)
                              FILTER (WHERE o.status <> 'cancelled') AS lines
                   FROM order_items i JOIN orders o USING (order_id) LEFT JOIN customers c USING (customer_id)
                   GROUP BY ALL)
        SELECT COALESCE(o.region, i.region), COALESCE(o.channel, i.channel), o.revenue, o.aov, o.buyers, i.lines
        FROM o FULL JOIN i ON o.region IS NOT DISTINCT FROM i.region AND o.channel = i.channel""")
    _same(_rows(duckdb_path, sql), want)


BRIDGE: dict[str, Any] = {
    "datasets": [
        {"name": "people", "source": "people", "primary_key": ["pid"], "fields": [
            {"name": "pid", "expression": "pid", "dimension": {}}, {"name": "team", "expression": "team",
                                                                    "dimension": {}}]},
        {"name": "projects", "source": "projects", "primary_key": ["jid"], "fields": [
            {"name": "jid", "expression": "jid", "dimension": {}}, {"name": "budget", "expression": "budget"}]},
        {"name": "staffing", "source": "staffing", "primary_key": ["pid", "jid"], "role": "bridge", "fields": [
            {"name": "pid", "expression": "pid", "dimension": {}}, {"name": "jid", "expression": "jid",
                                                                    "dimension": {}}]},
    ],
    "relationships": [
        {"name": "s_person", "from": "staffing", "to": "people", "from_columns": ["pid"], "to_columns": ["pid"]},
        {"name": "s_project", "from": "staffing", "to": "projects", "from_columns": ["jid"], "to_columns": ["jid"]},
    ],
    "metrics": [{"name": "budget", "expression": "SUM(projects.budget)"},
                {"name": "median_budget", "expression": "MEDIAN(projects.budget)"},
                {"name": "staff", "expression": "COUNT(DISTINCT people.pid)"}],
}


def test_many_to_many_through_a_bridge_counts_each_row_once_per_group(tmp_path: Path) -> None:
    path = tmp_path / "bridge.duckdb"
    with duckdb.connect(str(path)) as connection:
        connection.execute("""
            CREATE TABLE people (pid INTEGER, team VARCHAR);
            INSERT INTO people VALUES (1, 'red'), (2, 'red'), (3, 'blue'), (4, NULL), (5, 'green');
            CREATE TABLE projects (jid INTEGER, budget DOUBLE);
            INSERT INTO projects VALUES (10, 100), (11, 40), (12, 7), (13, 1000);  -- 13 is staffed by nobody
            CREATE TABLE staffing (pid INTEGER, jid INTEGER);
            INSERT INTO staffing VALUES (1, 10), (2, 10), (3, 10), (1, 11), (4, 12), (2, 12);""")
    _, rows = _answer(path, {"dimensions": ["people.team"], "measures": [
        {"name": "budget", "metric": "budget"}, {"name": "median", "metric": "median_budget"}]}, BRIDGE)
    _same(rows, _rows(path, """
        SELECT team, SUM(budget), MEDIAN(budget) FROM (
            SELECT DISTINCT j.jid, j.budget, p.team FROM projects j LEFT JOIN staffing s ON s.jid = j.jid
            LEFT JOIN people p ON p.pid = s.pid) GROUP BY team"""))
    _, rows = _answer(path, {"dimensions": ["projects.jid"], "measures": [{"name": "n", "metric": "staff"}]}, BRIDGE)
    _same(rows, _rows(path, "SELECT s.jid, COUNT(DISTINCT p.pid) FROM people p LEFT JOIN staffing s ON s.pid = p.pid "
                            "GROUP BY s.jid"))
