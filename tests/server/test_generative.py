"""/generative_scoring on SmolLM2-135M (packaged GGUF): P(" yes") vs P(" no") per item (SPEC §2.4, §3.3, §5.5)."""

from __future__ import annotations

import pytest

API_KEY = "sk-test-123"  # the key conftest.keyed_server and smol_server use

QUERY = "Is the following city in France? Answer yes or no. City:"
ITEMS = [" Paris", " Berlin", " Lyon"]


@pytest.fixture(scope="module")
def gen(smol_server, smollm2):
    tok = smollm2.get_tokenizer()
    yes, no = tok(" yes", add_special_tokens=False)["input_ids"][0], tok(" no", add_special_tokens=False)["input_ids"][0]
    with smol_server.client(headers={"Authorization": f"Bearer {API_KEY}"}) as c:
        yield c, tok, [yes, no]


def test_scores_in_unit_interval_with_usage(gen, smollm2):
    c, tok, labels = gen
    r = c.post("/generative_scoring", json={"model": "smollm2", "query": QUERY, "items": ITEMS, "label_token_ids": labels})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["id"].startswith("generative-scoring-") and body["object"] == "list" and body["model"] == "smollm2"
    scores = [d["score"] for d in body["data"]]
    assert [d["index"] for d in body["data"]] == [0, 1, 2] and all(0 <= s <= 1 for s in scores)
    offline = [o.outputs.score for o in smollm2.generative_score(QUERY, ITEMS, labels, use_tqdm=False)]
    assert scores == pytest.approx(offline, abs=1e-6)
    q = len(tok(QUERY)["input_ids"])
    prompt_tokens = sum(q + len(tok(i, add_special_tokens=False)["input_ids"]) for i in ITEMS)
    assert body["usage"] == {"prompt_tokens": prompt_tokens, "completion_tokens": 3, "total_tokens": prompt_tokens + 3,
                             "prompt_tokens_details": None, "completion_tokens_details": None}


def test_token_id_inputs_and_no_softmax(gen):
    c, tok, labels = gen
    q_ids = tok(QUERY)["input_ids"]
    items = [tok(i, add_special_tokens=False)["input_ids"] for i in ITEMS]
    a = c.post("/generative_scoring", json={"query": QUERY, "items": ITEMS, "label_token_ids": labels}).json()
    b = c.post("/generative_scoring", json={"query": q_ids, "items": items, "label_token_ids": labels}).json()
    assert [d["score"] for d in a["data"]] == pytest.approx([d["score"] for d in b["data"]], abs=1e-6)
    raw = c.post("/generative_scoring", json={"query": QUERY, "items": ITEMS, "label_token_ids": labels,
                                              "apply_softmax": False}).json()
    assert all(r["score"] <= s["score"] + 1e-6 for r, s in zip(raw["data"], a["data"]))


@pytest.mark.parametrize("body,message", [
    ({"items": ["a"], "label_token_ids": [49152]},
     "label_token_id 49152 is out of vocabulary range [0, 49152). Please provide valid token IDs."),
    ({"items": ["a"], "label_token_ids": [-1]}, "label_token_id -1 is out of vocabulary range [0, 49152)."),
    ({"items": ["a"], "label_token_ids": []}, "label_token_ids must contain at least one token ID."),
    ({"items": [], "label_token_ids": [1]}, "items must contain at least one item."),
    ({"items": ["a", [1, 2]], "label_token_ids": [1]}, "items must be all strings or all token id lists"),
])
def test_validation_errors(gen, body, message):
    c, _, _ = gen
    r = c.post("/generative_scoring", json={"query": QUERY, **body})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert message in error["message"] and error["type"] == "BadRequestError"


def test_missing_label_token_ids_is_a_schema_error(gen):
    c, _, _ = gen
    r = c.post("/generative_scoring", json={"query": QUERY, "items": ITEMS})
    assert r.status_code == 400
    assert r.json()["error"]["type"] == "Bad Request" and r.json()["error"]["param"] == "body.label_token_ids"


def test_unknown_model_lists_aliases(gen):
    c, _, labels = gen
    r = c.post("/generative_scoring", json={"model": "x", "query": QUERY, "items": ITEMS, "label_token_ids": labels})
    assert r.status_code == 404
    assert r.json()["error"] == {"message": "The model `x` does not exist. Valid aliases: smollm2.",
                                 "type": "NotFoundError", "param": "model", "code": 404}


def test_score_routes_absent_on_generate_model(gen):
    c, _, _ = gen
    assert c.post("/score", json={"queries": "a", "documents": "b"}).status_code == 404
    assert c.post("/rerank", json={"query": "a", "documents": ["b"]}).status_code == 404


def test_invocations_dispatches_generative(gen):
    c, _, labels = gen
    r = c.post("/invocations", json={"query": QUERY, "items": ITEMS, "label_token_ids": labels})
    assert r.status_code == 200 and r.json()["id"].startswith("generative-scoring-")
