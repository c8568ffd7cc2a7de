"""Ported from vLLM's tests/entrypoints/generate/generative_scoring/test_generative_scoring_e2e.py (Qwen3-0.6B
there; the packaged SmolLM2-135M-Instruct here). vLLM checks the response's shape and that scores lie in [0, 1];
the port also checks each score against transformers on the same GGUF weights: the softmax over the label
tokens' logits at the last position of query + item, taken at the first label.

Label ids: vLLM's 9454/2753 are Qwen3's "Yes"/"No"; here SmolLM2's ids of the same two tokens."""

from __future__ import annotations

import pytest
import torch

from tests.conformance.conftest import served_as

MODEL_NAME = "Qwen/Qwen3-0.6B"


@pytest.fixture(scope="module")
def server(live_server, smollm2_llm):
    with served_as(live_server, smollm2_llm, MODEL_NAME) as client:
        yield client


@pytest.fixture(scope="module")
def tokenizer(smollm2_llm):
    return smollm2_llm.get_tokenizer()


@pytest.fixture(scope="module")
def yes_no(tokenizer):
    return tokenizer.convert_tokens_to_ids(["Yes", "No"])


@pytest.fixture(scope="module")
def reference(smollm2_hf, tokenizer):
    def scores(query: str, items: list[str], labels: list[int]) -> list[float]:
        q = tokenizer(query)["input_ids"]
        out = []
        for item in items:
            ids = q + tokenizer(item, add_special_tokens=False)["input_ids"]
            with torch.no_grad():
                last = smollm2_hf(input_ids=torch.tensor([ids])).logits[0, -1]
            out.append(float(torch.softmax(last[labels], dim=-1)[0]))
        return out

    return scores


def test_basic_score_and_response_structure(server, yes_no, reference):
    body = {"model": MODEL_NAME, "query": "Is Paris the capital of France? Answer Yes or No: ",
            "items": ["Paris is beautiful.", "London is rainy."], "label_token_ids": yes_no}
    r = server.post("/generative_scoring", json=body)
    assert r.status_code == 200, r.text
    data = r.json()
    assert data["id"].startswith("generative-scoring-") and data["object"] == "list" and "model" in data
    assert [d["index"] for d in data["data"]] == [0, 1] and all(d["object"] == "score" for d in data["data"])
    expected = reference(body["query"], body["items"], yes_no)
    assert [d["score"] for d in data["data"]] == pytest.approx(expected, abs=1e-4)
    usage = data["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


def test_multiple_items(server, yes_no, reference):
    items = ["Paris", "London", "Berlin", "New York", "Tokyo"]
    r = server.post("/generative_scoring", json={"model": MODEL_NAME, "query": "Is this city a capital? ",
                                                 "items": items, "label_token_ids": yes_no})
    assert r.status_code == 200
    assert [d["score"] for d in r.json()["data"]] == pytest.approx(
        reference("Is this city a capital? ", items, yes_no), abs=1e-4)


@pytest.mark.parametrize("body", [
    {"query": "Test query", "items": ["item1", "item2"]},  # label_token_ids missing
    {"query": "Test query", "items": [], "label_token_ids": [100, 200]},  # no items
    {"query": "Test query", "items": ["item1"], "label_token_ids": [9999999999, 9999999998]},  # out of vocabulary
], ids=["missing_label_token_ids", "empty_items", "invalid_token_ids"])
def test_validation_errors(server, body):
    assert server.post("/generative_scoring", json={"model": MODEL_NAME, **body}).status_code == 400


def test_score_consistency(server):
    body = {"model": MODEL_NAME, "query": "Is this consistent? ", "items": ["Yes it is."], "label_token_ids": [100, 200]}
    first, second = (server.post("/generative_scoring", json=body) for _ in range(2))
    assert first.status_code == second.status_code == 200
    assert abs(first.json()["data"][0]["score"] - second.json()["data"][0]["score"]) < 1e-6
