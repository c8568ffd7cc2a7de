"""Direct dispatch: a well-formed POST to a route of the table, run without FastAPI's per-request machinery.

For a one-text embedding request FastAPI's routing, dependency solving and body handling cost more event-loop
CPU than the rest of the request, and every answered request crosses that one loop before the next batch can
form (bench/serve_load.py at concurrency 32: the server without this ran at 0.89x the previous release's
embeddings route, 6.4 against 6.0 ms of server CPU per request).

Nothing here is a second copy: the route comes from the same table (server/route_table.py), the guards are the
app's own `ApiKeyAuth.check` and `is_json`, the body is validated by the route's own pydantic model, the
handler is the route's own, and an exception gets the response of the app's own handlers (errors.respond).
Whatever the dispatch does not take — a wrong key or content type, a body that fails validation — goes on to
FastAPI with its body replayed, so every such error is the one FastAPI gives. It sits inside the metrics and
request-id middlewares (they see its requests like any other) and inside the body limit.
"""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError

from scorekit.server import errors
from scorekit.server.auth import ApiKeyAuth
from scorekit.server.deps import is_json
from scorekit.server.route_table import Route


class DirectDispatch:
    def __init__(self, app, state, auth: ApiKeyAuth, routes: list[Route], api_routes: dict[str, object]):
        self.app = app
        self.state = state
        self.auth = auth
        # path -> (table route, the APIRoute FastAPI registered for it: the metrics middleware labels by it)
        self.routes = {route.path: (route, api_routes[route.path]) for route in routes}

    async def __call__(self, scope, receive, send) -> None:
        entry = self.routes.get(scope.get("path")) if scope["type"] == "http" and scope["method"] == "POST" else None
        if entry is None or not self._admits(scope["headers"]):
            return await self.app(scope, receive, send)
        route, api_route = entry
        body = await _read_body(receive)
        try:
            parsed = route.body.model_validate_json(body)
        except (ValidationError, ValueError):  # FastAPI words the 400 (and its `param`) itself
            return await self.app(scope, _replay(body, receive), send)
        scope["route"] = api_route
        request = Request(scope, receive)  # the body is read: its next message is the client's disconnect
        try:
            response = await route(self.state, parsed, request)
            if not isinstance(response, Response):  # a response model, as FastAPI would serialise it
                response = JSONResponse(response.model_dump(mode="json"))
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
