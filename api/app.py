"""The Starlette app: GraphQL at /graphql (GraphiQL in a browser), feature lookups and training sets under
/features (see `api/features.py`), a health check at /healthz, Prometheus metrics at /metrics, GraphiQL's assets and
the model's dashboard, if it has one (`api/pages.py`).

Middleware order, outermost first:
1. `Observe` (api/observe.py): request id (header and every log line), access log, request metrics. Outermost, so
   it sees every response, CORS refusals and preflights included, and times the whole request.
2. CORS (`cors_origins`; none: no CORS headers, browsers keep to same-origin): answers preflights before any work.
3. `Admission` (api/admission.py): body size, concurrency cap with a bounded queue (503 with Retry-After).
4. GZip (level 6) for responses of 1 kB or more, when the client accepts it: innermost, so the access log counts the
   bytes actually sent.
Then the routes; the GraphQL handler maps every error to a GraphQL error with a code.
The warehouse closes with `lifespan`, which also keeps the feature snapshots fresh in the background.

The event loop only accepts and sends: a GraphQL request (parsing, validation, resolving, shaping the rows and
encoding the JSON) runs on an event loop of its own in a worker thread, so a response of 300,000 rows being built
never holds up /healthz or any other request.

Every route but /healthz, /metrics and the static pages first authenticates the request (`api/auth.py`) into an
`Access` context, or answers 401 and runs nothing. GraphQL is served from a schema per distinct view shape (the
members a reader's roles may see), built on first use and kept in a bounded cache, so hidden members are absent from
introspection. A GraphQL request may name its document by hash alone (automatic persisted queries, or registered
documents only: `api/persisted.py`); answers to GET carry a Cache-Control a CDN can follow, other answers `no-store`.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from cachetools import LRUCache
from cross_web import HTTPException
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.http import GraphQLRequestData
from strawberry.types.unset import UNSET

from api.admission import Admission
from api.auth import CREDENTIAL_HEADERS, Authenticator, Unauthenticated
from api.errors import classify, log_detail, to_graphql
from api.features import lookup, refresh, training
from api.observe import REQUEST_ID_HEADER, Observe, metered, metrics_route
from api.pages import graphiql_html
from api.pages import routes as page_routes
from api.persisted import Documents, PersistedQueryError, cache_control, has_credentials, read_registered
from api.schema import MAX_ROWS, build_schema
from semantic import settings
from semantic.access import ANONYMOUS, Access
from semantic.errors import SemanticError
from semantic.integrity import KeyGuard
from semantic.online import OnlineStore
from semantic.service import Service

log = logging.getLogger("semantic.api")


ACCESS = "semantic.access"  # the ASGI scope key holding the request's Access context
ANSWERED = "semantic.answered"  # ... and whether the GraphQL answer has no errors (Cache-Control)


class _GraphQL(GraphQL[dict[str, Any], None]):
    def __init__(self, service: Service, online: OnlineStore, access: Access, max_rows: int,
                 documents: Documents) -> None:
        super().__init__(build_schema(service.view(access).model), graphql_ide="graphiql",
                         allow_queries_via_get=True)
        self.service = service
        self.online = online
        self.max_rows = max_rows
        self.documents = documents  # persisted queries (api/persisted.py)

    def should_render_graphql_ide(self, request: Any) -> bool:
        """GraphiQL for a browser's plain GET; a GET naming its document by hash alone is a query."""
        return super().should_render_graphql_ide(request) and "extensions" not in request.query_params

    async def parse_http_body(self, request: Any) -> Any:
        """The request, its document found by `extensions.persistedQuery` where it names one by hash."""
        data = await super().parse_http_body(request)
        if isinstance(data, GraphQLRequestData):
            data.query = self.documents.resolve(data.query, data.extensions)
        return data

    @property
    def graphql_ide_html(self) -> str:  # strawberry's page, its assets served by us (api/pages.py)
        return graphiql_html()

    async def get_context(self, request: Request | WebSocket, response: Any) -> dict[str, Any]:
        return {"service": self.service, "online": self.online, "access": request.scope[ACCESS],
                "request": request, "max_rows": self.max_rows}

    async def process_result(self, request: Request, result: Any) -> Any:
        # An error raised inside an extension's parsing hook (the parser cache parses there) skips the
        # ErrorCodes extension; every error leaves with a code all the same.
        if result.errors:
            result.errors = [e if (e.extensions or {}).get("code") else to_graphql(e) for e in result.errors]
        request.scope[ANSWERED] = not result.errors  # read for Cache-Control
        return await super().process_result(request, result)

    async def run(self, request: Request | WebSocket, context: Any = UNSET, root_value: Any = UNSET) -> Any:
        """The whole request on a worker thread's own event loop (the body is read first, here, so that loop never
        touches the socket); only a WebSocket stays on the server's loop."""
        if isinstance(request, WebSocket):
            return await super().run(request, context, root_value)
        await request.body()
        run = functools.partial(super().run, request, context, root_value)
        try:
            response: Response = await anyio.to_thread.run_sync(_on_worker_loop, run)
        except PersistedQueryError as error:
            return _graphql_error(error.status, error.code, error.message)
        except HTTPException as error:
            return _graphql_error(error.status_code, "BAD_REQUEST", error.reason)
        except (UnicodeDecodeError, ValueError):  # a body that is not UTF-8, or JSON strawberry cannot read
            return _graphql_error(400, "BAD_REQUEST", "the request body is not UTF-8 JSON: send a JSON object "
                                  "with `query` (and optionally `variables`, `operationName`)")
        except RecursionError:
            code, message = classify(RecursionError()) or ("BAD_QUERY", "nested too deeply")
            return _graphql_error(400, code, message)
        if "text/html" not in response.headers.get("content-type", ""):  # GraphiQL's page is not an answer
            response.headers["cache-control"] = cache_control(
                request.method, request.scope.get(ANSWERED, False), has_credentials(request.headers),
                int(settings.current().http_max_age))
            response.headers["vary"] = ", ".join(CREDENTIAL_HEADERS)
        return response


class _Loop:
    """A worker thread's event loop, closed when the thread ends (its thread-local holder goes then)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def __del__(self) -> None:
        self.loop.close()


_LOOPS = threading.local()


def _worker_loop() -> asyncio.AbstractEventLoop:
    """This worker thread's event loop, made on first use and kept."""
    holder = getattr(_LOOPS, "holder", None)
    if holder is None:
        holder = _LOOPS.holder = _Loop()
    return holder.loop


def _on_worker_loop(make: Any) -> Any:
    """Run the coroutine `make()` on this worker thread's event loop. The loop's holder stays out of this frame: an
    error raised here keeps the frame in its traceback, in a reference cycle that only the cyclic GC frees, at any
    later time and in any thread; a holder kept there would leave the loop (an epoll, a socket pair) open after the
    thread ends, then have the GC finalize the loop, its sockets and the holder in no set order (an "unclosed" warning
    when the holder is not first)."""
    return _worker_loop().run_until_complete(make())


def _graphql_error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"errors": [{"message": message, "extensions": {"code": code}}]}, status_code=status,
                        headers={"cache-control": "no-store"})


def unauthenticated(error: Unauthenticated, graphql: bool = False) -> JSONResponse:
    """401, as a GraphQL error on /graphql and as the feature routes' JSON error elsewhere."""
    body: dict[str, Any] = {"errors": [{"message": error.message, "extensions": {"code": error.code}}]} \
        if graphql else {"error": {"code": error.code, "message": error.message}}
    return JSONResponse(body, status_code=401, headers={"www-authenticate": "Bearer"})


class _Graphs:
    """/graphql: authenticate, then hand the request to the GraphQL app of the reader's schema."""

    def __init__(self, service: Service, online: OnlineStore, auth: Authenticator, max_rows: int,
                 documents: Documents, maxsize: int = 32) -> None:
        self.service, self.online, self.auth, self.max_rows = service, online, auth, max_rows
        self.documents = documents
        self.apps: LRUCache[str, _GraphQL] = LRUCache(maxsize=maxsize)
        # The schema of readers without roles, built now: a model without policies needs no other.
        self.apps[service.view(ANONYMOUS).shape] = _GraphQL(service, online, ANONYMOUS, max_rows, documents)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            access = self.auth.authenticate(Request(scope).headers)
        except Unauthenticated as error:
            await unauthenticated(error, graphql=True)(scope, receive, send)
            return
        shape = self.service.view(access).shape
        app = self.apps.get(shape)
        if app is None:  # building a schema takes a while: off the event loop
            app = await anyio.to_thread.run_sync(lambda: _GraphQL(self.service, self.online, access, self.max_rows,
                                                                  self.documents))
            self.apps[shape] = app
        scope[ACCESS] = access
        await app(scope, receive, send)


def create_app(service: Service, *, snapshot_max_age: float = 60.0, auth: Authenticator | None = None,
               max_rows: int = MAX_ROWS, cors_origins: Sequence[str] = ()) -> Starlette:
    """An app serving one model on one warehouse; latest feature values come from snapshots at most
    `snapshot_max_age` seconds old, rebuilt in the background. `auth` checks credentials (default: anonymous).
    A request returns at most `max_rows` rows per field and says when it was cut; browsers on `cors_origins` may
    call it."""
    if max_rows < 1:
        raise ValueError(f"max_rows must be at least 1, got {max_rows}")
    metered(service)
    online = OnlineStore(service, max_age=snapshot_max_age)
    auth = auth if auth is not None else Authenticator()
    if service.integrity is None and service.warehouse is not None:
        service.integrity = KeyGuard(service.warehouse)
    if service.integrity is not None:  # every relationship target's key, now; queries re-check what they join
        for problem in service.integrity.check_model(service.model):
            log.warning("%s", problem)
    health_threads = anyio.CapacityLimiter(2)  # its own threads: busy requests never hold up the health check

    async def healthz(request: Request) -> JSONResponse:
        if service.warehouse is None:
            return JSONResponse({"status": "unavailable", "error": "no warehouse configured"}, status_code=503)
        warehouse = service.warehouse
        try:  # straight to the warehouse: a cached answer would say nothing about its health
            await anyio.to_thread.run_sync(lambda: warehouse.run("SELECT 1"), limiter=health_threads)
        except SemanticError as error:
            log_detail(error)
            return JSONResponse({"status": "unavailable", "error": {"code": error.code, "message": error.message}},
                                status_code=503)
        if auth.configured:  # open to probes without credentials, so it says nothing about the model
            return JSONResponse({"status": "ok"})
        return JSONResponse({"status": "ok", "model": service.model.name})

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(_keep_fresh, online)
            yield
            tasks.cancel_scope.cancel()
        if service.warehouse is not None:
            service.warehouse.close()

    async def training_route(request: Request) -> Response:
        try:
            access = auth.authenticate(request.headers)
        except Unauthenticated as error:
            return unauthenticated(error)
        return await training(service, request, access)

    async def lookup_route(request: Request) -> Response:
        try:
            access = auth.authenticate(request.headers)
        except Unauthenticated as error:
            return unauthenticated(error)
        return await lookup(online, request, access)

    async def refresh_route(request: Request) -> Response:
        try:
            access = auth.authenticate(request.headers)
        except Unauthenticated as error:
            return unauthenticated(error)
        return await refresh(online, request, access)

    registered = settings.current().persisted_queries_file
    documents = Documents(service.cache.store, read_registered(registered) if registered else None)
    graphql = _Graphs(service, online, auth, max_rows, documents)
    middleware = [Middleware(Observe)]
    if cors_origins:
        middleware.append(Middleware(CORSMiddleware, allow_origins=list(cors_origins), allow_methods=["GET", "POST"],
                                     allow_headers=["content-type", *CREDENTIAL_HEADERS, REQUEST_ID_HEADER],
                                     expose_headers=[REQUEST_ID_HEADER], max_age=600))
    middleware.append(Middleware(Admission, settings=settings.current()))
    # Level 6 (zlib's own default), not Starlette's 9: on the typed body of 100k rows (8.7 MB of JSON) level 9
    # compressed for 556 ms and level 6 for 169 ms, for 0.64 MB against 0.68 MB; past 6 each level costs much time
    # for little size, and level 1 (76 ms) sent 0.86 MB (docs/benchmarks.md).
    middleware.append(Middleware(GZipMiddleware, minimum_size=1000, compresslevel=6))
    app = Starlette(
        middleware=middleware,
        routes=[Route("/graphql", graphql, methods=["GET", "POST"]), Route("/healthz", healthz),
                Route("/metrics", metrics_route),
                Route("/features/{entity}", lookup_route, methods=["GET"]),
                Route("/features/{entity}/refresh", refresh_route, methods=["POST"]),
                Route("/features/{entity}/training", training_route, methods=["POST"]),
                *page_routes(service.model.source)],
        lifespan=lifespan,
    )
    app.state.online = online
    return app


async def _keep_fresh(online: OnlineStore) -> None:
    """Rebuild every snapshot in use before it goes stale, so lookups of the latest values never wait for one."""
    while True:
        await anyio.sleep(max(online.max_age * 0.8, 1.0))
        for entity, names, access in online.slots():
            try:
                await anyio.to_thread.run_sync(functools.partial(online.snapshot, entity, names, access,
                                                                 refresh=True))
            except Exception:
                log.exception("refreshing the %s snapshot failed", entity)
