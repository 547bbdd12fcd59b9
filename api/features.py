"""Feature routes: online lookups (`GET /features/{entity}`), snapshot refresh and training sets over HTTP.

Errors are JSON `{"error": {"code", "message"}}`: 400 for a request that cannot be read, 401 without valid
credentials, 403 for a reader the policies refuse, 413 past a size limit, 422 for a request the model refuses, 503
when the warehouse fails; never a stack trace.
"""

from __future__ import annotations

import logging
from datetime import date, datetime
from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from api.errors import REQUEST_ID, classify, internal_message, log_detail
from api.observe import count_error
from semantic import settings
from semantic.access import Access
from semantic.errors import ForbiddenError, LimitError, SemanticError, WarehouseError
from semantic.features.request import FeatureRequest, feature_names, keys_from_text
from semantic.features.training import format_of, ipc_stream, read_spine
from semantic.online import OnlineStore
from semantic.service import Service

ARROW_STREAM = "application/vnd.apache.arrow.stream"
log = logging.getLogger("semantic.api")


def _error(status: int, code: str, message: str) -> JSONResponse:
    count_error(code)
    return JSONResponse({"error": {"code": code, "message": message}}, status_code=status)


def _failed(error: BaseException, what: str) -> JSONResponse:
    """The one mapping of a failure to a response: 503 for the warehouse, 403 for a reader the policies refuse,
    422 for a request the model refuses, 400 for input that cannot be read, and a masked 500 (logged with the
    request id) for a real bug."""
    if isinstance(error, WarehouseError):
        log_detail(error)
        return _error(503, error.code, error.message)
    if isinstance(error, SemanticError):
        return _error(403 if isinstance(error, ForbiddenError) else 422, error.code, error.message)
    known = classify(error)
    if known is not None:
        return _error(400, *known)
    log.error("request %s: unexpected error in %s", REQUEST_ID.get(), what, exc_info=error)
    return _error(500, "INTERNAL", internal_message())


async def training(service: Service, request: Request, access: Access) -> Response:
    """POST a spine (Arrow IPC stream, Parquet or CSV, by content type); get the training set as an Arrow IPC
    stream. Query parameters: `feature` (repeatable; default all), `time_column` (default event_timestamp).

    Errors are JSON `{"error": {"code", "message"}}`: 400 for a body that cannot be read as its content type, 422
    for a spine or request the model refuses (413 past the upload limit or `max_spine_rows`), 503 when the
    warehouse fails.
    """
    entity = request.path_params["entity"]
    limit = int(settings.current().max_spine_rows)
    try:
        fmt = format_of(request.headers.get("content-type", ""), "the body")
        body = await request.body()
        model = service.view(access).model
        spine = await anyio.to_thread.run_sync(lambda: read_spine(body, fmt, model, entity, limit))
    except LimitError as error:
        return _error(413, error.code, error.message)
    except SemanticError as error:
        return _error(400, error.code, error.message)
    names = request.query_params.getlist("feature") or None
    time_column = request.query_params.get("time_column", "event_timestamp")
    try:
        table = await anyio.to_thread.run_sync(
            lambda: service.training_set(entity, spine, names, time_column=time_column, access=access))
    except Exception as error:  # noqa: BLE001 - every failure becomes a response; _failed logs the unexpected
        return _failed(error, f"a training set of {entity}")
    return StreamingResponse(ipc_stream(table), media_type=ARROW_STREAM,
                             headers={"x-semantic-rows": str(table.num_rows)})


def _json(value: Any) -> Any:
    return value.isoformat() if isinstance(value, date | datetime) else value


async def lookup(online: OnlineStore, request: Request, access: Access) -> Response:
    """`GET /features/customer?key=1&key=2[&feature=NAME...][&at=ISO time]`: one row per key, in order, as
    `{"at", "columns", "rows"}`. Without `at`, the latest values (from a snapshot; `at` says as of when)."""
    entity = request.path_params["entity"]
    params = request.query_params
    try:
        at = datetime.fromisoformat(params["at"]) if "at" in params else None
    except ValueError:
        return _error(400, "BAD_QUERY", f"at={params['at'][:64]!r} is not an ISO 8601 date or date-time")
    try:
        model = online.service.view(access).model  # a feature hidden from this reader does not exist
        keys = keys_from_text(model, entity, params.getlist("key"))
        feature_request = FeatureRequest.create(model, entity, keys, params.getlist("feature") or None, at)
        result = online.from_memory(feature_request, access)
        if result is None:  # not all in memory: the lookup may query the warehouse, so off the event loop
            result = await anyio.to_thread.run_sync(lambda: online.lookup(feature_request, access))
        body = {"at": _json(feature_request.at) if feature_request.at else result.cache_key,
                "columns": [{"name": c.name, "type": c.type} for c in result.columns],
                "rows": [[_json(v) for v in row] for row in result.rows]}
    except Exception as error:  # noqa: BLE001 - every failure becomes a response; _failed logs the unexpected
        return _failed(error, f"a feature lookup of {entity}")
    return JSONResponse(body)


async def refresh(online: OnlineStore, request: Request, access: Access) -> Response:
    """`POST /features/customer/refresh[?feature=NAME...]`: rebuild the snapshot of the latest values now."""
    entity = request.path_params["entity"]
    try:
        _, names = feature_names(online.service.view(access).model, entity,
                                 request.query_params.getlist("feature") or None)
        snapshot = await anyio.to_thread.run_sync(lambda: online.snapshot(entity, names, access, refresh=True))
    except Exception as error:  # noqa: BLE001 - every failure becomes a response; _failed logs the unexpected
        return _failed(error, f"a snapshot refresh of {entity}")
    return JSONResponse({"entity": entity, "at": snapshot.at.isoformat(), "keys": len(snapshot.rows),
                         "seconds": round(snapshot.seconds, 3)})
