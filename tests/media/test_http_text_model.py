"""Multimodal inputs sent to a text-only model over HTTP (MiniLM): vLLM's 400, checked before any image is
fetched, and the server keeps serving."""

from __future__ import annotations

import pytest

from tests.media.images import png


def image_doc(url: str) -> dict:
    return {"content": [{"type": "text", "text": "a photo"}, {"type": "image_url", "image_url": {"url": url}}]}


@pytest.mark.parametrize("route, body", [
    ("/score", lambda u: {"queries": "q", "documents": [image_doc(u)]}),
    ("/v1/score", lambda u: {"data_1": image_doc(u), "data_2": "d"}),
    ("/rerank", lambda u: {"query": "q", "documents": ["text doc", image_doc(u)]}),
    ("/v2/rerank", lambda u: {"query": image_doc(u), "documents": ["d"]}),
])
def test_image_on_text_model_is_vllms_400_before_fetching(http, media_server, route, body):
    media_server.files["/a.png"] = (png(), "image/png")
    response = http.post(route, json=body(media_server.url("/a.png")))
    assert response.status_code == 400
    assert response.json()["error"]["message"] == "MultiModalParam is not supported for BertModel"
    assert media_server.hits == []  # refused before anything was fetched
    assert http.get("/health").status_code == 200


def test_mm_processor_kwargs_need_the_trust_flag(http):
    response = http.post("/score", json={"queries": "q", "documents": ["d"],
                                         "mm_processor_kwargs": {"max_pixels": 1000}})
    assert response.status_code == 400
    error = response.json()["error"]
    assert "--trust-request-mm-kwargs" in error["message"] and error["param"] == "mm_processor_kwargs"
    for empty in ({}, None):  # change nothing: accepted, as vLLM does
        assert http.post("/score", json={"queries": "q", "documents": ["d"],
                                         "mm_processor_kwargs": empty}).status_code == 200


def test_text_rerank_still_echoes_text_documents(http):
    results = http.post("/rerank", json={"query": "q", "documents": ["a", "b"]}).json()["results"]
    assert {r["document"]["text"] for r in results} == {"a", "b"}
    assert all(r["document"]["multi_modal"] is None for r in results)


def test_embeddings_messages_with_an_image_on_text_model(http, media_server):
    media_server.files["/a.png"] = (png(), "image/png")
    body = {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"},
                                                      {"type": "image_url", "image_url": {"url": media_server.url("/a.png")}}]}]}
    response = http.post("/v1/embeddings", json=body)
    assert response.status_code == 400
    # MiniLM has no chat template, which the chat path says first (tests/conformance covers the part-type message)
    assert "chat template" in response.json()["error"]["message"]
    assert media_server.hits == []
    assert http.get("/health").status_code == 200


@pytest.mark.parametrize("field, value", [
    ("images", ["data:image/png;base64,iVBORw0KGgo="]),
    ("inputs", [{"content": [{"type": "image_url", "image_url": {"url": "http://127.0.0.1:9/a.png"}}]}]),
])
def test_cohere_embed_images_on_text_model(http, field, value):
    response = http.post("/v2/embed", json={field: value, "embedding_types": ["float"]})
    assert response.status_code == 400
    assert f"`{field}` is not supported: this model embeds text only" in response.json()["error"]["message"]
    assert http.get("/health").status_code == 200
