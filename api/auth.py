"""Who is asking: JWT bearer tokens and API keys -> an `Access` context, or `Unauthenticated`.

Configuration (environment, read once at start-up):
- `SEMANTIC_JWT_SECRET`: HS256 tokens signed with this secret;
- `SEMANTIC_JWT_PUBLIC_KEY`: the path of a PEM public key: RS256 tokens signed with its private key;
- `SEMANTIC_JWT_AUDIENCE`, `SEMANTIC_JWT_ISSUER`: when set, a token's `aud` / `iss` must match;
- `SEMANTIC_API_KEYS`: the path of a YAML file of `{sha256, principal, roles, attributes}` entries (the hex
  SHA-256 digest of each key: keys are never stored in clear), checked against the `X-API-Key` header.

A token's claims give the context: `sub` the principal, `roles` the roles, every claim an attribute `user.<claim>`;
`exp` and `nbf` are enforced, and only the algorithms configured are accepted (never `none`). With neither tokens
nor keys configured every request is anonymous; with either, a request without valid credentials is refused unless
`allow_anonymous`, and credentials that are present but invalid are always refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from semantic.access import ANONYMOUS, Access
from semantic.errors import QueryError

log = logging.getLogger("semantic.api")
# The request headers that carry credentials (`authenticate` reads them): allowed by CORS, named in Vary, and what
# makes an answer `private` to caches (api/persisted.py). Header names are case-insensitive.
CREDENTIAL_HEADERS = ("Authorization", "X-API-Key")


class Unauthenticated(Exception):
    """No valid credentials: HTTP 401, GraphQL code UNAUTHENTICATED; the message says what was wrong."""

    code = "UNAUTHENTICATED"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AuthConfigError(Exception):
    """The authentication settings themselves are wrong (a missing key file, a bad API key file)."""


@dataclass(frozen=True)
class ApiKey:
    digest: bytes  # SHA-256 of the key
    access: Access


@dataclass(frozen=True)
class Authenticator:
    jwt_secret: str | None = None
    jwt_public_key: str | None = None  # PEM text
    audience: str | None = None
    issuer: str | None = None
    api_keys: tuple[ApiKey, ...] = ()
    allow_anonymous: bool = False
    _keys: dict[str, Any] = field(init=False, repr=False, compare=False, default_factory=dict)

    def __post_init__(self) -> None:
        if self.jwt_secret:
            self._keys["HS256"] = self.jwt_secret
        if self.jwt_public_key:
            try:
                key = serialization.load_pem_public_key(self.jwt_public_key.encode())
            except (ValueError, TypeError) as error:
                raise AuthConfigError(f"SEMANTIC_JWT_PUBLIC_KEY is not a PEM public key: {error}") from None
            if not isinstance(key, rsa.RSAPublicKey):
                raise AuthConfigError("SEMANTIC_JWT_PUBLIC_KEY must be an RSA public key (RS256)")
            self._keys["RS256"] = key

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, *, allow_anonymous: bool = False) -> Authenticator:
        env = os.environ if environ is None else environ
        public_key = None
        if env.get("SEMANTIC_JWT_PUBLIC_KEY"):
            path = Path(env["SEMANTIC_JWT_PUBLIC_KEY"])
            try:
                public_key = path.read_text()
            except OSError as error:
                raise AuthConfigError(f"SEMANTIC_JWT_PUBLIC_KEY: cannot read {path}: {error.strerror}") from None
        keys = read_api_keys(Path(env["SEMANTIC_API_KEYS"])) if env.get("SEMANTIC_API_KEYS") else ()
        return cls(env.get("SEMANTIC_JWT_SECRET") or None, public_key, env.get("SEMANTIC_JWT_AUDIENCE") or None,
                   env.get("SEMANTIC_JWT_ISSUER") or None, keys, allow_anonymous)

    @property
    def configured(self) -> bool:
        return bool(self._keys or self.api_keys)

    def authenticate(self, headers: Mapping[str, str]) -> Access:
        """The context of a request from its headers; raises Unauthenticated."""
        if not self.configured:
            return ANONYMOUS
        authorization = headers.get("authorization")
        api_key = headers.get("x-api-key")
        if authorization is not None:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise Unauthenticated("the Authorization header must be `Bearer <token>`")
            return self.from_token(token.strip())
        if api_key is not None:
            return self.from_api_key(api_key)
        if self.allow_anonymous:
            return ANONYMOUS
        raise Unauthenticated("credentials required: send `Authorization: Bearer <token>` or `X-API-Key: <key>`")

    def from_token(self, token: str) -> Access:
        if not self._keys:
            raise Unauthenticated("bearer tokens are not accepted here; use an API key (X-API-Key)")
        try:
            algorithm = jwt.get_unverified_header(token).get("alg")
        except jwt.PyJWTError:
            raise Unauthenticated("the bearer token is not a JWT") from None
        if algorithm not in self._keys:
            accepted = ", ".join(sorted(self._keys))
            raise Unauthenticated(f"tokens signed with {algorithm!r} are not accepted; use {accepted}")
        try:
            claims = jwt.decode(token, self._keys[algorithm], algorithms=[algorithm], audience=self.audience,
                                issuer=self.issuer, options={"verify_aud": self.audience is not None})
        except jwt.ExpiredSignatureError:
            raise Unauthenticated("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthenticated("the token is not valid yet (nbf)") from None
        except jwt.InvalidAudienceError:
            raise Unauthenticated("the token is for another audience") from None
        except jwt.InvalidIssuerError:
            raise Unauthenticated("the token is from another issuer") from None
        except jwt.PyJWTError:
            raise Unauthenticated("the token's signature or claims are not valid") from None
        try:
            return Access.from_claims(claims)
        except QueryError as error:
            raise Unauthenticated(f"the token's claims are not usable: {error.message}") from None

    def from_api_key(self, key: str) -> Access:
        digest = hashlib.sha256(key.encode()).digest()
        found = None
        for entry in self.api_keys:  # every entry compared, in constant time each
            if hmac.compare_digest(entry.digest, digest):
                found = entry
        if found is None:
            raise Unauthenticated("the API key is not valid")
        return found.access


def read_api_keys(path: Path) -> tuple[ApiKey, ...]:
    """The entries of an API key file: a list (or `keys:` holding one) of {sha256, principal, roles, attributes}."""
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise AuthConfigError(f"SEMANTIC_API_KEYS: cannot read {path}: {error.strerror}") from None
    except yaml.YAMLError as error:
        raise AuthConfigError(f"SEMANTIC_API_KEYS: {path} is not YAML: {error}") from None
    entries = document.get("keys") if isinstance(document, dict) else document
    if not isinstance(entries, list):
        raise AuthConfigError(f"SEMANTIC_API_KEYS: {path} must hold a list of {{sha256, principal, roles, "
                              f"attributes}} entries")
    keys = []
    for number, entry in enumerate(entries, 1):
        where = f"SEMANTIC_API_KEYS: {path}, entry {number}"
        if not isinstance(entry, dict):
            raise AuthConfigError(f"{where} must be a mapping")
        digest = str(entry.get("sha256", "")).lower()
        if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
            raise AuthConfigError(f"{where}: `sha256` must be the 64-character hex digest of the key "
                                  f"(e.g. `printf %s KEY | sha256sum`)")
        attributes = entry.get("attributes") or {}
        if not isinstance(attributes, dict):
            raise AuthConfigError(f"{where}: `attributes` must be a mapping")
        try:
            access = Access.from_claims({**attributes, "sub": entry.get("principal"),
                                         "roles": entry.get("roles") or []})
        except QueryError as error:
            raise AuthConfigError(f"{where}: {error.message}") from None
        keys.append(ApiKey(bytes.fromhex(digest), access))
    return tuple(keys)
