"""One error shape for every failure: `{"error": {"message", "type", "param", "code"}}` (code = the HTTP status),
as vLLM answers (docs/errors.md lists every status and why).

* body schema errors → 400 "Bad Request", message `"N validation error(s):\\n  {…}"`, param `body.field`;
* bodies that are not JSON at all → 400 "Bad Request", param `body`: bytes that are not UTF-8 (UTF-16/32 are
  read too, as Python's JSON parser detects them), nesting deeper than the parser's recursion limit; truncated
  JSON is FastAPI's validation error `json_invalid`;
* wrong Content-Type → 400 "Bad Request" (not 415, as vLLM);
* missing or wrong API key → 401; a body over --max-request-bytes → 413 (body_limit.py);
* ScoreKitError → its own status and type (the request path raises these, in our words); a pydantic
  ValidationError raised inside a route → 400 "Bad Request" like a schema error; UnicodeError → 400;
* any other ValueError or TypeError → 400 and NotImplementedError → 501, as vLLM answers them, but with a
  generic message and the request id. By then the error is a library's (the tokenizer's "TextEncodeInput must
  be Union[...]", transformers' chat-template advice), worded for its own developers: the log has it;
* ClientDisconnected → 499, logged in one line: the client is gone and no one reads the answer;
* anything else → 500 InternalServerError with a generic message and the request id; the exception and its
  traceback go to the server log under that id, never into the response.

The one exception, kept from vLLM (FastAPI's own answers): a route that is not registered answers 404
`{"detail": "Not Found"}` and a registered route called with the wrong method 405
`{"detail": "Method Not Allowed"}`.
"""

from __future__ import annotations

import logging
import secrets
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError
from starlette.exceptions import HTTPException

from scorekit.errors import ScoreKitError
from scorekit.server.body_limit import ERROR_TYPE as TOO_LARGE_TYPE
from scorekit.server.body_limit import BodyTooLarge

log = logging.getLogger("scorekit.server")

MAX_LISTED_ERRORS = 10
MEDIA_TYPE_MESSAGE = "Unsupported Media Type: Only 'application/json' is allowed"
# Where a request-id middleware leaves the id it put on the response, so a 500 names the same one.
REQUEST_ID_SCOPE_KEY = "scorekit.request_id"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer; not in HTTPStatus
BAD_REQUEST = HTTPStatus.BAD_REQUEST.phrase


class MediaTypeError(Exception):
    """A POST body that is not application/json."""


class Unauthorized(Exception):
    """Missing or wrong API key."""


class ClientDisconnected(Exception):
    """The client closed the connection while its request was queued or running."""


def _printable(text: str) -> str:
    """Lone surrogates (from a client's JSON "\\ud800") cannot be encoded as UTF-8 JSON: escape them."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def error_response(status: int, message: str, error_type: str, param: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"message": _printable(message), "type": error_type,
                      "param": None if param is None else _printable(param), "code": status}}
    return JSONResponse(body, status_code=status, headers=headers)


def request_id(request: Request) -> str:
    """The id a client can quote: the request-id middleware's, else the client's X-Request-Id, else a new one."""
    given = request.scope.get(REQUEST_ID_SCOPE_KEY) or request.headers.get("x-request-id")
    if isinstance(given, bytes):
        given = given.decode("latin-1")
    return (given or secrets.token_hex(8))[:128]


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


def _unparsable_body_message(cause: BaseException | None) -> str:
    """FastAPI says only "There was an error parsing the body"; the cause it chains says which rule broke."""
    if isinstance(cause, UnicodeDecodeError):
        return (f"The request body is not valid JSON text: byte {cause.start} is not {cause.encoding} "
                "(send UTF-8).")
    if isinstance(cause, RecursionError):
        return "The request body nests arrays or objects too deeply to be parsed."
    return "The request body could not be parsed as JSON."


async def _request_validation(_: Request, exc: RequestValidationError) -> JSONResponse:
    errors = list(exc.errors())
    return error_response(400, validation_message(errors), BAD_REQUEST, _param(errors))


async def _http_exception(request: Request, exc: HTTPException):
    if isinstance(exc, BodyTooLarge):
        return error_response(exc.status_code, exc.detail, TOO_LARGE_TYPE)
    if exc.status_code in (404, 405):  # unregistered route / wrong method: FastAPI's `{"detail"}`, as vLLM
        return await http_exception_handler(request, exc)
    if exc.status_code == 400 and exc.__cause__ is not None:  # FastAPI's wrapper of a body parse failure
        return error_response(400, _unparsable_body_message(exc.__cause__), BAD_REQUEST, "body")
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:
        phrase = "Error"
    message = exc.detail if isinstance(exc.detail, str) and exc.detail else phrase
    return error_response(exc.status_code, message, phrase, headers=exc.headers)


async def _media_type(_: Request, exc: MediaTypeError) -> JSONResponse:
    return error_response(400, f"1 validation error:\n  {MEDIA_TYPE_MESSAGE}", BAD_REQUEST)


async def _unauthorized(_: Request, exc: Unauthorized) -> JSONResponse:
    return error_response(401, "Unauthorized: missing or wrong API key (Authorization: Bearer <key>)",
                          "Unauthorized", headers={"WWW-Authenticate": "Bearer"})


async def _client_disconnected(request: Request, exc: ClientDisconnected) -> JSONResponse:
    log.info("client went away before its answer: %s %s", request.method, request.url.path)
    return error_response(CLIENT_CLOSED_REQUEST, "The client closed the connection before the answer was ready.",
                          "ClientDisconnected")


async def _scorekit(request: Request, exc: ScoreKitError) -> JSONResponse:
    if exc.status_code == 500:  # a failure of ours, however it is worded: logged, not shown
        return await _unexpected(request, exc)
    return error_response(exc.status_code, exc.message, exc.error_type, exc.param)


async def _inner_validation(_: Request, exc: PydanticValidationError) -> JSONResponse:
    errors = exc.errors(include_url=False)
    return error_response(400, validation_message(errors), BAD_REQUEST, _param(errors))


async def _unicode(_: Request, exc: UnicodeError) -> JSONResponse:
    return error_response(400, "The request contains text that is not valid Unicode (a lone UTF-16 surrogate "
                               "such as \\ud800, or bytes that are not UTF-8).", "BadRequestError")


async def _library_error(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id(request)
    log.warning("request %s: %s answered as 400", rid, type(exc).__name__, exc_info=exc)
    return error_response(400, f"The request could not be processed (request id {rid}); the server log has the "
                               "details.", "BadRequestError", headers={"X-Request-Id": rid})


async def _not_implemented(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id(request)
    log.warning("request %s: NotImplementedError answered as 501", rid, exc_info=exc)
    return error_response(501, f"The server cannot do what this request asks (request id {rid}); the server log "
                               "has the details.", "NotImplementedError", headers={"X-Request-Id": rid})


async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
    rid = request_id(request)
    log.error("request %s (%s %s) failed", rid, request.method, request.url.path, exc_info=exc)
    return error_response(500, f"Internal server error (request id {rid}); the server log has the details.",
                          "InternalServerError", headers={"X-Request-Id": rid})


_HANDLERS = (
    (RequestValidationError, _request_validation),
    (HTTPException, _http_exception),
    (MediaTypeError, _media_type),
    (Unauthorized, _unauthorized),
    (ClientDisconnected, _client_disconnected),
    (ScoreKitError, _scorekit),
    (NotImplementedError, _not_implemented),
    (PydanticValidationError, _inner_validation),
    (UnicodeError, _unicode),
    (ValueError, _library_error),
    (TypeError, _library_error),
    (Exception, _unexpected),
)


def install(app: FastAPI) -> None:
    for exc_type, handler in _HANDLERS:
        app.add_exception_handler(exc_type, handler)


async def respond(request: Request, exc: Exception):
    """The response `install`'s handlers give, for code that runs outside FastAPI's exception handling (the
    direct dispatch of server/direct.py): the handler of the first class along the exception's MRO, as
    Starlette looks it up."""
    handlers = dict(_HANDLERS)
    handler = next(handlers[cls] for cls in type(exc).__mro__ if cls in handlers)
    return await handler(request, exc)
