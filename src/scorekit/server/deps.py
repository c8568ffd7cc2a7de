"""Small request dependencies shared by the routes: JSON content type, request ids."""

from __future__ import annotations

import secrets

from fastapi import Request

from scorekit.server.errors import MediaTypeError


def is_json(content_type: str | None) -> bool:
    """application/json, case-insensitive, parameters after `;` ignored."""
    return (content_type or "").split(";", 1)[0].strip().lower() == "application/json"


async def require_json(request: Request) -> None:
    """POST bodies must be application/json — else 400."""
    if not is_json(request.headers.get("content-type")):
        raise MediaTypeError()


def base_request_id(request: Request, body_request_id: str | None = None) -> str:
    """SPEC §3.4: `X-Request-Id` header, else the body's `request_id`, else 16 random hex characters."""
    return request.headers.get("x-request-id") or body_request_id or secrets.token_hex(8)
