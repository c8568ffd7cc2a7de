"""Neighbouring routes: tokenizer, models, version, health, metrics, invocations, pooling, Cohere embed."""

from __future__ import annotations

import base64

import numpy as np
import pytest


def test_tokenize_detokenize(http, minilm):
    r = http.post("/tokenize", json={"prompt": "hello world", "return_token_strs": True}).json()
    assert r == {"count": 4, "max_model_len": 256, "tokens": [101, 7592, 2088, 102],
                 "token_strs": ["[CLS]", "hello", "world", "[SEP]"]}
    r = http.post("/tokenize", json={"prompt": "hello world", "add_special_tokens": False}).json()
    assert r["tokens"] == [7592, 2088] and r["token_strs"] is None
    assert http.post("/detokenize", json={"tokens": [7592, 2088]}).json() == {"prompt": "hello world"}
    r = http.post("/detokenize", json={"tokens": [-1]})
    assert r.status_code == 400 and r.json()["error"]["param"].startswith("body.tokens")


def test_models_version_health(http):
    models = http.get("/v1/models").json()
    assert [m["id"] for m in models["data"]] == ["minilm", "sentence-transformers/all-MiniLM-L6-v2"]
    assert models["data"][0]["max_model_len"] == 256 and models["data"][0]["object"] == "model"
    assert {m["owned_by"] for m in models["data"]} == {"vllm"}  # vLLM's value
    import scorekit

    assert http.get("/version").json() == {"version": scorekit.__version__}
    for method, path in [("GET", "/health"), ("GET", "/ping"), ("POST", "/ping")]:
        r = http.request(method, path)
        assert r.status_code == 200 and r.content == b""


def test_metrics(http):
    http.post("/score", json={"queries": "q", "documents": ["a", "b"]})
    text = http.get("/metrics").text
    assert 'scorekit_requests_total{method="POST",route="/score",status="200"}' in text
    assert 'scorekit_request_duration_seconds_count{method="POST",route="/score"}' in text
    assert "scorekit_queue_length" in text
    assert 'scorekit_prompt_tokens_total{route="score"}' in text


def test_invocations(http):
    r = http.post("/invocations", json={"query": "q", "documents": ["a", "b"]})
    assert r.status_code == 200 and "results" in r.json()
    r = http.post("/invocations", json={"queries": "q", "documents": ["a", "b"]})
    assert r.status_code == 200 and r.json()["data"][1]["object"] == "score"
    r = http.post("/invocations", json={"input": "x"})
    assert r.json()["id"].startswith("embd-")
    r = http.post("/invocations", json={"nothing": 1})
    assert r.status_code == 400
    assert r.json()["error"]["message"].startswith("Cannot find suitable handler for request. Expected one of:")


def test_pooling(http, minilm):
    r = http.post("/pooling", json={"input": ["hello", "world"]}).json()
    assert r["id"].startswith("pool-") and r["data"][0]["object"] == "pooling"
    np.testing.assert_allclose(r["data"][0]["data"], minilm.embed("hello", use_tqdm=False)[0].outputs.embedding, atol=1e-6)
    r = http.post("/pooling", json={"input": "hello world", "task": "token_embed"}).json()
    assert len(r["data"][0]["data"]) == 4
    r = http.post("/pooling", json={"input": "x", "encoding_format": "base64"}).json()
    assert len(np.frombuffer(base64.b64decode(r["data"][0]["data"]), dtype="<f4")) == 384
    for body, message in [({"task": "score"}, "`score` task was removed; use `classify` instead."),
                          ({"task": "classify"}, "Unsupported task: 'classify'"),
                          ({"task": "plugin"}, "No IOProcessor plugin installed."),
                          ({"normalize": True}, "Parameter `normalize` was removed; use `use_activation` instead.")]:
        r = http.post("/pooling", json={"input": "x", **body})
        assert r.status_code == 400 and message in r.json()["error"]["message"]


def test_cohere_embed_types(http, minilm):
    r = http.post("/v2/embed", json={"texts": ["hello"], "embedding_types": ["float", "base64", "ubinary", "binary"]})
    body = r.json()
    vec = np.array(minilm.embed("hello", use_tqdm=False)[0].outputs.embedding, dtype=np.float32)
    np.testing.assert_allclose(body["embeddings"]["float"][0], vec, atol=1e-6)
    np.testing.assert_allclose(np.frombuffer(base64.b64decode(body["embeddings"]["base64"][0]), "<f4"), vec, atol=1e-6)
    assert body["embeddings"]["ubinary"][0] == np.packbits(vec > 0).tolist()
    assert body["embeddings"]["binary"][0] == (np.packbits(vec > 0).astype(int) - 128).tolist()
    assert body["response_type"] == "embeddings_by_type" and body["texts"] == ["hello"]
    assert http.post("/v2/embed", json={"texts": [], "images": []}).status_code == 400
    assert http.post("/v2/embed", json={"images": ["data:,"]}).status_code == 400
    assert http.post("/v2/embed", json={"texts": ["x"], "embedding_types": ["int8"]}).status_code == 400


def test_embeddings_token_input_out_of_vocabulary_rejected_cleanly(http):
    r = http.post("/v1/embeddings", json={"input": [1, 2, 10**7]})
    assert r.status_code == 400 and r.json()["error"]["param"] == "input"


@pytest.mark.parametrize("path", ["/classify"])
def test_classify_absent_on_embedding_model(http, path):
    assert http.post(path, json={"input": "x"}).status_code == 404
