"""/v1/embeddings and /v2/embed hand their texts straight to the engine: tokenised on a model thread, vectors
normalised per batch, no thread waiting on the request's behalf. Errors still belong to the request that caused
them."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
import torch.nn.functional as F

TEXTS = [f"sentence {i} about {w}" for i, w in enumerate("rivers mountains deserts forests oceans cities".split())]


def test_texts_are_tokenised_on_a_model_thread(http, minilm, monkeypatch):
    builder = minilm.scorer().builder
    threads = []
    singles = builder.singles

    def recording(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return singles(*args, **kwargs)

    monkeypatch.setattr(builder, "singles", recording)
    r = http.post("/v1/embeddings", json={"input": TEXTS[:2], "model": "minilm"})
    assert r.status_code == 200
    assert threads and all(name.startswith("scorekit-engine") for name in threads)


def test_a_too_long_input_fails_alone_among_concurrent_requests(server, minilm):
    offline = {t: o.outputs.embedding for t, o in zip(TEXTS, minilm.embed(TEXTS, use_tqdm=False))}
    too_long = "word " * 400

    def call(i):
        with server.client() as client:
            text = too_long if i % 4 == 0 else TEXTS[i % len(TEXTS)]
            return text, client.post("/v1/embeddings", json={"input": text, "model": "minilm"})

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(call, range(24)))
    for text, r in results:
        if text == too_long:
            assert r.status_code == 400 and r.json()["error"]["param"] == "input_tokens"
            assert "maximum context length is 256 tokens" in r.json()["error"]["message"]
        else:
            assert r.status_code == 200
            assert r.json()["data"][0]["embedding"] == pytest.approx(offline[text], abs=1e-6)


def test_cohere_embed_types_from_the_engine_path(http, minilm):
    r = http.post("/v2/embed", json={"texts": TEXTS[:3], "model": "minilm", "embedding_types": ["float", "base64"]})
    assert r.status_code == 200
    body = r.json()
    offline = [o.outputs.embedding for o in minilm.embed(TEXTS[:3], use_tqdm=False)]
    for vector, want in zip(body["embeddings"]["float"], offline):
        assert vector == pytest.approx(want, abs=1e-6)
    assert len(body["embeddings"]["base64"]) == 3 and body["meta"]["billed_units"]["input_tokens"] > 0
    import base64

    import numpy as np

    for encoded, vector in zip(body["embeddings"]["base64"], body["embeddings"]["float"]):
        assert np.frombuffer(base64.b64decode(encoded), dtype="<f4").tolist() == pytest.approx(vector, abs=1e-7)


def test_batch_normalisation_equals_normalising_each_vector(minilm):
    raw = minilm.engine.submit(minilm.scorer().embed(TEXTS, normalize=False)).result().outputs
    unit = minilm.engine.submit(minilm.scorer().embed(TEXTS, normalize=True)).result().outputs
    for r, u in zip(raw, unit):
        assert torch.allclose(F.normalize(r, dim=-1), u, atol=1e-6, rtol=0)  # two calls: batch layouts may differ
