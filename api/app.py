"""The Starlette app: GraphQL at /graphql (GraphiQL in a browser), a health check at /healthz.

Middleware order, outermost first: none yet; the GraphQL handler maps every error to a GraphQL error with a code.
The warehouse opens in `lifespan` and closes with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from api.schema import build_schema
from semantic.errors import SemanticError
from semantic.service import Service

SCOPE_HEADER = "x-semantic-scope"


class _GraphQL(GraphQL):  # type: ignore[type-arg]
    def __init__(self, service: Service) -> None:
        super().__init__(build_schema(service.model), graphql_ide="graphiql", allow_queries_via_get=True)
        self.service = service

    async def get_context(self, request: Request | WebSocket, response: Any) -> dict[str, Any]:
        # The access scope keys the result cache, so one scope's rows are never served to another.
        return {"service": self.service, "scope": request.headers.get(SCOPE_HEADER, ""), "request": request}


def create_app(service: Service) -> Starlette:
    """An app serving one model on one warehouse."""

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
        yield
        if service.warehouse is not None:
            service.warehouse.close()

    graphql = _GraphQL(service)
    return Starlette(
        routes=[Route("/graphql", graphql, methods=["GET", "POST"]), Route("/healthz", healthz)],
        lifespan=lifespan,
    )
