"""`--max-request-bytes`: a request body larger than the limit gets 413 in our error shape, before it is read.

The limit holds while the body streams in, so no request can make the server hold more than the limit:
* a declared `Content-Length` above the limit is refused before a byte of the body is read;
* otherwise (chunked bodies, or a body longer than it said) the bytes are counted as the app reads them, and
  the read that passes the limit raises `BodyTooLarge` instead of returning the chunk: the app never holds more.

`BodyTooLarge` is a Starlette HTTPException, so inside FastAPI it reaches the app's exception handlers
(errors.py answers it, as every other error); raised where no handler runs (an ASGI middleware reading the
body itself, such as the fast lane), this middleware answers it. The rest of the body is left unread:
uvicorn discards what still arrives once the response is complete and the connection stays usable. Closing it
instead would make the kernel reset a connection with unread data, and the client could lose the 413.

Why not Starlette's RequestBodyLimitMiddleware (1.x): whenever Content-Length exceeds the limit it replaces
whatever the app answers with a fixed plain-text "Content Too Large", so the 413 could not have our shape.
"""

from __future__ import annotations

import orjson
from starlette.exceptions import HTTPException

FLAG = "--max-request-bytes"
STATUS = 413
ERROR_TYPE = "RequestEntityTooLarge"


class BodyTooLarge(HTTPException):
    """The request body is (or says it is) larger than --max-request-bytes."""

    def __init__(self, max_bytes: int, size: int | None = None):
        self.max_bytes = max_bytes
        self.size = size
        told = f"of {size} bytes " if size is not None else ""
        super().__init__(STATUS, f"The request body {told}exceeds {FLAG} ({max_bytes} bytes): send a smaller "
                                 f"request (split the inputs over several) or raise the server's {FLAG}.")


def error_body(exc: BodyTooLarge) -> bytes:
    return orjson.dumps({"error": {"message": exc.detail, "type": ERROR_TYPE, "param": None, "code": STATUS}})


def declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for key, value in headers:
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:  # the HTTP server refuses a malformed one before we see it; count bytes anyway
                return None
    return None


class BodyLimit:
    """Plain ASGI middleware (see metrics.py for why not `@app.middleware("http")`)."""

    def __init__(self, app, max_bytes: int):
        if max_bytes < 1:
            raise ValueError(f"{FLAG} must be a positive number of bytes, not {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = declared_length(scope["headers"])
        if declared is not None and declared > self.max_bytes:
            return await _refuse(send, BodyTooLarge(self.max_bytes, declared))

        received = 0
        started = False

        async def counted_receive():
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted_receive, watched_send)
        except BodyTooLarge as exc:
            if started:  # the app answered before it read the whole body: nothing more can be said
                raise
            await _refuse(send, exc)


async def _refuse(send, exc: BodyTooLarge) -> None:
    body = error_body(exc)
    await send({"type": "http.response.start", "status": STATUS,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
