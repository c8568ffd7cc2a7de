"""JSON bodies written by orjson straight to bytes, for the routes that answer many small requests.

FastAPI's default path validates a returned model against `response_model` and serialises it again; for an
embedding that is two passes over every float of every vector. A route that returns this Response skips both
(`response_model` still documents the schema)."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Response


class ORJSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        # numpy arrays are written natively: float32 embeddings in their shortest round-trip form
        return orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY)
