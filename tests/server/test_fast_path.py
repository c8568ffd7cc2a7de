"""The embedding route's lighter request path: JSON written directly, plain-ASGI metrics."""

from __future__ import annotations

import pytest

from scorekit.server.protocol import EmbeddingResponse


def test_embeddings_body_is_the_documented_schema(http, minilm):
    r = http.post("/v1/embeddings", json={"input": ["a river", "a mountain"], "model": "minilm"},
                  headers={"X-Request-Id": "fast-1"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["id", "object", "created", "model", "data", "usage"]
    parsed = EmbeddingResponse.model_validate(body)
    assert parsed.id == "embd-fast-1" and parsed.model == "minilm" and parsed.object == "list"
    assert [d.index for d in parsed.data] == [0, 1] and all(d.object == "embedding" for d in parsed.data)
    offline = [o.outputs.embedding for o in minilm.embed(["a river", "a mountain"], use_tqdm=False)]
    for got, want in zip(parsed.data, offline):
        assert got.embedding == pytest.approx(want, abs=1e-6)
    assert body["usage"] == {"prompt_tokens": parsed.usage.prompt_tokens, "total_tokens": parsed.usage.prompt_tokens,
                             "completion_tokens": 0, "prompt_tokens_details": None, "completion_tokens_details": None}


def test_metrics_count_errors_and_unmatched_routes(http):
    http.post("/v1/embeddings", json={"input": "x", "encoding_format": "nope"})
    http.get("/no/such/route")
    text = http.get("/metrics").text
    assert 'scorekit_requests_total{method="POST",route="/v1/embeddings",status="400"}' in text
    assert 'scorekit_requests_total{method="GET",route="<unmatched>",status="404"}' in text
