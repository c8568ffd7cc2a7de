"""The fast lane: a well-formed POST /v1/embeddings request, answered without FastAPI's per-request machinery.

Single-text embedding requests are the hottest route of an embedding server, and for them FastAPI's routing,
dependency solving and body validation cost more event-loop CPU than the rest of the request. That CPU is not
only spent: every request of a batch that a model thread answers makes its round trip through the one event
loop before the thread's next batch can form, so it leaves the model cores idle too. Measured with
bench/serve_load.py at concurrency 8 (MiniLM, 2 cores): event-loop CPU 0.51-0.58 -> 0.19-0.22 ms per request
and ~20% more requests per second with a bare handler.

What the lane does is exactly what the FastAPI route does — the same API-key check, the same JSON media-type
rule, the same pydantic model, then the route's own `do_embeddings` — only without the framework in between.
Anything it does not take (a wrong key or content type, a body that fails validation) goes on to the FastAPI
app unchanged, with its body replayed, so every error is the one FastAPI gives. Errors raised while the
request runs are answered by the app's own handlers (errors.respond). It sits inside the metrics and
request-id middlewares, so those see its requests like any other.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Awaitable, Callable

from fastapi import Request
from pydantic import BaseModel, ValidationError

from scorekit.server import errors
from scorekit.server.auth import ApiKeyAuth
from scorekit.server.deps import is_json

Handler = Callable[[Any, Any, Request], Awaitable[Any]]  # (state, validated body, request) -> Response


class FastLane:
    """ASGI middleware: POST `path` with a valid body runs `handler` directly; everything else passes on."""

    def __init__(self, app, state, auth: ApiKeyAuth, routes: dict[str, tuple[type[BaseModel], Handler]]):
        self.app = app
        self.state = state
        self.auth = auth
        # The metrics middleware labels a request with scope["route"].path, which FastAPI's router sets on the
        # requests it routes; the lane sets it to this stand-in for the ones it answers.
        self.routes = {path: (model, handler, SimpleNamespace(path=path)) for path, (model, handler) in routes.items()}

    async def __call__(self, scope, receive, send) -> None:
        lane = self.routes.get(scope.get("path")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if lane is None or not self._admits(scope["headers"]):
            return await self.app(scope, receive, send)
        model, handler, route = lane
        body = await _read_body(receive)
        try:
            validated = model.model_validate_json(body)
        except ValidationError:  # FastAPI words the 400 (and its `param`) itself
            return await self.app(scope, _replay(body, receive), send)
        scope["route"] = route
        request = Request(scope, receive)  # the body is read: its next message is the client's disconnect
        try:
            response = await handler(self.state, validated, request)
        except Exception as exc:  # noqa: BLE001 - answered as the app's exception handlers answer it
            response = await errors.respond(request, exc)
        await response(scope, receive, send)

    def _admits(self, headers: list[tuple[bytes, bytes]]) -> bool:
        """The route's guards pass: API key and JSON content type (else the app answers with their errors)."""
        authorization = content_type = None
        for key, value in headers:
            if key == b"authorization":
                authorization = value.decode("latin-1")
            elif key == b"content-type":
                content_type = value.decode("latin-1")
        return self.auth.check(authorization) and is_json(content_type)


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] != "http.request":  # the client left before sending it all
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def _replay(body: bytes, receive):
    """A `receive` that gives the already-read body once, then the connection's own messages."""
    sent = False

    async def replayed():
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replayed
