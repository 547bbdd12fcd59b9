"""What an operator sees: a request id on every log line and response, an access log, structured (JSON) logs,
and Prometheus metrics.

Metrics live in prometheus-client's default registry, one set per process (`serve --workers N` has N sets, as
Prometheus expects of separate targets). Warehouse statements are measured by wrapping the service's warehouse
(`metered`); the result cache counts its own hits, misses, roll-ups and in-flight joins (`semantic/metrics.py`),
since only it knows where an answer came from.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from semantic.execute import Table, Warehouse

if TYPE_CHECKING:
    from semantic.service import Service

T = TypeVar("T")

REQUEST_ID_HEADER = "x-request-id"
request_id: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")
access_log = logging.getLogger("semantic.access")

REQUESTS = Counter("semantic_http_requests_total", "HTTP requests by route and status.", ["route", "method", "status"])
LATENCY = Histogram("semantic_http_request_duration_seconds", "HTTP request latency by route.", ["route"],
                    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
STATEMENTS = Counter("semantic_warehouse_statements_total", "Statements sent to the warehouse, by outcome.",
                     ["outcome"])
STATEMENT_SECONDS = Histogram("semantic_warehouse_statement_duration_seconds", "Warehouse statement duration.",
                              buckets=(0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60))
ERRORS = Counter("semantic_errors_total", "Errors returned to clients, by code.", ["code"])


def count_error(code: str) -> None:
    ERRORS.labels(code=code).inc()


# -- logs --------------------------------------------------------------------------------------------------------

class _RequestId(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request id, message, and the fields passed as `extra`."""

    _STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "request_id"}

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(), "logger": record.name,
            "request_id": getattr(record, "request_id", "-"), "message": record.getMessage(),
        }
        line.update({k: v for k, v in vars(record).items() if k not in self._STANDARD})
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Root logging for `semantic serve`: every line carries the request id it was written for."""
    handler = logging.StreamHandler()
    handler.addFilter(_RequestId())
    if fmt == "json":
        formatter: logging.Formatter = JsonFormatter()
    else:
        formatter = logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
    formatter.converter = time.gmtime
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # ours replaces uvicorn's access log
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = name != "uvicorn.access"


# -- the outermost middleware --------------------------------------------------------------------------------------

_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class Observe:
    """Outermost ASGI middleware: picks the request id (the client's `X-Request-ID` when it is a plain token, else a
    new one), sets it for every log line, returns it as a header, writes the access log line and the request
    metrics. `route` is the route's path template, so `/features/{entity}` is one series, not one per entity."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER.encode(), b"").decode("latin-1")
        rid = given if _ID.match(given) else uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status, size = 500, 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, size
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (REQUEST_ID_HEADER.encode(), rid.encode())]
            elif message["type"] == "http.response.body":
                size += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            route = _route_of(scope)
            REQUESTS.labels(route=route, method=scope["method"], status=str(status)).inc()
            LATENCY.labels(route=route).observe(elapsed)
            access_log.info("%s %s %s %.1fms %dB", scope["method"], scope["path"], status, elapsed * 1000, size,
                            extra={"method": scope["method"], "path": scope["path"], "status": status,
                                   "duration_ms": round(elapsed * 1000, 3), "bytes": size,
                                   "client": (scope.get("client") or ("-",))[0]})
            request_id.reset(token)


def _route_of(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return str(path) if path else "unmatched"


async def metrics_route(request: Request) -> Response:
    return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)


# -- measured warehouse and cache ---------------------------------------------------------------------------------

def _timed(run: Callable[[], T]) -> T:
    started = time.perf_counter()
    try:
        value = run()
    except BaseException:
        STATEMENTS.labels(outcome="error").inc()
        raise
    finally:
        STATEMENT_SECONDS.observe(time.perf_counter() - started)
    STATEMENTS.labels(outcome="ok").inc()
    return value


class MeteredWarehouse:
    """A warehouse that counts and times its statements; everything else is the wrapped warehouse's."""

    def __init__(self, inner: Warehouse) -> None:
        self.inner = inner
        self.identity = inner.identity
        self.dialect = inner.dialect

    def run(self, sql: str) -> Table:
        return _timed(lambda: self.inner.run(sql))

    def arrow(self, sql: str) -> pa.Table:
        return _timed(lambda: self.inner.arrow(sql))

    def arrow_with(self, sql: str, tables: Mapping[str, pa.Table]) -> pa.Table:
        return _timed(lambda: self.inner.arrow_with(sql, tables))

    def close(self) -> None:
        self.inner.close()

    def __getattr__(self, name: str) -> Any:
        if name == "arrow_all":  # statements on one snapshot (a training set on DuckDB): timed as one
            together = getattr(self.inner, name)
            return lambda sqls, tables: _timed(lambda: together(sqls, tables))
        return getattr(self.inner, name)


def metered(service: Service) -> None:
    """Measure the service's warehouse statements (once; the app calls this)."""
    if service.warehouse is not None and not isinstance(service.warehouse, MeteredWarehouse):
        service.warehouse = MeteredWarehouse(service.warehouse)
