"""/score and /rerank give the offline API's numbers, in vLLM's shapes (SPEC §2–§4)."""

from __future__ import annotations

import re

import pytest

Q = "What is the capital of France?"
DOCS = ["The capital of Brazil is Brasilia.", "The capital of France is Paris.", "Bananas are yellow."]
SPELLINGS = [("queries", "documents"), ("queries", "items"), ("data_1", "data_2"), ("text_1", "text_2")]


def offline(llm, q, d):
    return [o.outputs.score for o in llm.score(q, d, use_tqdm=False)]


@pytest.mark.parametrize("first,second", SPELLINGS)
@pytest.mark.parametrize("shape", ["1:1", "1:N", "N:N"])
def test_score_matches_offline(http, minilm, first, second, shape):
    q, d = {"1:1": (Q, DOCS[1]), "1:N": (Q, DOCS), "N:N": ([Q, "yellow fruit", "Brazil"], DOCS)}[shape]
    r = http.post("/score", json={first: q, second: d})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["object"] == "list" and body["id"].startswith("score-") and body["model"] == "minilm"
    assert [x["index"] for x in body["data"]] == list(range(len(body["data"])))
    assert all(x["object"] == "score" for x in body["data"])
    assert [x["score"] for x in body["data"]] == pytest.approx(offline(minilm, q, d), abs=1e-6)
    usage = body["usage"]
    assert usage["prompt_tokens"] == usage["total_tokens"] > 0 and usage["completion_tokens"] == 0


def test_v1_score_alias_and_usage_counted_per_pair_as_vllm(http, minilm):
    tok = minilm.get_tokenizer()
    r = http.post("/v1/score", json={"queries": Q, "documents": DOCS})
    assert r.status_code == 200
    expected = sum(len(tok(Q)["input_ids"]) + 1 + len(tok(d)["input_ids"]) for d in DOCS)
    assert r.json()["usage"]["prompt_tokens"] == expected


@pytest.mark.parametrize("path", ["/rerank", "/v1/rerank", "/v2/rerank"])
def test_rerank_sorted_and_top_n(http, minilm, path):
    r = http.post(path, json={"query": Q, "documents": DOCS, "top_n": 2})
    assert r.status_code == 200, r.text
    body = r.json()
    scores = offline(minilm, Q, DOCS)
    order = sorted(range(3), key=lambda i: -scores[i])[:2]
    assert [x["index"] for x in body["results"]] == order
    assert [x["relevance_score"] for x in body["results"]] == pytest.approx([scores[i] for i in order], abs=1e-6)
    assert body["results"][0]["document"] == {"text": DOCS[order[0]], "multi_modal": None}
    assert body["id"].startswith("score-") and set(body["usage"]) == {"prompt_tokens", "total_tokens"}
    assert body["meta"]["billed_units"] == {"search_units": 1}
    assert body["meta"]["api_version"]["version"] == ("2" if path == "/v2/rerank" else "1")


def test_rerank_return_documents_false_and_all_results(http):
    r = http.post("/rerank", json={"query": Q, "documents": DOCS, "return_documents": False, "top_n": 0})
    results = r.json()["results"]
    assert len(results) == 3 and all("document" not in x for x in results)
    assert [x["relevance_score"] for x in results] == sorted((x["relevance_score"] for x in results), reverse=True)


def test_rerank_single_document_and_cohere_document_objects(http):
    r = http.post("/rerank", json={"query": Q, "documents": DOCS[1]})
    assert len(r.json()["results"]) == 1
    r = http.post("/rerank", json={"query": Q, "documents": [{"text": DOCS[0]}, {"text": DOCS[1]}]})
    assert r.json()["results"][0] == {**r.json()["results"][0], "index": 1, "document": {"text": DOCS[1], "multi_modal": None}}


@pytest.mark.parametrize("body,message", [
    ({"queries": "q", "documents": []}, "At least one text_pair element must be given"),
    ({"queries": [], "documents": ["d"]}, "At least one text element must be given"),
    ({"queries": ["a", "b"], "documents": []}, "Input lengths must be either 1:1, 1:N or N:N"),
    ({"queries": ["a", "b", "c"], "documents": "d"}, "Input lengths must be either 1:1, 1:N or N:N"),
    ({"queries": {"content": [{"type": "text", "text": "x"}]}, "documents": "d"}, "MultiModalParam is not supported for BertModel"),
    ({"queries": "q", "documents": "d", "truncate_prompt_tokens": 100000},
     "truncate_prompt_tokens value is greater than max_model_len. Please request a smaller truncation size."),
    ({"queries": "q", "documents": "d", "max_tokens_per_query": -1}, "max_tokens_per_query must be a non-negative integer"),
    ({"queries": "q", "documents": "d", "max_tokens_per_doc": 256}, "max_tokens_per_doc (256) must be less than max_model_len (256)."),
    ({"queries": "q", "documents": "word " * 400}, "Please reduce the length of the input prompt."),
])
def test_semantic_errors(http, body, message):
    r = http.post("/score", json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert message in error["message"] and error["type"] == "BadRequestError" and error["code"] == 400


@pytest.mark.parametrize("path,body,param", [
    ("/rerank", {"query": ["a"], "documents": ["d"]}, "body.query"),
    ("/rerank", {"documents": ["d"]}, "body.query"),
    ("/score", {"queries": "q", "documents": "d", "truncation_side": "middle"}, "body.truncation_side"),
    ("/score", {"queries": "q", "documents": "d", "truncate_prompt_tokens": -2}, "body.truncate_prompt_tokens"),
    ("/score", {"queries": "q"}, "body"),
])
def test_schema_errors(http, path, body, param):
    r = http.post(path, json=body)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["type"] == "Bad Request" and error["param"].startswith(param)
    assert re.match(r"\d+ validation errors?:\n  \{", error["message"])


def test_bad_json_and_media_type(http):
    r = http.post("/score", content=b"{nope", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["type"] == "Bad Request"
    r = http.post("/rerank", content=b'{"query": "q", "documents": ["d"]}', headers={"Content-Type": "text/plain"})
    assert r.status_code == 400
    assert r.json()["error"]["message"] == "1 validation error:\n  Unsupported Media Type: Only 'application/json' is allowed"
    r = http.post("/rerank", content=b'{"query": "q", "documents": ["d"]}',
                  headers={"Content-Type": "Application/JSON; charset=utf-8"})
    assert r.status_code == 200


def test_unknown_fields_ignored_and_model_names(http):
    r = http.post("/rerank", json={"model": "sentence-transformers/all-MiniLM-L6-v2", "query": "q", "documents": ["d"],
                                   "softmax": True, "an_unknown_field": 3})
    assert r.status_code == 200 and r.json()["model"] == "minilm"
    r = http.post("/rerank", json={"model": "", "query": "q", "documents": ["d"]})
    assert r.status_code == 200


@pytest.mark.parametrize("path,body", [
    ("/score", {"model": "nope", "queries": "q", "documents": "d"}),
    ("/rerank", {"model": "nope", "query": "q", "documents": ["d"]}),
    ("/v1/embeddings", {"model": "nope", "input": "x"}),
])
def test_unknown_model_404(http, path, body):
    r = http.post(path, json=body)
    assert r.status_code == 404
    assert r.json()["error"] == {"message": "The model `nope` does not exist.", "type": "NotFoundError",
                                 "param": None, "code": 404}


def test_request_ids(http):
    r = http.post("/score", json={"queries": "q", "documents": "d", "request_id": "body-id"})
    assert r.json()["id"] == "score-body-id" and "x-request-id" not in r.headers
    r = http.post("/rerank", json={"query": "q", "documents": ["d"], "request_id": "body-id"},
                  headers={"X-Request-Id": "header-id"})
    assert r.json()["id"] == "score-header-id"  # vLLM: score and rerank share the prefix
    r = http.post("/score", json={"queries": "q", "documents": "d"})
    suffix = r.json()["id"].removeprefix("score-")
    assert len(suffix) == 16 and int(suffix, 16) >= 0


def test_generation_routes_absent_on_encoder(http):
    r = http.post("/generative_scoring", json={"query": "q", "items": ["a"], "label_token_ids": [1]})
    assert r.status_code == 404 and r.json() == {"detail": "Not Found"}


def test_concurrent_requests_do_not_block_health(server):
    import concurrent.futures

    with server.client() as c, concurrent.futures.ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(c.post, "/score", json={"queries": Q, "documents": DOCS * 20}) for _ in range(4)]
        assert c.get("/health").status_code == 200
        assert all(f.result().status_code == 200 for f in futures)


def test_a_negative_top_n_is_refused(http):
    """vLLM's RerankRequest: top_n >= 0 (0 means all); a negative one is its schema's 400 on body.top_n."""
    r = http.post("/rerank", json={"query": "capital of France", "documents": ["bananas", "Paris", "rain"], "top_n": -1})
    assert r.status_code == 400 and r.json()["error"]["param"] == "body.top_n"
    assert "greater than or equal to 0" in r.json()["error"]["message"]
    r = http.post("/rerank", json={"query": "capital of France", "documents": ["bananas", "Paris", "rain"], "top_n": 0})
    assert r.status_code == 200 and len(r.json()["results"]) == 3


@pytest.mark.parametrize("body, param", [
    ({"mm_processor_kwargs": {"max_pixels": 1000}}, "mm_processor_kwargs"),
])
def test_options_we_cannot_honour_are_refused(http, body, param):
    r = http.post("/rerank", json={"query": "q", "documents": ["d"], **body})
    assert r.status_code == 400 and r.json()["error"]["param"] == param


@pytest.mark.parametrize("value", [None, {}])
def test_empty_mm_processor_kwargs_are_accepted(http, value):
    r = http.post("/rerank", json={"query": "q", "documents": ["d"], "mm_processor_kwargs": value, "max_chunks_per_doc": 1})
    assert r.status_code == 200
