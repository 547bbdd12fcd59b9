"""The Starlette app: GraphQL at /graphql (GraphiQL in a browser), feature lookups and training sets under
/features (see `api/features.py`), a health check at /healthz.

Middleware order, outermost first: none yet; the GraphQL handler maps every error to a GraphQL error with a code.
The warehouse closes with `lifespan`, which also keeps the feature snapshots fresh in the background.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from api.features import SCOPE_HEADER, lookup, refresh, training
from api.schema import build_schema
from semantic.errors import SemanticError
from semantic.online import OnlineStore
from semantic.service import Service

log = logging.getLogger("semantic.api")


class _GraphQL(GraphQL[dict[str, Any], None]):
    def __init__(self, service: Service, online: OnlineStore) -> None:
        super().__init__(build_schema(service.model), graphql_ide="graphiql", allow_queries_via_get=True)
        self.service = service
        self.online = online

    async def get_context(self, request: Request | WebSocket, response: Any) -> dict[str, Any]:
        # The access scope keys the result cache, so one scope's rows are never served to another.
        return {"service": self.service, "online": self.online, "scope": request.headers.get(SCOPE_HEADER, ""),
                "request": request}


def create_app(service: Service, *, snapshot_max_age: float = 60.0) -> Starlette:
    """An app serving one model on one warehouse; latest feature values come from snapshots at most
    `snapshot_max_age` seconds old, rebuilt in the background."""
    online = OnlineStore(service, max_age=snapshot_max_age)

    async def healthz(request: Request) -> JSONResponse:
        if service.warehouse is None:
            return JSONResponse({"status": "unavailable", "error": "no warehouse configured"}, status_code=503)
        warehouse = service.warehouse
        try:  # straight to the warehouse: a cached answer would say nothing about its health
            await anyio.to_thread.run_sync(lambda: warehouse.run("SELECT 1"))
        except SemanticError as error:
            return JSONResponse({"status": "unavailable", "error": error.message}, status_code=503)
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
        return await training(service, request)

    async def lookup_route(request: Request) -> Response:
        return await lookup(online, request)

    async def refresh_route(request: Request) -> Response:
        return await refresh(online, request)

    graphql = _GraphQL(service, online)
    return Starlette(
        routes=[Route("/graphql", graphql, methods=["GET", "POST"]), Route("/healthz", healthz),
                Route("/features/{entity}", lookup_route, methods=["GET"]),
                Route("/features/{entity}/refresh", refresh_route, methods=["POST"]),
                Route("/features/{entity}/training", training_route, methods=["POST"])],
        lifespan=lifespan,
    )


async def _keep_fresh(online: OnlineStore) -> None:
    """Rebuild every snapshot in use before it goes stale, so lookups of the latest values never wait for one."""
    while True:
        await anyio.sleep(max(online.max_age * 0.8, 1.0))
        for entity, names, scope in online.slots():
            try:
                await anyio.to_thread.run_sync(functools.partial(online.snapshot, entity, names, scope, refresh=True))
            except Exception:
                log.exception("refreshing the %s snapshot failed", entity)
