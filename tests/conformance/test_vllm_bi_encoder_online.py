"""Ported from vLLM's tests/entrypoints/pooling/scoring/test_bi_encoder_online.py (BAAI/bge-base-en-v1.5 there,
the packaged all-MiniLM-L6-v2 here; its reference is sentence-transformers' encode + cosine, as vLLM's
EncoderScoringHfRunner). The server runs with --max-model-len 100, as vLLM's test starts it."""

from __future__ import annotations

import pytest
import torch

from scorekit.config import ModelConfig
from scorekit.server.protocol import PoolingResponse, RerankResponse, ScoreResponse
from tests.conformance.conftest import served_config

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
INPUT_TEXT = "This product was excellent and exceeded my expectations"
EMBEDDING_SIZE = 384
TEXTS_1 = ["What is the capital of France?", "What is the capital of Germany?"]
TEXTS_2 = ["The capital of France is Paris.", "The capital of Germany is Berlin."]


@pytest.fixture(scope="module")
def server(live_server, minilm_dir):
    with served_config(live_server, ModelConfig(str(minilm_dir), max_model_len=100), MODEL_NAME) as client:
        yield client


@pytest.fixture(scope="module")
def hf_model(minilm_dir):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(minilm_dir), device="cpu")

    def predict(pairs):
        a = model.encode([p[0] for p in pairs], convert_to_tensor=True)
        b = model.encode([p[1] for p in pairs], convert_to_tensor=True)
        return torch.nn.functional.cosine_similarity(a, b).tolist()

    return predict


@pytest.mark.parametrize("fields, pairs", [
    ({"queries": TEXTS_1[0], "documents": TEXTS_2[0]}, [[TEXTS_1[0], TEXTS_2[0]]]),
    ({"queries": TEXTS_1[0], "documents": TEXTS_2}, [[TEXTS_1[0], TEXTS_2[0]], [TEXTS_1[0], TEXTS_2[1]]]),
    ({"queries": TEXTS_1, "documents": TEXTS_2}, [list(p) for p in zip(TEXTS_1, TEXTS_2)]),
    ({"queries": TEXTS_1, "items": TEXTS_2}, [list(p) for p in zip(TEXTS_1, TEXTS_2)]),
    ({"text_1": TEXTS_1, "text_2": TEXTS_2}, [list(p) for p in zip(TEXTS_1, TEXTS_2)]),
    ({"data_1": TEXTS_1, "data_2": TEXTS_2}, [list(p) for p in zip(TEXTS_1, TEXTS_2)]),
], ids=["str_1_str_1", "str_1_str_n", "str_n_str_n", "queries_vs_items", "text_1_vs_text_2", "data_1_vs_data_2"])
def test_score_api(server, hf_model, fields, pairs):
    response = server.post("/score", json={"model": MODEL_NAME, **fields})
    response.raise_for_status()
    score = ScoreResponse.model_validate(response.json())
    assert score.id is not None and len(score.data) == len(pairs)
    for ours, reference in zip([d.score for d in score.data], hf_model(pairs)):
        assert reference == pytest.approx(ours, rel=0.01)


def test_rerank_api_texts(server):
    response = server.post("/rerank", json={"model": MODEL_NAME, "query": "What is the capital of France?",
                                            "documents": ["The capital of Brazil is Brasilia.",
                                                          "The capital of France is Paris."]})
    response.raise_for_status()
    rerank = RerankResponse.model_validate(response.json())
    assert rerank.id is not None and len(rerank.results) == 2
    paris = next(r for r in rerank.results if r.index == 1)
    brazil = next(r for r in rerank.results if r.index == 0)
    assert paris.relevance_score > brazil.relevance_score


def test_rerank_api_top_n(server):
    response = server.post("/rerank", json={"model": MODEL_NAME, "query": "What is the capital of France?",
                                            "documents": ["The capital of Brazil is Brasilia.",
                                                          "The capital of France is Paris.",
                                                          "Cross-encoder models are neat"], "top_n": 2})
    response.raise_for_status()
    rerank = RerankResponse.model_validate(response.json())
    assert len(rerank.results) == 2 and rerank.results[0].index == 1


def test_rerank_api_max_model_len(server):
    response = server.post("/rerank", json={"model": MODEL_NAME, "query": "What is the capital of France?" * 100,
                                            "documents": ["The capital of Brazil is Brasilia."]})
    assert response.status_code == 400 and "Please reduce the length of the input prompt" in response.text


def test_score_api_max_model_len(server):
    body = {"model": MODEL_NAME, "queries": "What is the capital of France?" * 20,
            "documents": ["The capital of Brazil is Brasilia.", "The capital of France is Paris."]}
    response = server.post("/score", json=body)
    assert response.status_code == 400 and "Please reduce the length of the input prompt" in response.text
    response = server.post("/score", json={**body, "truncate_prompt_tokens": 101})
    assert response.status_code == 400 and "Please request a smaller truncation size." in response.text


def test_invocations(server):
    args = {"model": MODEL_NAME, "query": "What is the capital of France?",
            "documents": ["The capital of Brazil is Brasilia.", "The capital of France is Paris."]}
    rerank, invocation = server.post("/rerank", json=args).json(), server.post("/invocations", json=args).json()
    assert rerank.keys() == invocation.keys()
    for a, b in zip(rerank["results"], invocation["results"]):
        assert a.keys() == b.keys() and a["relevance_score"] == pytest.approx(b["relevance_score"], rel=0.01)


def test_pooling_embed(server):
    response = server.post("/pooling", json={"model": MODEL_NAME, "input": INPUT_TEXT, "encoding_format": "float",
                                             "task": "embed"})
    poolings = PoolingResponse.model_validate(response.json())
    assert len(poolings.data) == 1 and len(poolings.data[0].data) == EMBEDDING_SIZE


@pytest.mark.parametrize("task", ["classify", "token_classify", "plugin"])
def test_pooling_not_supported(server, task):
    response = server.post("/pooling", json={"model": MODEL_NAME, "input": INPUT_TEXT, "encoding_format": "float",
                                             "task": task})
    assert response.json()["error"]["type"] == "BadRequestError"
    assert response.json()["error"]["message"].startswith(f"Unsupported task: {task!r}")
