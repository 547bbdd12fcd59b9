"""The Starlette app: GraphQL at /graphql (GraphiQL in a browser), training sets at /features/{entity}/training,
a health check at /healthz.

Middleware order, outermost first: none yet; the GraphQL handler maps every error to a GraphQL error with a code.
The warehouse opens in `lifespan` and closes with it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL

from api.schema import build_schema
from semantic.errors import SemanticError, WarehouseError
from semantic.features.training import format_of, ipc_stream, read_spine
from semantic.service import Service

SCOPE_HEADER = "x-semantic-scope"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
log = logging.getLogger("semantic.api")


class _GraphQL(GraphQL[dict[str, Any], None]):
    def __init__(self, service: Service) -> None:
        super().__init__(build_schema(service.model), graphql_ide="graphiql", allow_queries_via_get=True)
        self.service = service

    async def get_context(self, request: Request | WebSocket, response: Any) -> dict[str, Any]:
        # The access scope keys the result cache, so one scope's rows are never served to another.
        return {"service": self.service, "scope": request.headers.get(SCOPE_HEADER, ""), "request": request}


def _error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


async def _training(service: Service, request: Request) -> Response:
    """POST a spine (Arrow IPC stream, Parquet or CSV, by content type); get the training set as an Arrow IPC
    stream. Query parameters: `feature` (repeatable; default all), `time_column` (default event_timestamp).

    Errors are JSON `{"error": {"code", "message"}}`: 400 for a body that cannot be read as its content type, 422
    for a spine or request the model refuses, 503 when the warehouse fails.
    """
    entity = request.path_params["entity"]
    try:
        fmt = format_of(request.headers.get("content-type", ""), "the body")
        body = await request.body()
        spine = read_spine(body, fmt, service.model, entity)
    except SemanticError as error:
        return _error(400, error.code, error.message)
    names = request.query_params.getlist("feature") or None
    time_column = request.query_params.get("time_column", "event_timestamp")
    try:
        table = await anyio.to_thread.run_sync(
            lambda: service.training_set(entity, spine, names, time_column=time_column))
    except WarehouseError as error:
        return _error(503, error.code, error.message)
    except SemanticError as error:
        return _error(422, error.code, error.message)
    except Exception:
        log.exception("unexpected error in a training set of %s", entity)
        return _error(500, "INTERNAL", "Internal error; the server log has the details.")
    return StreamingResponse(ipc_stream(table), media_type=ARROW_STREAM,
                             headers={"x-semantic-rows": str(table.num_rows)})


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

    async def training(request: Request) -> Response:
        return await _training(service, request)

    graphql = _GraphQL(service)
    return Starlette(
        routes=[Route("/graphql", graphql, methods=["GET", "POST"]), Route("/healthz", healthz),
                Route("/features/{entity}/training", training, methods=["POST"])],
        lifespan=lifespan,
    )
