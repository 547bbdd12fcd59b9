"""GraphQL types true to the data, over HTTP against `semantic serve` on a DuckDB file written here: 64-bit `Long`
where 32-bit `Int` could overflow (exact past 2^53 in the JSON text), `Decimal` digits kept, `Date` for days,
typed and checked time values in `where`, the `Fill` and `Dialect` enums (their former strings read too), time
zones checked. Expected values are computed here by hand, in Python integers and decimals."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import duckdb
import httpx
import pytest

from tests.serving import serving

BIG = 2**40 + 1  # a BIGINT key past Int's 32 bits
HUGE = 2**60 + 1  # past 2^53: a double cannot hold it
RICH = Decimal("12345678901234567.89")  # 19 digits: a double cannot hold it
ROWS = [  # account_id, small (INTEGER), big (BIGINT), balance DECIMAL(20,2), ratio, opened_on, opened_at
    (BIG, 2_000_000_000, HUGE, RICH, 0.5, "2024-01-15", "2024-01-15 10:30:00"),
    (BIG + 1, 2_000_000_000, HUGE, Decimal("0.01"), 0.25, "2024-02-20", "2024-02-20 23:00:00"),
    (3, 7, 5, Decimal("1.10"), 1.0, "2024-02-21", "2024-02-21 08:00:00"),
]
MODEL = """version: 1
name: wide
entities:
  - name: account
    table: accounts
    key: account_id
    time: opened_on
    dimensions:
      - {name: account_id, type: integer}
      - {name: small, type: integer}
      - {name: balance, type: number}
      - {name: ratio, type: number}
      - {name: opened_on, type: time, grain: day, storage: date}
      - {name: opened_at, type: time}
      - {name: opened_day, type: time, grain: day, expr: opened_at}
    metrics:
      - {name: accounts, agg: count}
      - {name: small_total, agg: sum, expr: small}
      - {name: small_max, agg: max, expr: small}
      - {name: big_total, agg: sum, expr: big}
      - {name: balance_total, agg: sum, expr: balance}
      - {name: balance_avg, agg: avg, expr: balance}
      - {name: balance_to_date, metric: balance_total, window: unbounded}
      - {name: small_before, metric: small_total, offset: 1 month}
      - {name: balance_twice, expr: "balance_total + balance_total"}
  - name: ledger
    table: ledger
    key: entry_id
    metrics:
      - {name: total, agg: sum, expr: amount}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("types")
    path = folder / "wide.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE accounts (account_id BIGINT, small INTEGER, big BIGINT, balance DECIMAL(20, 2), "
                    "ratio DOUBLE, opened_on DATE, opened_at TIMESTAMP)")
        con.executemany("INSERT INTO accounts VALUES (?, ?, ?, ?, ?, ?, ?)", ROWS)
        con.execute("CREATE TABLE ledger (entry_id INTEGER, amount BIGINT)")
        con.execute("INSERT INTO ledger VALUES (1, ?), (2, ?)", [2**62, 2**62])  # the sum is 2^63: past Long
    (folder / "model.yaml").write_text(MODEL)
    with serving(folder / "model.yaml", f"duckdb:///{path}", folder / "log") as url:
        yield url


def post(server: str, query: str, variables: dict[str, Any] | None = None) -> httpx.Response:
    response = httpx.post(f"{server}/graphql", json={"query": query, "variables": variables or {}}, timeout=30)
    assert response.status_code == 200, response.text
    return response


def gql(server: str, query: str, variables: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = post(server, query, variables).json()
    return body


def error(body: dict[str, Any]) -> tuple[str, str]:
    assert body.get("errors"), body
    return body["errors"][0]["extensions"]["code"], body["errors"][0]["message"]


def named_type(kind: dict[str, Any]) -> str:
    while kind.get("ofType"):
        kind = kind["ofType"]
    return str(kind["name"])


def test_field_types_follow_the_warehouse(server: str) -> None:
    body = gql(server, """{ a: __type(name: "Account") { fields { name type { name ofType { name ofType { name ofType { name } } } } } }
        w: __type(name: "AccountWhere") { inputFields { name type { name ofType { name ofType { name ofType { name } } } } } }
        q: __type(name: "Query") { fields { name args { name type { name ofType { name ofType { name ofType { name } } } } } } } }""")
    fields = {f["name"]: named_type(f["type"]) for f in body["data"]["a"]["fields"]}
    assert fields == {
        "accountId": "Long", "small": "Int", "balance": "Decimal", "ratio": "Float", "openedOn": "Date",
        "openedAt": "Temporal", "openedDay": "Date", "accounts": "Long", "smallTotal": "Long", "smallMax": "Int",
        "bigTotal": "Long", "balanceTotal": "Decimal", "balanceAvg": "Float", "balanceToDate": "Decimal",
        "smallBefore": "Long", "balanceTwice": "Decimal"}
    where = {f["name"]: named_type(f["type"]) for f in body["data"]["w"]["inputFields"]}
    assert {k: where[k] for k in ("accountId", "small", "balance", "ratio", "openedOn", "openedAt")} == {
        "accountId": "LongFilter", "small": "IntFilter", "balance": "DecimalFilter", "ratio": "FloatFilter",
        "openedOn": "DateFilter", "openedAt": "TimeFilter"}
    args = {(f["name"], a["name"]): named_type(a["type"]) for f in body["data"]["q"]["fields"] for a in f["args"]}
    assert args[("query", "fill")] == "Fill" and args[("compile", "dialect")] == "Dialect"
    assert args[("compile", "fill")] == "Fill"


def test_values_are_exact_past_32_bits_2_to_53_and_double_precision(server: str) -> None:
    response = post(server, """{ account(orderBy: [{accountId: ASC}]) { accountId small smallMax smallTotal
        bigTotal balance balanceTotal openedOn } all: account { accounts smallTotal bigTotal balanceTotal } }""")
    body = json.loads(response.text)  # Python's reader keeps every digit of an integer
    rows = body["data"]["account"]
    by_key = sorted(ROWS, key=lambda r: r[0])
    assert [r["accountId"] for r in rows] == [r[0] for r in by_key]
    assert [r["balance"] for r in rows] == [str(r[3]) for r in by_key]  # "12345678901234567.89": every digit
    assert [r["openedOn"] for r in rows] == [r[5] for r in by_key]
    assert [r["smallMax"] for r in rows] == [r[1] for r in by_key]
    totals = body["data"]["all"][0]
    assert totals == {"accounts": 3, "smallTotal": sum(r[1] for r in ROWS), "bigTotal": sum(r[2] for r in ROWS),
                      "balanceTotal": str(sum(r[3] for r in ROWS))}
    assert totals["smallTotal"] > 2**31 - 1 and totals["bigTotal"] > 2**53
    assert f'"bigTotal":{2 * HUGE + 5}' in response.text  # a JSON number with its exact digits, not 2.3e18


def test_cumulative_offset_and_derived_keep_their_types(server: str) -> None:
    body = gql(server, """{ account(orderBy: [{openedOn: ASC}]) { openedOn(grain: MONTH) balanceToDate
        smallBefore smallTotal balanceTwice } }""")
    rows = body["data"]["account"]
    january, february = RICH, Decimal("0.01") + Decimal("1.10")
    assert rows == [
        {"openedOn": "2024-01-01", "balanceToDate": str(january), "smallBefore": None,
         "smallTotal": 2_000_000_000, "balanceTwice": str(2 * january)},
        {"openedOn": "2024-02-01", "balanceToDate": str(january + february), "smallBefore": 2_000_000_000,
         "smallTotal": 2_000_000_007, "balanceTwice": str(2 * february)}]


def test_a_sum_past_64_bits_is_an_error_with_a_code_and_exact_in_the_generic_rows(server: str) -> None:
    code, message = error(gql(server, "{ ledger { total } }"))
    assert code == "OUT_OF_RANGE" and str(2**63) in message
    rows = json.loads(post(server, '{ query(metrics: ["ledger.total"]) { rows } }').text)["data"]["query"]["rows"]
    assert rows == [[2**63]]


@pytest.mark.parametrize("value", [BIG, str(BIG)])
def test_long_filters_take_numbers_and_digit_strings(server: str, value: int | str) -> None:
    literal = json.dumps(value)
    body = gql(server, f"{{ account(where: {{accountId: {{eq: {literal}}}}}) {{ accountId balance }} }}")
    assert body["data"]["account"] == [{"accountId": BIG, "balance": str(RICH)}]
    body = gql(server, "query($id: Long) { account(where: {accountId: {eq: $id}}) { accountId } }", {"id": value})
    assert body["data"]["account"] == [{"accountId": BIG}]


def test_decimal_date_and_time_filters(server: str) -> None:
    body = gql(server, """{ d: account(where: {balance: {gte: "1.10"}}, orderBy: [{accountId: ASC}]) { accountId }
        n: account(where: {balance: {lt: 1}}) { accountId }
        day: account(where: {openedOn: {gte: "2024-02-21"}}) { accountId }
        t: account(where: {openedAt: {gte: "2024-02-20T23:00:00", lt: "2024-02-21"}}) { accountId }
        z: account(where: {openedAt: {gte: "2024-02-21T00:00:00+01:00"}}, orderBy: [{accountId: ASC}]) { accountId } }""")
    data = body["data"]
    assert [r["accountId"] for r in data["d"]] == sorted(r[0] for r in ROWS if r[3] >= Decimal("1.10"))
    assert [r["accountId"] for r in data["n"]] == [BIG + 1]
    assert [r["accountId"] for r in data["day"]] == [3]
    assert [r["accountId"] for r in data["t"]] == [BIG + 1]
    # 2024-02-21T00:00+01:00 is 2024-02-20 23:00 UTC: the naive UTC 23:00 row is at it, so it counts
    assert [r["accountId"] for r in data["z"]] == [3, BIG + 1]


@pytest.mark.parametrize(("query", "variables", "code", "words"), [
    ('{ account(where: {openedAt: {gte: "2024-13-01"}}) { accounts } }', None, "GRAPHQL_VALIDATION_FAILED",
     "where.openedAt.gte"),
    ('{ account(where: {openedOn: {eq: "2024-02-21T10:00:00"}}) { accounts } }', None, "GRAPHQL_VALIDATION_FAILED",
     "where.openedOn.eq"),
    ('{ account(where: {balance: {in: [1, "lots"]}}) { accounts } }', None, "GRAPHQL_VALIDATION_FAILED",
     "where.balance.in.1"),
    ('{ account(where: {small: {eq: 3000000000}}) { accounts } }', None, "GRAPHQL_VALIDATION_FAILED",
     "where.small.eq"),
    ("query($w: AccountWhere) { account(where: $w) { accounts } }", {"w": {"openedAt": {"lt": "soon"}}},
     "BAD_QUERY", "openedAt.lt"),
    ('{ account(where: {accountId: {eq: "1e3"}}) { accounts } }', None, "GRAPHQL_VALIDATION_FAILED", "Long"),
    ('{ query(metrics: ["account.accounts"], fill: "sometimes") { rows } }', None, "BAD_QUERY", "zero, null"),
    ('{ compile(metrics: ["account.accounts"], dialect: "oracle9") }', None, "BAD_QUERY", "postgres"),
    ('{ account(timezone: "Mars/Olympus") { accounts } }', None, "BAD_QUERY", "time zone"),
    ('{ query(metrics: ["account.accounts"], timezone: "Europe/Pariss") { rows } }', None, "BAD_QUERY",
     "Europe/Paris"),
])
def test_bad_typed_values_are_refused_naming_the_place(server: str, query: str, variables: dict[str, Any] | None,
                                                       code: str, words: str) -> None:
    got_code, message = error(gql(server, query, variables))
    assert (got_code, words in message) == (code, True), message


def test_fill_and_dialect_enums_read_their_former_strings_too(server: str) -> None:
    generic = ('query{} {{ query(metrics: ["account.accounts"], dimensions: ["account.opened_on:month"], '
               'where: "account.opened_on:month >= \'2023-12-01\' and account.opened_on:month < \'2024-04-01\'", '
               'fill: {}) {{ rows }} }}')
    answers = [gql(server, generic.format("($f: Fill)" if variables else "", spelling), variables)["data"]["query"]["rows"]
               for spelling, variables in [("ZERO", None), ('"zero"', None), ("$f", {"f": "ZERO"}),
                                           ("$f", {"f": "zero"})]]
    assert answers == [[["2023-12-01", 0], ["2024-01-01", 1], ["2024-02-01", 2], ["2024-03-01", 0]]] * 4
    nulls = gql(server, generic.format("", "NULL"))["data"]["query"]["rows"]
    assert nulls == [["2023-12-01", None], ["2024-01-01", 1], ["2024-02-01", 2], ["2024-03-01", None]]
    compiled = [gql(server, f'{{ compile(metrics: ["account.balance_total"], dialect: {d}) }}')["data"]["compile"]
                for d in ("POSTGRES", '"postgres"', "SPARK")]
    assert compiled[0] == compiled[1] != compiled[2]
