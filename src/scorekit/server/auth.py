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
    """FastAPI dependency; a no-op when no key is configured."""

    def __init__(self, api_keys: Sequence[str] | None):
        self.keys = [k.encode() for k in (api_keys or []) if k]

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
