"""Hugging Face text-embeddings-inference bodies: /rerank with `texts` and /embed, in TEI's response shapes,
scored like our own routes on the same model."""

from __future__ import annotations

import numpy as np
import pytest

QUERY = "What is the capital of France?"
TEXTS = ["Bananas are yellow.", "Paris is the capital of France.", "It rains a lot in Brest."]


def test_tei_rerank_matches_our_rerank(http):
    ours = http.post("/rerank", json={"query": QUERY, "documents": TEXTS}).json()["results"]
    r = http.post("/rerank", json={"query": QUERY, "texts": TEXTS})
    assert r.status_code == 200
    body = r.json()
    assert isinstance(body, list) and [x["index"] for x in body] == [x["index"] for x in ours]
    assert [x["score"] for x in body] == pytest.approx([x["relevance_score"] for x in ours], abs=1e-6)
    assert all(set(x) == {"index", "score"} for x in body)
    with_text = http.post("/rerank", json={"query": QUERY, "texts": TEXTS, "return_text": True}).json()
    assert [x["text"] for x in with_text] == [TEXTS[x["index"]] for x in with_text]


def test_tei_truncate(http):
    long = "word " * 600
    refused = http.post("/rerank", json={"query": QUERY, "texts": [long]})
    assert refused.status_code == 400 and "Please reduce the length" in refused.json()["error"]["message"]
    assert http.post("/rerank", json={"query": QUERY, "texts": [long], "truncate": True}).status_code == 200


def test_tei_and_vllm_bodies_do_not_mix(http):
    assert http.post("/rerank", json={"query": QUERY, "texts": TEXTS, "documents": TEXTS}).status_code == 400
    assert http.post("/rerank", json={"query": QUERY, "documents": TEXTS, "raw_scores": True}).status_code == 400


def test_tei_embed_matches_openai_embeddings(http):
    ours = [d["embedding"] for d in http.post("/v1/embeddings", json={"input": TEXTS}).json()["data"]]
    r = http.post("/embed", json={"inputs": TEXTS})
    assert r.status_code == 200 and np.allclose(np.asarray(r.json()), np.asarray(ours), atol=1e-6)
    single = http.post("/embed", json={"inputs": TEXTS[0]}).json()
    assert len(single) == 1 and np.allclose(single[0], ours[0], atol=1e-6)
    raw = np.asarray(http.post("/embed", json={"inputs": TEXTS[0], "normalize": False}).json()[0])
    assert abs(np.linalg.norm(raw) - 1) > 0.01 and np.allclose(raw / np.linalg.norm(raw), ours[0], atol=1e-5)
    r = http.post("/embed", json={"inputs": TEXTS[0], "prompt_name": "query"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt_name"
