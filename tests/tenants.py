"""Helpers for the access tests: the example model with its policies switched on, tokens, hand-written answers."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt

from semantic.execute import Table, Warehouse

ROOT = Path(__file__).resolve().parents[1]
SECRET = "a-test-secret-long-enough-for-hs256-0123456789abcdef"  # noqa: S105 - a test key
AUDIENCE = "semantic-tests"


def policied_model(folder: Path) -> Path:
    """The example model with its commented `policies:` blocks uncommented, written into `folder`."""
    text = (ROOT / "examples" / "shop" / "model.yaml").read_text()
    text, count = re.subn(r"^(\s*)# (policies:|  - roles:|    rows:|    hide:)", r"\1\2", text, flags=re.M)
    assert count >= 10, "the example's policies block changed shape"
    path = folder / "model.yaml"
    path.write_text(text)
    return path


def token(claims: dict[str, Any], *, secret: str = SECRET, algorithm: str = "HS256", lifetime: float = 600,
          **extra: Any) -> str:
    now = int(time.time())
    body = {"aud": AUDIENCE, "iat": now, "exp": now + lifetime, **claims, **extra}
    return jwt.encode(body, secret, algorithm=algorithm)


def bearer(claims: dict[str, Any], **kwargs: Any) -> dict[str, str]:
    return {"authorization": f"Bearer {token(claims, **kwargs)}"}


def analyst(region: str, sub: str = "ana") -> dict[str, Any]:
    return {"sub": sub, "roles": ["analyst"], "region": region}


def hand(warehouse: Warehouse, sql: str) -> list[tuple[Any, ...]]:
    """A hand-written query (portable SQL) straight on the warehouse: the answer the layer must agree with."""
    inner = warehouse.inner if isinstance(warehouse, Counting) else warehouse
    return list(inner.run(sql).rows)


class Counting:
    """A real warehouse that counts what reaches it."""

    def __init__(self, inner: Warehouse) -> None:
        self.inner = inner
        self.identity, self.dialect = inner.identity, inner.dialect
        self.statements: list[str] = []

    def run(self, sql: str) -> Table:
        self.statements.append(sql)
        return self.inner.run(sql)

    def arrow(self, sql: str) -> Any:
        self.statements.append(sql)
        return self.inner.arrow(sql)

    def arrow_with(self, sql: str, tables: Any) -> Any:
        self.statements.append(sql)
        return self.inner.arrow_with(sql, tables)

    def close(self) -> None:
        self.inner.close()


class Client:
    """The app over an httpx ASGI transport, called synchronously (one event loop per request)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                return await client.request(method, url, **kwargs)

        return anyio.run(send)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)
