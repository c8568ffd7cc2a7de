"""A vision-language model over HTTP, on tiny random Qwen-VL models (tests/multimodal/vl_models.py): /rerank and
/v1/score on the Qwen3-VL-Reranker recipe with image documents, /generative_scoring with image items, and
mm_processor_kwargs (refused without --trust-request-mm-kwargs; with it, min/max_pixels change the image's tokens
and score; an unknown key is a 400 naming it). Every HTTP score equals the offline LLM's on the same model, and
those equal transformers' (tests/multimodal/test_vl_llm.py, test_mm_processor_kwargs.py)."""

from __future__ import annotations

import base64
import io

import pytest

from scorekit import LLM
from scorekit.config import ServerConfig
from scorekit.server.app import build_app
from tests.multimodal.vl_models import random_image, tiny_qwen_vl

RECIPE = {"architectures": ["Qwen3VLForSequenceClassification"], "classifier_from_token": ["no", "yes"],
          "is_original_qwen3_reranker": True}
SMALL = {"max_pixels": 64 * 64}


def _uri(seed: int) -> str:
    out = io.BytesIO()
    random_image(seed, (200, 150)).save(out, format="PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def _image(seed: int, text: str | None = None) -> dict:
    parts = [{"type": "image_url", "image_url": {"url": _uri(seed)}}]
    return {"content": parts + ([{"type": "text", "text": text}] if text else [])}


def _pil(seed: int, text: str | None = None) -> dict:
    parts = [{"type": "image_pil", "image_pil": random_image(seed, (200, 150))}]
    return {"content": parts + ([{"type": "text", "text": text}] if text else [])}


@pytest.fixture(scope="module")
def reranker(tmp_path_factory, live_server):
    folder = str(tiny_qwen_vl("qwen3_vl").save(tmp_path_factory.mktemp("qwen3vl")))
    llm = LLM(folder, hf_overrides=RECIPE, chat_template="qwen3_vl_reranker", trust_request_mm_kwargs=True)
    with live_server(build_app(llm, ServerConfig(served_model_names=("vl",)))) as live:
        with live.client() as client:
            yield client, llm


def test_rerank_and_score_with_image_documents_equal_offline(reranker):
    http, llm = reranker
    docs = ["plain text", _image(1), _image(2, "a caption")]
    r = http.post("/rerank", json={"query": "a cat in the snow", "documents": docs})
    assert r.status_code == 200, r.text
    offline = [o.outputs.score for o in llm.score("a cat in the snow", ["plain text", _pil(1), _pil(2, "a caption")])]
    got = {x["index"]: x["relevance_score"] for x in r.json()["results"]}
    assert [got[i] for i in range(3)] == pytest.approx(offline, abs=1e-6)
    assert [x["index"] for x in r.json()["results"]] == sorted(range(3), key=lambda i: -offline[i])
    assert r.json()["results"][0]["document"] == ({"text": "plain text", "multi_modal": None}
                                                   if r.json()["results"][0]["index"] == 0 else
                                                   {"text": None, "multi_modal": docs[r.json()["results"][0]["index"]]["content"]})
    s = http.post("/v1/score", json={"queries": "a cat in the snow", "documents": docs})
    assert s.status_code == 200, s.text
    assert [d["score"] for d in s.json()["data"]] == pytest.approx(offline, abs=1e-6)
    assert s.json()["usage"]["prompt_tokens"] == r.json()["usage"]["prompt_tokens"]


def test_mm_processor_kwargs_change_tokens_and_bad_keys_are_400(reranker):
    http, llm = reranker
    body = {"query": "a cat", "documents": [_image(3)]}
    wide = http.post("/rerank", json=body).json()
    small = http.post("/rerank", json={**body, "mm_processor_kwargs": SMALL}).json()
    assert small["usage"]["prompt_tokens"] < wide["usage"]["prompt_tokens"]
    offline = llm.score("a cat", [_pil(3)], mm_processor_kwargs=SMALL)[0].outputs.score
    assert small["results"][0]["relevance_score"] == pytest.approx(offline, abs=1e-6)
    assert abs(small["results"][0]["relevance_score"] - wide["results"][0]["relevance_score"]) > 1e-6
    bad = http.post("/rerank", json={**body, "mm_processor_kwargs": {"max_pixel": 10}})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "mm_processor_kwargs"
    assert "'max_pixel' is not a setting" in bad.json()["error"]["message"]
    assert http.get("/health").status_code == 200


@pytest.fixture(scope="module")
def generative(tmp_path_factory, live_server):
    tiny = tiny_qwen_vl("qwen2_vl")
    llm = LLM(str(tiny.save(tmp_path_factory.mktemp("qwen2vl-gen"))))  # no trust flag
    with live_server(build_app(llm, ServerConfig(served_model_names=("gen",)))) as live:
        with live.client() as client:
            yield client, llm, tiny


def test_generative_scoring_takes_images_in_query_and_items(generative):
    http, llm, tiny = generative
    yes, no = tiny.tokenizer.convert_tokens_to_ids(["yes", "no"])
    body = {"query": _image(4, "Is this a cat?"), "items": [" Answer:", _image(5, " Answer:")],
            "label_token_ids": [yes, no]}
    r = http.post("/generative_scoring", json=body)
    assert r.status_code == 200, r.text
    offline = llm.generative_score(_pil(4, "Is this a cat?"), [" Answer:", _pil(5, " Answer:")], [yes, no])
    assert [d["score"] for d in r.json()["data"]] == pytest.approx([o.outputs.score for o in offline], abs=1e-6)
    assert r.json()["usage"]["prompt_tokens"] == sum(len(o.prompt_token_ids) for o in offline)
    refused = http.post("/generative_scoring", json={**body, "mm_processor_kwargs": SMALL})
    assert refused.status_code == 400 and "--trust-request-mm-kwargs" in refused.json()["error"]["message"]
    mixed = http.post("/generative_scoring", json={**body, "items": [[1, 2], _image(5)]})
    assert mixed.status_code == 400, mixed.text
