"""The official Cohere and OpenAI SDKs work against the server unchanged."""

from __future__ import annotations

import base64

import cohere
import httpx
import numpy as np
import openai
import pytest

API_KEY = "sk-test-123"  # the key conftest.keyed_server and smol_server use

Q = "What is the capital of France?"
DOCS = ["The capital of Brazil is Brasilia.", "Bananas are yellow.", "The capital of France is Paris."]


def _offline(llm):
    return [o.outputs.score for o in llm.score(Q, DOCS, use_tqdm=False)]


def _http():
    return httpx.Client(trust_env=False, timeout=120)


@pytest.mark.parametrize("return_documents", [True, False])
def test_cohere_v1_client_rerank(keyed_server, minilm, return_documents):
    co = cohere.Client(api_key=API_KEY, base_url=keyed_server.url, httpx_client=_http())
    response = co.rerank(model="minilm", query=Q, documents=DOCS, top_n=2, return_documents=return_documents)
    scores = _offline(minilm)
    assert [r.index for r in response.results] == sorted(range(3), key=lambda i: -scores[i])[:2]
    assert [r.relevance_score for r in response.results] == pytest.approx(sorted(scores, reverse=True)[:2], abs=1e-6)
    if return_documents:
        assert response.results[0].document.text == DOCS[2]
    else:
        assert all(r.document is None for r in response.results)
    assert response.meta.billed_units.search_units == 1


def test_cohere_v1_client_document_objects(keyed_server):
    co = cohere.Client(api_key=API_KEY, base_url=keyed_server.url, httpx_client=_http())
    response = co.rerank(model="minilm", query=Q, documents=[{"text": d} for d in DOCS])
    assert response.results[0].index == 2 and response.results[0].document.text == DOCS[2]


def test_cohere_v2_client_rerank(keyed_server, minilm):
    co = cohere.ClientV2(api_key=API_KEY, base_url=keyed_server.url, httpx_client=_http())
    response = co.rerank(model="minilm", query=Q, documents=DOCS)
    scores = _offline(minilm)
    assert [r.index for r in response.results] == sorted(range(3), key=lambda i: -scores[i])
    assert [r.relevance_score for r in response.results] == sorted((r.relevance_score for r in response.results), reverse=True)
    assert response.meta.api_version.version == "2"


def test_cohere_v2_client_embed(keyed_server, minilm):
    co = cohere.ClientV2(api_key=API_KEY, base_url=keyed_server.url, httpx_client=_http())
    response = co.embed(model="minilm", texts=DOCS, input_type="search_document", embedding_types=["float"])
    offline = [o.outputs.embedding for o in minilm.embed(DOCS, use_tqdm=False)]
    np.testing.assert_allclose(np.array(response.embeddings.float_), np.array(offline), atol=1e-6)


def test_cohere_sdk_wrong_key(keyed_server):
    co = cohere.ClientV2(api_key="wrong", base_url=keyed_server.url, httpx_client=_http())
    with pytest.raises(Exception) as info:
        co.rerank(model="minilm", query=Q, documents=DOCS)
    assert getattr(info.value, "status_code", None) == 401


@pytest.mark.parametrize("encoding_format", [None, "float", "base64"])
def test_openai_embeddings(keyed_server, minilm, encoding_format):
    client = openai.OpenAI(api_key=API_KEY, base_url=f"{keyed_server.url}/v1", http_client=_http())
    kwargs = {"encoding_format": encoding_format} if encoding_format else {}
    response = client.embeddings.create(model="minilm", input=DOCS, **kwargs)
    offline = [o.outputs.embedding for o in minilm.embed(DOCS, use_tqdm=False)]
    if encoding_format == "base64":  # asked for explicitly, the SDK hands back the base64 string as is
        got = np.stack([np.frombuffer(base64.b64decode(d.embedding), dtype="<f4") for d in response.data])
    else:  # default: the SDK asks for base64 itself and decodes it
        got = np.array([d.embedding for d in response.data], dtype=np.float32)
    np.testing.assert_allclose(got, np.array(offline, dtype=np.float32), atol=1e-6)
    assert response.usage.prompt_tokens == sum(len(minilm.get_tokenizer()(d)["input_ids"]) for d in DOCS)
    assert response.model == "minilm"


def test_openai_dimensions_rejected(keyed_server):
    client = openai.OpenAI(api_key=API_KEY, base_url=f"{keyed_server.url}/v1", http_client=_http())
    with pytest.raises(openai.BadRequestError) as info:
        client.embeddings.create(model="minilm", input="hi", dimensions=64)
    assert "does not support matryoshka representation" in str(info.value)
    assert client.embeddings.create(model="minilm", input="hi", dimensions=384).data[0].embedding


def test_openai_models_list(keyed_server):
    client = openai.OpenAI(api_key=API_KEY, base_url=f"{keyed_server.url}/v1", http_client=_http())
    assert [m.id for m in client.models.list()] == ["minilm"]
