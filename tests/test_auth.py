"""Credentials that try to get in: tokens expired, not yet valid, wrongly signed, for another audience or issuer,
with `alg: none` or an algorithm confused with another; API keys; anonymous access. The app runs over HTTP (an
httpx ASGI transport, and one real `semantic serve` process) on a real DuckDB file with the example's policies."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from api.app import create_app
from api.auth import AuthConfigError, Authenticator, read_api_keys
from examples.shop.generate import generate
from semantic.execute import SqlWarehouse
from semantic.loader import load
from semantic.service import Service
from tests.serving import serving
from tests.tenants import AUDIENCE, SECRET, Client, Counting, analyst, bearer, policied_model, token

ORDERS = '{ order { orderCount } }'


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("auth")
    return policied_model(folder), generate(folder / "shop.duckdb", orders=400, seed=11)


@pytest.fixture(scope="module")
def rsa_key(tmp_path_factory: pytest.TempPathFactory) -> tuple[rsa.RSAPrivateKey, Path]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path_factory.mktemp("rsa") / "public.pem"
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                   serialization.PublicFormat.SubjectPublicKeyInfo))
    return key, path


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keys") / "keys.yaml"
    path.write_text(yaml.safe_dump([
        {"sha256": hashlib.sha256(b"eu-key-123").hexdigest(), "principal": "eu-service", "roles": ["analyst"],
         "attributes": {"region": "EU"}},
        {"sha256": hashlib.sha256(b"admin-key-456").hexdigest(), "principal": "ops", "roles": ["admin"]},
    ]))
    return path


@pytest.fixture(scope="module")
def setup(shop: tuple[Path, Path], rsa_key: tuple[rsa.RSAPrivateKey, Path], keys_file: Path
          ) -> Iterator[tuple[Client, Counting, Service]]:
    model, data = shop
    env = {"SEMANTIC_JWT_SECRET": SECRET, "SEMANTIC_JWT_PUBLIC_KEY": str(rsa_key[1]),
           "SEMANTIC_JWT_AUDIENCE": AUDIENCE, "SEMANTIC_JWT_ISSUER": "https://issuer.test",
           "SEMANTIC_API_KEYS": str(keys_file)}
    warehouse = Counting(SqlWarehouse(f"duckdb:///{data}", read_only=True))
    service = Service(load(model), warehouse)
    yield Client(create_app(service, auth=Authenticator.from_env(env))), warehouse, service
    warehouse.close()


def claims(**extra: Any) -> dict[str, Any]:
    return {**analyst("EU"), "iss": "https://issuer.test", **extra}


def post(client: Client, headers: dict[str, str], query: str = ORDERS) -> httpx.Response:
    response = client.post("/graphql", json={"query": query}, headers=headers)
    assert "Traceback" not in response.text
    return response


def test_a_valid_token_reads(setup: tuple[Client, Counting, Service]) -> None:
    client, _, _ = setup
    response = post(client, bearer(claims()))
    assert response.status_code == 200 and response.json()["data"]["order"][0]["orderCount"] > 0


def _none_token() -> str:
    def part(value: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part({**claims(), 'aud': AUDIENCE, 'exp': 2**33})}."


def _refused() -> dict[str, str]:
    now = int(time.time())
    return {
        "expired": token(claims(), lifetime=-10),
        "not yet valid": token(claims(nbf=now + 600)),
        "wrongly signed": token(claims(), secret="another-secret-that-is-long-enough-0123456789"),  # noqa: S106
        "another audience": token(claims(aud="someone-else")),
        "another issuer": token(claims(iss="https://evil.test")),
        "alg none": _none_token(),
        "tampered": token(claims())[:-4] + "AAAA",
        "not a jwt": "hello",
        "roles not a list": token(claims(roles="admin")),
    }


@pytest.mark.parametrize("case", list(_refused()))
def test_bad_tokens_are_refused_and_nothing_runs(setup: tuple[Client, Counting, Service], case: str) -> None:
    client, warehouse, _ = setup
    before = len(warehouse.statements)
    response = post(client, {"authorization": f"Bearer {_refused()[case]}"})
    assert response.status_code == 401
    body = response.json()
    assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED" and "data" not in body
    assert len(warehouse.statements) == before


def test_rs256_tokens_and_no_algorithm_confusion(setup: tuple[Client, Counting, Service],
                                                 rsa_key: tuple[rsa.RSAPrivateKey, Path]) -> None:
    client, _, _ = setup
    private, public = rsa_key
    good = jwt.encode({**claims(), "aud": AUDIENCE, "exp": int(time.time()) + 60}, private, algorithm="RS256")
    assert post(client, {"authorization": f"Bearer {good}"}).status_code == 200
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = jwt.encode({**claims(), "aud": AUDIENCE, "exp": int(time.time()) + 60}, other, algorithm="RS256")
    assert post(client, {"authorization": f"Bearer {forged}"}).status_code == 401
    # The public key used as an HMAC secret (the classic confusion) must not verify.
    import hmac as hmac_module

    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps({**claims(), "aud": AUDIENCE,
                                                   "exp": int(time.time()) + 60}).encode()).rstrip(b"=")
    signature = base64.urlsafe_b64encode(hmac_module.new(public.read_bytes(), header + b"." + payload,
                                                         hashlib.sha256).digest()).rstrip(b"=")
    confused = b".".join((header, payload, signature)).decode()
    assert post(client, {"authorization": f"Bearer {confused}"}).status_code == 401


def test_missing_credentials_are_401_everywhere(setup: tuple[Client, Counting, Service]) -> None:
    client, warehouse, _ = setup
    before = len(warehouse.statements)
    assert post(client, {}).status_code == 401
    assert client.get("/graphql?query={catalog{name}}").status_code == 401
    assert post(client, {"authorization": "Basic dXNlcjpwYXNz"}).status_code == 401
    health = client.get("/healthz")
    assert health.status_code == 200 and health.json() == {"status": "ok"}  # open, and says nothing more
    assert len(warehouse.statements) == before + 1  # only the health check's SELECT 1


def test_api_keys(setup: tuple[Client, Counting, Service], keys_file: Path) -> None:
    client, _, _ = setup
    eu = post(client, {"x-api-key": "eu-key-123"}, '{ order { orderCount customer { region } } }')
    assert [r["customer"]["region"] for r in eu.json()["data"]["order"]] == ["EU"]
    admin = post(client, {"x-api-key": "admin-key-456"}, '{ order { orderCount customer { region } } }')
    assert len(admin.json()["data"]["order"]) > 1
    for wrong in ("eu-key-12", "eu-key-1234", "", hashlib.sha256(b"eu-key-123").hexdigest()):
        response = post(client, {"x-api-key": wrong})
        assert response.status_code == 401 and response.json()["errors"][0]["extensions"]["code"] == \
            "UNAUTHENTICATED"
    assert b"eu-key-123" not in keys_file.read_bytes()  # only digests are stored


def test_bad_key_files_are_refused_at_start(tmp_path: Path) -> None:
    path = tmp_path / "keys.yaml"
    for text in ("- {sha256: abc, principal: x}", "{keys: 3}", "- {sha256: " + "0" * 64 + ", roles: admin}"):
        path.write_text(text)
        with pytest.raises(AuthConfigError):
            read_api_keys(path)
    with pytest.raises(AuthConfigError):
        Authenticator.from_env({"SEMANTIC_JWT_PUBLIC_KEY": str(tmp_path / "missing.pem")})


def test_allow_anonymous_serves_beside_tokens(shop: tuple[Path, Path]) -> None:
    model, data = shop
    warehouse = SqlWarehouse(f"duckdb:///{data}", read_only=True)
    auth = Authenticator(jwt_secret=SECRET, audience=AUDIENCE, allow_anonymous=True)
    client = Client(create_app(Service(load(model), warehouse), auth=auth))
    anonymous = post(client, {})
    assert anonymous.status_code == 200 and anonymous.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    assert post(client, {}, '{ product { productCount } }').json()["data"]["product"][0]["productCount"] > 0
    assert post(client, bearer(analyst("EU"))).json()["data"]["order"][0]["orderCount"] > 0
    assert post(client, {"authorization": "Bearer broken"}).status_code == 401  # bad credentials never downgrade
    warehouse.close()


def test_serve_with_a_jwt_secret(shop: tuple[Path, Path], tmp_path: Path) -> None:
    """The README's recipe: a real `semantic serve` process with SEMANTIC_JWT_SECRET, queried with a token."""
    model, data = shop
    env = {"SEMANTIC_JWT_SECRET": SECRET, "SEMANTIC_JWT_AUDIENCE": AUDIENCE}
    with serving(model, f"duckdb:///{data}", tmp_path / "serve.log", env=env) as url:
        refused = httpx.post(f"{url}/graphql", json={"query": ORDERS}, timeout=10)
        assert refused.status_code == 401
        served = httpx.post(f"{url}/graphql", json={"query": '{ order { orderCount customer { region } } }'},
                            headers=bearer(analyst("NA")), timeout=10)
        assert [r["customer"]["region"] for r in served.json()["data"]["order"]] == ["NA"]


def test_serve_without_credentials_warns(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from api.cli.serve import authenticator

    for name in ("SEMANTIC_JWT_SECRET", "SEMANTIC_JWT_PUBLIC_KEY", "SEMANTIC_API_KEYS"):
        monkeypatch.delenv(name, raising=False)
    with caplog.at_level("WARNING", logger="semantic.api"):
        auth = authenticator(False)
    assert not auth.configured and "anonymously" in caplog.text
    monkeypatch.setenv("SEMANTIC_JWT_SECRET", SECRET)
    caplog.clear()
    assert authenticator(False).configured and "anonymously" not in caplog.text
