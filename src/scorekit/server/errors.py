"""Every error becomes `{"error": {"message", "type", "param", "code"}}` with the status of SPEC §10.

* body schema / JSON errors → 400 "Bad Request", message `"N validation error(s):\\n  {…}"`, param `body.field`;
* wrong Content-Type → 400 "Bad Request" (not 415);
* ScoreKitError → its own status and type; ValueError/TypeError → 400; NotImplementedError → 501;
* anything else → 500 InternalServerError with paths and addresses stripped from the message.
Unknown routes keep FastAPI's own `{"detail": "Not Found"}`.
"""

from __future__ import annotations

import logging
import re
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from scorekit.errors import ScoreKitError

log = logging.getLogger("scorekit.server")

MAX_LISTED_ERRORS = 10
MEDIA_TYPE_MESSAGE = "Unsupported Media Type: Only 'application/json' is allowed"


class MediaTypeError(Exception):
    """A POST body that is not application/json."""


class Unauthorized(Exception):
    """Missing or wrong API key."""


def error_response(status: int, message: str, error_type: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": message, "type": error_type, "param": param, "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def _summarise(value: Any, limit: int = 80) -> Any:
    text = repr(value)
    return value if len(text) <= limit else text[: limit - 3] + "..."


def validation_message(errors: list[Any]) -> str:
    lines = []
    for err in errors[:MAX_LISTED_ERRORS]:
        if isinstance(err, dict):
            err = {k: (_summarise(v) if k == "input" else v) for k, v in err.items() if k not in ("url", "ctx")}
        lines.append(f"  {err}")
    if len(errors) > MAX_LISTED_ERRORS:
        lines.append(f"  … and {len(errors) - MAX_LISTED_ERRORS} more")
    n = len(errors)
    return f"{n} validation error{'s' if n != 1 else ''}:\n" + "\n".join(lines)


def _param(errors: list[Any]) -> str | None:
    for err in errors:
        if isinstance(err, dict) and err.get("loc"):
            return ".".join(str(p) for p in err["loc"])
    return None


_PATH = re.compile(r"(?:[A-Za-z]:)?(?:/[\w.\-+@]+){2,}/?")
_ADDRESS = re.compile(r"0x[0-9a-fA-F]+|\b\d{1,3}(?:\.\d{1,3}){3}(?::\d+)?\b")


def sanitise(message: str) -> str:
    return _ADDRESS.sub("<address>", _PATH.sub("<path>", message))


async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    return error_response(400, validation_message(errors), HTTPStatus.BAD_REQUEST.phrase, _param(errors))


async def _media_type(_: Request, exc: MediaTypeError) -> JSONResponse:
    return error_response(400, f"1 validation error:\n  {MEDIA_TYPE_MESSAGE}", HTTPStatus.BAD_REQUEST.phrase)


async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
    return error_response(401, "Unauthorized: missing or wrong API key (Authorization: Bearer <key>)",
                          "Unauthorized", headers={"WWW-Authenticate": "Bearer"})


async def _scorekit(_: Request, exc: ScoreKitError) -> JSONResponse:
    return error_response(exc.status_code, exc.message, exc.error_type, exc.param)


async def _value(_: Request, exc: Exception) -> JSONResponse:
    return error_response(400, sanitise(str(exc)), "BadRequestError")


async def _not_implemented(_: Request, exc: Exception) -> JSONResponse:
    return error_response(501, sanitise(str(exc)) or "Not implemented", "NotImplementedError")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.error("unexpected error: %s: %s", type(exc).__name__, sanitise(str(exc)))
    return error_response(500, f"{type(exc).__name__}: {sanitise(str(exc))}", "InternalServerError")


_HANDLERS = (
    (RequestValidationError, _request_validation),
    (MediaTypeError, _media_type),
    (Unauthorized, _unauthorized),
    (ScoreKitError, _scorekit),
    (NotImplementedError, _not_implemented),
    (ValueError, _value),
    (TypeError, _value),
    (Exception, _unexpected),
)


def install(app: FastAPI) -> None:
    for exc_type, handler in _HANDLERS:
        app.add_exception_handler(exc_type, handler)


async def respond(request: Request, exc: Exception) -> JSONResponse:
    """The error response `install`'s handlers give, for code that runs outside FastAPI's exception handling
    (the fast lane): the handler of the first class along the exception's MRO, as Starlette looks it up."""
    handlers = dict(_HANDLERS)
    handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
    return await handler(request, exc)
