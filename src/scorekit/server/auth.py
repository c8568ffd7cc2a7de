"""`--api-key`: a Bearer token required on every route except /health, /ping and /metrics (and the docs pages).

Unlike vLLM (which guards only /v1*, /v2*, …), /score, /rerank and /generative_scoring are guarded too.
Keys are compared with `secrets.compare_digest`, and every configured key is compared, so timing tells nothing.
"""

from __future__ import annotations

import secrets
from typing import Sequence

from fastapi import Request

from scorekit.server.errors import Unauthorized


class ApiKeyAuth:
    """FastAPI dependency; a no-op when no key is configured (None or an empty list).

    An empty or blank key is refused, not dropped: `--api-key ""` once left every route open while the log said
    "(API key required)". So is a key no client could send: the header's token is stripped of surrounding
    spaces, and its bytes are read as latin-1, so only printable ASCII (RFC 6750 tokens are a subset) can match.
    """

    def __init__(self, api_keys: Sequence[str] | None):
        keys = list(api_keys or [])
        for key in keys:
            if not isinstance(key, str) or not key.strip():
                raise ValueError("API key is empty or blank: refusing to guard the server with it (that would "
                                 "leave it open). Give a real key, or none to serve without one.")
            if key != key.strip() or not (key.isascii() and key.isprintable()):
                raise ValueError("API key has surrounding spaces or characters other than printable ASCII: no "
                                 "client could send it in an `Authorization: Bearer` header.")
        self.keys = [k.encode() for k in keys]

    def check(self, header: str | None) -> bool:
        if not self.keys:
            return True
        scheme, _, token = (header or "").partition(" ")
        supplied = token.strip().encode() if scheme.lower() == "bearer" else b""
        ok = False
        for key in self.keys:
            ok |= secrets.compare_digest(supplied, key)
        return ok

    async def __call__(self, request: Request) -> None:
        if not self.check(request.headers.get("authorization")):
            raise Unauthorized()
