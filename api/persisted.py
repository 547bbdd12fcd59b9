"""Persisted queries: Apollo's automatic persisted queries (the `extensions.persistedQuery` protocol most GraphQL
clients speak), registered documents only, and the `Cache-Control` of answers to GET.

The protocol, for a request whose extensions hold `{"persistedQuery": {"version": 1, "sha256Hash": H}}`:
- without `query`: the document kept under H runs; none is kept: `PersistedQueryNotFound`
  (PERSISTED_QUERY_NOT_FOUND), and the client sends the request again with the document;
- with `query`: its SHA-256 (hex, of the UTF-8 text) must be H, else BAD_QUERY; it is kept under H and runs.
Both POST and GET (`/graphql?extensions=...&variables=...&operationName=...`) speak it, so a client can send the
hash alone by GET, which a CDN can cache.

Documents are kept in the service's cache store (`semantic.store`): the in-process store is bounded by bytes (least
recently used first out), and a Redis store (`--cache redis://...`) shares them among every process, so a document
registered through one worker answers by hash on all.

Registered documents only (`serve --persisted-queries-file FILE`): the file lists the only documents that run, by
hash or by their text; any other is PERSISTED_QUERY_NOT_IN_LIST, and requests register nothing. The file is
Apollo's persisted-query manifest (`{"format": "apollo-persisted-query-manifest", "version": 1, "operations":
[{"id": H, "body": "query ..."}, ...]}`) or a JSON object of hash -> document (Relay's form); every hash is checked
against its document when the server starts.

Cache-Control: an answer to GET without errors may be kept `max_age` seconds (`SEMANTIC_HTTP_MAX_AGE`): `public` when
the request carried no credentials, `private` when it did (a reader's view is theirs alone), with `Vary:
Authorization, X-API-Key`; any answer with errors, and every POST, is `no-store`. GET never runs a mutation.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from api.auth import CREDENTIAL_HEADERS
from semantic.errors import SettingError
from semantic.store import Store

HASH = re.compile(r"^[0-9a-f]{64}$")
PREFIX = "apq:"  # store keys of kept documents


class PersistedQueryError(Exception):
    """A persisted-query request that cannot run: its GraphQL error code, a message and the HTTP status."""

    def __init__(self, code: str, message: str, status: int = 200) -> None:
        super().__init__(message)
        self.code, self.message, self.status = code, message, status


def digest(document: str) -> str:
    """The SHA-256 of a document as the protocol names it: lowercase hex of its UTF-8 bytes.

    >>> digest("{ __typename }")[:16]
    '7f56e67dd21ab3f3'
    """
    return hashlib.sha256(document.encode("utf-8")).hexdigest()


@dataclass
class Documents:
    """Where documents are found by hash: kept by requests in `store`, or only those of `registered`."""

    store: Store
    registered: dict[str, str] | None = None  # hash -> document: these only; None: automatic persisted queries

    def resolve(self, query: Any, extensions: Any) -> Any:
        """The document a request runs: its own `query`, or the one its `persistedQuery` hash names.

        Raises:
            PersistedQueryError: no document under the hash, a hash that is not the document's, a document not
                registered.
        """
        persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
        if persisted is None:
            if self.registered is not None and isinstance(query, str) and digest(query) not in self.registered:
                raise PersistedQueryError("PERSISTED_QUERY_NOT_IN_LIST", "this server runs registered documents "
                                          "only, and this one is not registered; send a registered document or its "
                                          "extensions.persistedQuery.sha256Hash", 400)
            return query
        wanted = _hash_of(persisted)
        if query is not None:
            if not isinstance(query, str) or digest(query) != wanted:
                raise PersistedQueryError("BAD_QUERY", "extensions.persistedQuery.sha256Hash is not the SHA-256 of "
                                          "the document sent (lowercase hex of its UTF-8 bytes)", 400)
            if self.registered is None:
                self.store.put(PREFIX + wanted, query.encode("utf-8"))
            elif wanted not in self.registered:
                raise PersistedQueryError("PERSISTED_QUERY_NOT_IN_LIST", "this server runs registered documents "
                                          "only, and this one is not registered", 400)
            return query
        if self.registered is not None:
            found = self.registered.get(wanted)
            if found is None:
                raise PersistedQueryError("PERSISTED_QUERY_NOT_IN_LIST", f"no registered document has the hash "
                                          f"{wanted}; this server runs registered documents only", 400)
            return found
        kept = self.store.get(PREFIX + wanted)
        if kept is None:
            raise PersistedQueryError("PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
        return kept.decode("utf-8")


def _hash_of(persisted: Any) -> str:
    if not isinstance(persisted, dict) or persisted.get("version", 1) != 1:
        raise PersistedQueryError("BAD_QUERY", "extensions.persistedQuery must be {\"version\": 1, \"sha256Hash\": "
                                  "\"<64 hex digits>\"}", 400)
    wanted = persisted.get("sha256Hash")
    if not isinstance(wanted, str) or not HASH.match(wanted.lower()):
        raise PersistedQueryError("BAD_QUERY", "extensions.persistedQuery.sha256Hash must be the document's SHA-256 "
                                  "as 64 hex digits", 400)
    return wanted.lower()


def read_registered(path: str | Path) -> dict[str, str]:
    """The documents of a persisted-query file, by hash, each checked against its document.

    Raises:
        SettingError: the file cannot be read, is not one of the two forms, or names a document by another hash.
    """
    where = f"persisted queries file {path}"
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise SettingError(f"{where}: cannot read it as JSON ({error})") from None
    if isinstance(data, dict) and "operations" in data:
        operations = data["operations"]
        if not isinstance(operations, list) or not all(isinstance(o, dict) for o in operations):
            raise SettingError(f"{where}: `operations` must be a list of {{\"id\", \"body\"}} objects")
        pairs = [(o.get("id"), o.get("body")) for o in operations]
    elif isinstance(data, dict):
        pairs = list(data.items())
    else:
        raise SettingError(f"{where}: give Apollo's persisted-query manifest or a JSON object of hash -> document")
    found: dict[str, str] = {}
    for key, body in pairs:
        if not isinstance(key, str) or not isinstance(body, str):
            raise SettingError(f"{where}: every entry needs a hash and a document, both strings; got {key!r}")
        if digest(body) != key.lower():
            raise SettingError(f"{where}: {key} is not the SHA-256 of its document (that is {digest(body)})")
        found[key.lower()] = body
    if not found:
        raise SettingError(f"{where}: it registers no document")
    return found


def cache_control(method: str, ok: bool, credentials: bool, max_age: int) -> str:
    """The Cache-Control of a GraphQL answer.

    >>> cache_control("GET", True, False, 60), cache_control("GET", True, True, 60)
    ('public, max-age=60', 'private, max-age=60')
    >>> cache_control("POST", True, False, 60), cache_control("GET", False, False, 60)
    ('no-store', 'no-store')
    """
    if method != "GET" or not ok or max_age <= 0:
        return "no-store"
    return f"{'private' if credentials else 'public'}, max-age={max_age}"


def has_credentials(headers: Any) -> bool:
    """Whether a request carries credentials (a bearer token or an API key), valid or not."""
    return any(headers.get(name) for name in CREDENTIAL_HEADERS)
