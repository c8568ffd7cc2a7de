"""Ported from vLLM's tests/entrypoints/pooling/scoring/test_cross_encoder_online.py (BAAI/bge-reranker-base
there; a tiny random BertForSequenceClassification with MiniLM's tokenizer here, tests/conformance/conftest.py).
The reference is sentence-transformers' CrossEncoder on the same folder, as vLLM's `hf_runner(...,
is_cross_encoder=True)`; the server runs with --max-model-len 100, as vLLM's test starts it.

Where the port differs: vLLM checks "relevance >= 0.9 for the Paris document", a trained model's judgement;
here the ranking is checked against the reference's. vLLM's later `max_tokens_per_doc: 0` refusal is not
ported: 0 means "no limit" in the vLLM release scorekit follows (docs/fields.md)."""

from __future__ import annotations

import pytest
import torch

from scorekit.config import ModelConfig
from scorekit.server.protocol import PoolingResponse, RerankResponse, ScoreResponse
from tests.conformance.conftest import served_config

MODEL_NAME = "BAAI/bge-reranker-base"
INPUT_TEXT = "This product was excellent and exceeded my expectations"
TEXTS_1 = ["What is the capital of France?", "What is the capital of Germany?"]
TEXTS_2 = ["The capital of France is Paris.", "The capital of Germany is Berlin."]
DOCUMENTS = ["The capital of Brazil is Brasilia.", "The capital of France is Paris.", "Cross-encoder models are neat"]


@pytest.fixture(scope="module")
def server(live_server, tiny_cross_encoder):
    with served_config(live_server, ModelConfig(str(tiny_cross_encoder), max_model_len=100), MODEL_NAME) as client:
        yield client


@pytest.fixture(scope="module")
def hf_model(tiny_cross_encoder):
    from sentence_transformers import CrossEncoder

    return CrossEncoder(str(tiny_cross_encoder), device="cpu")  # one label: sigmoid, as vLLM's default


def predict(hf_model, pairs):
    return hf_model.predict(pairs, convert_to_numpy=True).tolist()


def test_basic(server, tiny_cross_encoder):
    from transformers import AutoTokenizer

    assert server.get("/v1/models").json()["data"][0]["id"] == MODEL_NAME
    expected = AutoTokenizer.from_pretrained(str(tiny_cross_encoder))(INPUT_TEXT)["input_ids"]
    assert server.post("/tokenize", json={"model": MODEL_NAME, "prompt": INPUT_TEXT}).json()["tokens"] == expected


@pytest.mark.parametrize("body, pairs", [
    ({"queries": TEXTS_1[0], "documents": TEXTS_2[0]}, [[TEXTS_1[0], TEXTS_2[0]]]),
    ({"queries": TEXTS_1[0], "documents": TEXTS_2}, [[TEXTS_1[0], TEXTS_2[0]], [TEXTS_1[0], TEXTS_2[1]]]),
    ({"queries": TEXTS_1, "documents": TEXTS_2}, [[TEXTS_1[0], TEXTS_2[0]], [TEXTS_1[1], TEXTS_2[1]]]),
    ({"queries": TEXTS_1, "items": TEXTS_2}, [[TEXTS_1[0], TEXTS_2[0]], [TEXTS_1[1], TEXTS_2[1]]]),
    ({"text_1": TEXTS_1, "text_2": TEXTS_2}, [[TEXTS_1[0], TEXTS_2[0]], [TEXTS_1[1], TEXTS_2[1]]]),
    ({"data_1": TEXTS_1, "data_2": TEXTS_2}, [[TEXTS_1[0], TEXTS_2[0]], [TEXTS_1[1], TEXTS_2[1]]]),
], ids=["str_1_str_1", "str_1_str_n", "str_n_str_n", "queries_vs_items", "text_1_vs_text_2", "data_1_vs_data_2"])
def test_score_api(server, hf_model, body, pairs):
    r = server.post("/score", json={"model": MODEL_NAME, **body})
    r.raise_for_status()
    score = ScoreResponse.model_validate(r.json())
    assert score.id and len(score.data) == len(pairs)
    assert [d.score for d in score.data] == pytest.approx(predict(hf_model, pairs), abs=1e-5)


@pytest.mark.parametrize("top_n", [None, 2])
def test_rerank_api_texts_and_top_n(server, hf_model, top_n):
    body = {"model": MODEL_NAME, "query": TEXTS_1[0], "documents": DOCUMENTS}
    r = server.post("/rerank", json=body if top_n is None else {**body, "top_n": top_n})
    r.raise_for_status()
    rerank = RerankResponse.model_validate(r.json())
    expected = predict(hf_model, [[TEXTS_1[0], d] for d in DOCUMENTS])
    order = sorted(range(len(DOCUMENTS)), key=lambda i: -expected[i])[:top_n]
    assert [res.index for res in rerank.results] == order
    assert [res.relevance_score for res in rerank.results] == pytest.approx([expected[i] for i in order], abs=1e-5)


def test_rerank_api_max_model_len(server):
    r = server.post("/rerank", json={"model": MODEL_NAME, "query": TEXTS_1[0] * 100, "documents": DOCUMENTS[:2]})
    assert r.status_code == 400 and "Please reduce the length of the input prompt" in r.text


def test_score_api_max_model_len(server):
    body = {"model": MODEL_NAME, "queries": TEXTS_1[0] * 20, "documents": DOCUMENTS[:2]}
    r = server.post("/score", json=body)
    assert r.status_code == 400 and "Please reduce the length of the input prompt" in r.text
    r = server.post("/score", json={**body, "truncate_prompt_tokens": 101})
    assert r.status_code == 400 and "Please request a smaller truncation size." in r.text


def test_invocations(server):
    body = {"model": MODEL_NAME, "query": TEXTS_1[0], "documents": DOCUMENTS[:2]}
    rerank, invocation = server.post("/rerank", json=body).json(), server.post("/invocations", json=body).json()
    assert rerank.keys() == invocation.keys()
    for a, b in zip(rerank["results"], invocation["results"]):
        assert a.keys() == b.keys() and a["relevance_score"] == pytest.approx(b["relevance_score"], abs=1e-6)


def test_use_activation(server):
    def scores(use_activation):
        body = {"model": MODEL_NAME, "query": TEXTS_1[0], "documents": DOCUMENTS[:2], "use_activation": use_activation}
        results = sorted(server.post("/rerank", json=body).json()["results"], key=lambda x: x["index"])
        return torch.tensor([x["relevance_score"] for x in results])

    default, with_activation, without = scores(None), scores(True), scores(False)
    assert torch.allclose(default, with_activation, atol=1e-6)
    assert not torch.allclose(with_activation, without, atol=1e-2)
    assert torch.allclose(torch.sigmoid(without), with_activation, atol=1e-6)


def test_pooling_classify(server, tiny_cross_encoder):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    r = server.post("/pooling", json={"model": MODEL_NAME, "input": INPUT_TEXT, "encoding_format": "float",
                                      "task": "classify"})
    poolings = PoolingResponse.model_validate(r.json())
    assert len(poolings.data) == 1 and len(poolings.data[0].data) == 1
    # One text alone through the head, activated: transformers' sigmoid(logit) of the text as one sequence.
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_cross_encoder)).eval()
    with torch.no_grad():
        logits = model(**AutoTokenizer.from_pretrained(str(tiny_cross_encoder))(INPUT_TEXT, return_tensors="pt")).logits
    assert poolings.data[0].data == pytest.approx(torch.sigmoid(logits[0]).tolist(), abs=1e-5)


def test_rerank_max_tokens_per_doc(server):
    long_doc = "The capital of France is Paris. " * 50
    r = server.post("/rerank", json={"model": MODEL_NAME, "query": TEXTS_1[0],
                                     "documents": [long_doc, DOCUMENTS[0]], "max_tokens_per_doc": 10})
    r.raise_for_status()
    rerank = RerankResponse.model_validate(r.json())
    assert len(rerank.results) == 2 and rerank.usage.prompt_tokens > 0


def test_rerank_max_tokens_per_doc_reduces_tokens(server, hf_model, tiny_cross_encoder):
    from transformers import AutoTokenizer

    long_doc = "The capital of France is Paris. " * 10
    body = {"model": MODEL_NAME, "query": TEXTS_1[0], "documents": [long_doc]}
    no_limit = server.post("/rerank", json={**body, "truncate_prompt_tokens": 99}).json()
    with_limit = server.post("/rerank", json={**body, "max_tokens_per_doc": 10}).json()
    assert with_limit["usage"]["prompt_tokens"] < no_limit["usage"]["prompt_tokens"]
    # The limit keeps the document's first 10 tokens: the score of that cut document.
    tokenizer = AutoTokenizer.from_pretrained(str(tiny_cross_encoder))
    cut = tokenizer.decode(tokenizer(long_doc, add_special_tokens=False)["input_ids"][:10])
    assert with_limit["results"][0]["relevance_score"] == pytest.approx(predict(hf_model, [[TEXTS_1[0], cut]])[0],
                                                                         abs=1e-5)


@pytest.mark.parametrize("value", [-5])
def test_rerank_max_tokens_per_doc_validation(server, value):
    r = server.post("/rerank", json={"model": MODEL_NAME, "query": TEXTS_1[0], "documents": DOCUMENTS[:1],
                                     "max_tokens_per_doc": value})
    assert r.status_code == 400 and "max_tokens_per_doc must be a non-negative integer" in r.text


@pytest.mark.parametrize("task", ["embed", "token_embed", "plugin"])
def test_pooling_not_supported(server, task):
    r = server.post("/pooling", json={"model": MODEL_NAME, "input": INPUT_TEXT, "encoding_format": "float",
                                      "task": task})
    assert r.json()["error"]["type"] == "BadRequestError"
    assert r.json()["error"]["message"].startswith(f"Unsupported task: {task!r}")
