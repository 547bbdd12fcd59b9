"""Persisted queries over HTTP against `semantic serve`: Apollo's automatic persisted queries by POST and GET (hash
alone: PersistedQueryNotFound; again with the document; then the hash alone runs it), Cache-Control on GET (public
without credentials, private with them, no-store for errors and POST), GET never runs a mutation, the document
store is bounded, and `--persisted-queries-file` runs registered documents only. Answers are compared with
hand-written SQL on the same DuckDB file."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import jwt
import pytest

from examples.shop.generate import generate
from tests.serving import ROOT, serving

SECRET = "persisted-test-secret-of-enough-length"  # noqa: S105 - a test server's own signing key
DOCUMENT = "query Status($s: String) { order(where: {status: {eq: $s}}) { orderCount } }"
OTHER = "query Region { order { customer { region } orderCount } }"


def digest(document: str) -> str:
    """The hash a client sends, as the protocol defines it (not the server's own function): SHA-256 of the UTF-8
    text, lowercase hex."""
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(tmp_path_factory.mktemp("persisted") / "shop.duckdb", orders=1000)


@pytest.fixture(scope="module")
def counts(shop: Path) -> dict[str, int]:
    """Orders per status, by hand (read before any server opens the file)."""
    with duckdb.connect(str(shop), read_only=True) as con:
        return {status: n for status, n in con.sql("select status, count(*) from orders group by 1").fetchall()}


@pytest.fixture(scope="module")
def server(shop: Path, counts: dict[str, int]) -> Iterator[str]:
    with serving(ROOT / "examples" / "shop", f"duckdb:///{shop}", shop.with_name("apq.log"),
                 env={"SEMANTIC_JWT_SECRET": SECRET}, args=("--allow-anonymous",)) as url:
        yield url


def persisted(document: str) -> dict[str, Any]:
    return {"persistedQuery": {"version": 1, "sha256Hash": digest(document)}}


def get(server: str, params: dict[str, Any], headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.get(f"{server}/graphql", params={k: v if isinstance(v, str) else json.dumps(v)
                                                  for k, v in params.items()}, headers=headers, timeout=30)


def token() -> str:
    return jwt.encode({"sub": "ana", "roles": ["analyst"], "exp": int(time.time()) + 300}, SECRET, algorithm="HS256")


def test_hash_alone_then_the_document_then_the_hash_alone_by_post(server: str, counts: dict[str, int]) -> None:
    document = DOCUMENT.replace("Status", "StatusPost")  # a document no other test registers
    first = httpx.post(f"{server}/graphql", json={"extensions": persisted(document), "variables": {"s": "shipped"}})
    assert first.status_code == 200
    assert first.json()["errors"][0] == {"message": "PersistedQueryNotFound",
                                         "extensions": {"code": "PERSISTED_QUERY_NOT_FOUND"}}
    assert first.headers["cache-control"] == "no-store"
    second = httpx.post(f"{server}/graphql", json={"query": document, "extensions": persisted(document),
                                                   "variables": {"s": "shipped"}})
    assert second.json()["data"] == {"order": [{"orderCount": counts["shipped"]}]}
    assert second.headers["cache-control"] == "no-store"  # POST answers are not for caches
    third = httpx.post(f"{server}/graphql", json={"extensions": persisted(document), "variables": {"s": "returned"}})
    assert third.json()["data"] == {"order": [{"orderCount": counts["returned"]}]}


def test_hash_alone_by_get_is_cacheable_public_without_credentials_private_with(server: str,
                                                                                counts: dict[str, int]) -> None:
    params = {"extensions": persisted(DOCUMENT), "variables": {"s": "completed"}, "operationName": "Status"}
    missing = get(server, params)
    assert missing.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
    assert missing.headers["cache-control"] == "no-store"  # a CDN must not keep the miss
    registered = get(server, {**params, "query": DOCUMENT})
    assert registered.json()["data"] == {"order": [{"orderCount": counts["completed"]}]}
    anonymous = get(server, params)
    assert anonymous.json()["data"] == {"order": [{"orderCount": counts["completed"]}]}
    assert anonymous.headers["cache-control"] == "public, max-age=60"
    assert "authorization" in anonymous.headers["vary"].lower()
    signed_in = get(server, params, headers={"authorization": f"Bearer {token()}"})
    assert signed_in.json()["data"] == anonymous.json()["data"]
    assert signed_in.headers["cache-control"] == "private, max-age=60"


def test_errors_are_not_cached_and_a_wrong_hash_is_refused(server: str) -> None:
    bad = get(server, {"query": "{ order { nope } }"})
    assert bad.json()["errors"][0]["extensions"]["code"] == "UNKNOWN_FIELD"
    assert bad.headers["cache-control"] == "no-store"
    wrong = httpx.post(f"{server}/graphql", json={"query": OTHER, "extensions": persisted(DOCUMENT)})
    assert wrong.status_code == 400 and wrong.json()["errors"][0]["extensions"]["code"] == "BAD_QUERY"
    assert "SHA-256" in wrong.json()["errors"][0]["message"]
    for extensions in ({"persistedQuery": {"version": 2, "sha256Hash": digest(OTHER)}},
                       {"persistedQuery": {"version": 1, "sha256Hash": "not-a-hash"}}):
        refused = httpx.post(f"{server}/graphql", json={"extensions": extensions})
        assert refused.status_code == 400 and refused.json()["errors"][0]["extensions"]["code"] == "BAD_QUERY"


def test_get_never_runs_a_mutation(server: str) -> None:
    mutation = "mutation { clearCache }"
    by_text = get(server, {"query": mutation})
    assert 400 <= by_text.status_code < 500 and "data" not in by_text.json()
    assert by_text.headers["cache-control"] == "no-store"
    # Registered by POST (where it runs: an anonymous reader may not clear the cache), then asked for by hash.
    posted = httpx.post(f"{server}/graphql", json={"query": mutation, "extensions": persisted(mutation)})
    assert posted.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    by_hash = get(server, {"extensions": persisted(mutation)})
    assert 400 <= by_hash.status_code < 500 and "data" not in by_hash.json()


def test_the_document_store_is_bounded(shop: Path) -> None:
    """With a 4 kB store, 200 documents of about 60 bytes each: the first ones are evicted and must be sent again."""
    with serving(ROOT / "examples" / "shop", f"duckdb:///{shop}", shop.with_name("bounded.log"),
                 args=("--cache", "memory://?max_bytes=4096")) as url:
        documents = [f"query Q{i} {{ a{i}: __typename b: __typename c: __typename }}" for i in range(200)]
        for document in documents:
            answer = httpx.post(f"{url}/graphql", json={"query": document, "extensions": persisted(document)})
            assert answer.json() == {"data": {f"a{document[7:].split()[0]}": "Query", "b": "Query", "c": "Query"}}
        first = httpx.post(f"{url}/graphql", json={"extensions": persisted(documents[0])})
        assert first.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_FOUND"
        last = httpx.post(f"{url}/graphql", json={"extensions": persisted(documents[-1])})
        assert last.json()["data"]["b"] == "Query"


def test_registered_documents_only(shop: Path, counts: dict[str, int]) -> None:
    manifest = shop.with_name("manifest.json")
    manifest.write_text(json.dumps({"format": "apollo-persisted-query-manifest", "version": 1, "operations": [
        {"id": digest(DOCUMENT), "name": "Status", "type": "query", "body": DOCUMENT}]}))
    with serving(ROOT / "examples" / "shop", f"duckdb:///{shop}", shop.with_name("registered.log"),
                 args=("--persisted-queries-file", str(manifest))) as url:
        by_hash = get(url, {"extensions": persisted(DOCUMENT), "variables": {"s": "cancelled"}})
        assert by_hash.json()["data"] == {"order": [{"orderCount": counts["cancelled"]}]}
        assert by_hash.headers["cache-control"] == "public, max-age=60"
        by_text = httpx.post(f"{url}/graphql", json={"query": DOCUMENT, "variables": {"s": "cancelled"}})
        assert by_text.json()["data"] == by_hash.json()["data"]
        for body in ({"query": OTHER}, {"extensions": persisted(OTHER)},
                     {"query": OTHER, "extensions": persisted(OTHER)}):
            refused = httpx.post(f"{url}/graphql", json=body)
            assert refused.status_code == 400, body
            assert refused.json()["errors"][0]["extensions"]["code"] == "PERSISTED_QUERY_NOT_IN_LIST"


@pytest.mark.parametrize(("content", "words"), [
    ("{not json", "cannot read it as JSON"),
    (json.dumps({digest(OTHER): DOCUMENT}), "is not the SHA-256 of its document"),
    (json.dumps({}), "registers no document"),
])
def test_a_bad_persisted_queries_file_stops_serve(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "queries.json"
    path.write_text(content)
    run = subprocess.run([sys.executable, "-m", "api.cli.main", "serve", str(ROOT / "examples" / "shop"),
                          "--persisted-queries-file", str(path), "--warehouse", "duckdb:///nowhere.duckdb"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 2 and words in run.stderr and "Traceback" not in run.stderr
