"""Cohere v1 rerank over structured documents (`documents` as objects, `rank_fields`), per Cohere's API reference
for /v1/rerank: each object is scored as its named fields in the order given, written as `key: value` lines
(server/rank_fields.py says why that form), and comes back in `document` exactly as sent. The reference is the
hand-built string scored by the same model through LLM.score."""

from __future__ import annotations

import pytest

Q = "Who wrote about the capital of France?"
DOCS = [
    {"title": "Bananas", "author": "Ann", "body": "Bananas are yellow.", "id": 7},
    {"title": "Paris", "author": "Victor Hugo", "body": "Paris is the capital of France."},
]


def reference(minilm, texts):
    return [o.outputs.score for o in minilm.score(Q, texts, use_tqdm=False)]


def test_rank_fields_score_the_named_fields_in_order(http, minilm):
    r = http.post("/v1/rerank", json={"query": Q, "documents": DOCS, "rank_fields": ["body", "title"]})
    assert r.status_code == 200, r.text
    expected = reference(minilm, [f"body: {d['body']}\ntitle: {d['title']}" for d in DOCS])
    got = {res["index"]: res["relevance_score"] for res in r.json()["results"]}
    assert got == pytest.approx(dict(enumerate(expected)), abs=1e-6)
    # The order of rank_fields is part of the text: the other order scores differently.
    swapped = reference(minilm, [f"title: {d['title']}\nbody: {d['body']}" for d in DOCS])
    assert abs(swapped[1] - expected[1]) > 1e-4


def test_documents_are_echoed_as_sent(http):
    r = http.post("/rerank", json={"query": Q, "documents": DOCS, "rank_fields": ["title"]})
    for res in r.json()["results"]:
        assert res["document"] == {**DOCS[res["index"]], "multi_modal": None}


def test_without_rank_fields_an_object_ranks_on_its_text(http, minilm):
    docs = [{"text": "Paris is the capital of France.", "lang": "en"}]
    r = http.post("/rerank", json={"query": Q, "documents": docs})
    assert r.json()["results"][0]["relevance_score"] == pytest.approx(reference(minilm, [docs[0]["text"]])[0], abs=1e-6)
    assert r.json()["results"][0]["document"] == {**docs[0], "multi_modal": None}


def test_string_documents_beside_objects_are_scored_as_they_are(http, minilm):
    docs = ["Paris is the capital of France.", {"title": "Paris"}]
    r = http.post("/rerank", json={"query": Q, "documents": docs, "rank_fields": ["title"]})
    got = {res["index"]: res["relevance_score"] for res in r.json()["results"]}
    assert got == pytest.approx(dict(enumerate(reference(minilm, [docs[0], "title: Paris"]))), abs=1e-6)


@pytest.mark.parametrize("documents, rank_fields, param, words", [
    ([{"title": "a"}], ["title", "body"], "rank_fields", "documents[0] has no field 'body'"),
    ([{"title": 3}], ["title"], "documents[0].title", "is a int"),
    ([{"title": "a"}], None, "documents[0].text", "without a string `text` field"),
    ([{"title": "a"}], ["title", "title"], "rank_fields", "names a field twice"),
])
def test_what_cannot_be_ranked_is_a_400_naming_it(http, documents, rank_fields, param, words):
    r = http.post("/rerank", json={"query": Q, "documents": documents, "rank_fields": rank_fields})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param and words in r.json()["error"]["message"]
