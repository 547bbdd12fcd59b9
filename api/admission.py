"""Admission: what a request must pass before a handler sees it. A pure ASGI middleware (it never buffers a
response), in this order:

1. the body size: a declared `content-length` over the limit is refused at once, a streamed body as soon as it
   passes it (413, LIMIT_EXCEEDED), before any handler reads it; training-set uploads have their own, larger limit;
2. a per-process concurrency cap: at most `max_concurrent` requests are worked on, `max_queued` more wait their
   turn, and past that a request gets 503 with `Retry-After` (OVERLOADED). /healthz skips the queue, so it answers
   while the process is busy.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import anyio

from api.limits import limit_hint
from semantic.settings import Settings

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

UNQUEUED = ("/healthz",)  # answers must not wait behind the work they report on


async def _reply(send: Send, status: int, code: str, message: str, path: str,
                 headers: tuple[tuple[bytes, bytes], ...] = ()) -> None:
    """An error in the shape of the route: GraphQL's `errors` list, else `{"error": {...}}` (the request id
    header comes from `api.observe.Observe`, outside)."""
    body: dict[str, Any] = {"errors": [{"message": message, "extensions": {"code": code}}]} \
        if path.startswith("/graphql") else {"error": {"code": code, "message": message}}
    data = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(data)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": data})


class Admission:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings
        self.slots = anyio.Semaphore(max(int(settings.max_concurrent), 1))
        self.waiting = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # The request id is already set by `api.observe.Observe`, the outermost middleware.
        await self._admit(scope, receive, send, dict(scope.get("headers") or ()))

    async def _admit(self, scope: Scope, receive: Receive, send: Send, headers: dict[bytes, bytes]) -> None:
        path = scope.get("path", "")
        name = "max_upload_bytes" if path.endswith("/training") else "max_body_bytes"
        limit = int(self.settings.values[name])
        too_large = (f"the request body is over the limit of {limit:,} bytes ({name}); send less, or "
                     f"{limit_hint(name)}")
        declared = headers.get(b"content-length", b"")
        if limit and declared.isdigit() and int(declared) > limit:
            await _reply(send, 413, "LIMIT_EXCEEDED", too_large, path)
            return
        chunks: list[bytes] = []
        received, more = 0, True
        while more:  # read the body here, so a body over the limit never reaches a handler
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            chunks.append(message.get("body", b""))
            received += len(chunks[-1])
            if limit and received > limit:
                await _reply(send, 413, "LIMIT_EXCEEDED", too_large, path)
                return
            more = message.get("more_body", False)
        body: bytes | None = b"".join(chunks)

        async def replay() -> Message:
            nonlocal body
            if body is not None:
                message, body = {"type": "http.request", "body": body, "more_body": False}, None
                return message
            return await receive()

        if path in UNQUEUED:
            await self.app(scope, replay, send)
            return
        if self.slots.value == 0 and self.waiting >= int(self.settings.max_queued):
            await _reply(send, 503, "OVERLOADED", "the server is at its limit of concurrent requests and its queue "
                         f"is full; retry shortly (max_concurrent and max_queued; {limit_hint('max_queued')})",
                         path, ((b"retry-after", b"1"),))
            return
        self.waiting += 1
        try:
            await self.slots.acquire()
        finally:
            self.waiting -= 1
        try:
            await self.app(scope, replay, send)
        finally:
            self.slots.release()
