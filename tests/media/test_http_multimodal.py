"""Images over HTTP end to end, on the tiny random CLIP of tests/multimodal/conftest.py: every source (data URI,
http(s) from a loopback server, file:// allowed and refused) and every bad input (status, message, the server
still healthy, RSS growth bounded)."""

from __future__ import annotations

import base64
import os

import pytest

from scorekit.config import ServerConfig
from scorekit.server.app import build_app
from tests.media.images import bomb_png, noisy_jpeg, png, tiff
from tests.multimodal.conftest import clip_dir  # noqa: F401  (a session fixture, shared with tests/multimodal)


def _rss_mb() -> float:
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) / 1024


def image(url: str) -> dict:
    return {"content": [{"type": "image_url", "image_url": {"url": url}}]}


def data_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def clip_server(clip_dir, tmp_path_factory, live_server):  # noqa: F811
    from scorekit import LLM

    allowed = tmp_path_factory.mktemp("allowed-media")
    (allowed / "red.png").write_bytes(png(color=(220, 20, 20)))
    (allowed.parent / "outside.png").write_bytes(png())
    llm = LLM(str(clip_dir), score_cache_bytes=0, allowed_local_media_path=str(allowed), max_images_per_request=4)
    with live_server(build_app(llm, ServerConfig(served_model_names=("clip",)))) as live:
        with live.client() as client:
            yield client, allowed


def test_every_source_gives_the_same_image(clip_server, media_server):
    http, allowed = clip_server
    red = (allowed / "red.png").read_bytes()
    media_server.files["/red.png"] = (red, "image/png")
    media_server.files["/blue.png"] = (png(color=(20, 20, 220)), "image/png")
    docs = [image(data_uri(red)), image(media_server.url("/red.png")), image(f"file://{allowed}/red.png"),
            image(media_server.url("/blue.png"))]
    r = http.post("/score", json={"queries": "a red square", "documents": docs})
    assert r.status_code == 200, r.text
    scores = [d["score"] for d in r.json()["data"]]
    assert max(scores[:3]) - min(scores[:3]) < 1e-6  # same bytes by three routes: one image
    assert abs(scores[3] - scores[0]) > 1e-6  # another image scores otherwise


def test_rerank_echoes_multimodal_documents_as_sent(clip_server):
    http, _ = clip_server
    doc = image(data_uri(png()))
    r = http.post("/rerank", json={"query": "q", "documents": ["a text", doc]})
    assert r.status_code == 200, r.text
    by_index = {x["index"]: x["document"] for x in r.json()["results"]}
    assert by_index[1] == {"text": None, "multi_modal": doc["content"]}
    assert by_index[0] == {"text": "a text", "multi_modal": None}


@pytest.mark.parametrize("doc, status, message", [
    (lambda a: image(f"file://{a.parent}/outside.png"), 400, "not inside --allowed-local-media-path"),
    (lambda a: image(f"file://{a}/../outside.png"), 400, "not inside --allowed-local-media-path"),
    (lambda a: image(data_uri(b"just some text, not an image")), 400, "not an image scorekit can read"),
    (lambda a: image(data_uri(noisy_jpeg()[:3000])), 400, "truncated or corrupt"),
    (lambda a: image(data_uri(tiff())), 400, "image format TIFF is not supported"),
    (lambda a: image(data_uri(bomb_png(9_000, 9_000))), 413, "--max-image-pixels"),
    (lambda a: {"content": [image(data_uri(png()))["content"][0]] * 5}, 413, "--max-images-per-request (4)"),
    (lambda a: {"content": [{"type": "video_url", "video_url": {"url": "x"}}]}, 400, "'video_url' is not supported"),
    (lambda a: {"content": [{"type": "input_audio", "input_audio": {}}]}, 400, "'input_audio' is not supported"),
])
def test_bad_inputs_are_refused_and_the_server_keeps_serving(clip_server, doc, status, message):
    http, allowed = clip_server
    before = _rss_mb()
    r = http.post("/score", json={"queries": "q", "documents": ["text", doc(allowed)]})
    assert r.status_code == status, r.text
    error = r.json()["error"]["message"]
    assert message in error
    # where: the input, except for the request-wide image count, which belongs to no one input
    assert error.startswith("5 images in one request" if "per-request" in message else "documents[1]")
    assert http.get("/health").status_code == 200
    assert _rss_mb() - before < 50  # a 243 MB bomb was never decoded


def test_embedding_routes_take_images(clip_server, media_server):
    http, _ = clip_server
    red, blue = png(color=(220, 20, 20)), png(color=(20, 20, 220))
    media_server.files["/red.png"] = (red, "image/png")
    cohere = http.post("/v2/embed", json={"images": [data_uri(red), data_uri(blue)], "embedding_types": ["float"]})
    assert cohere.status_code == 200, cohere.text
    body = cohere.json()
    assert body["images"] == [{"width": 32, "height": 24, "bit_depth": 8}] * 2 and body["texts"] == []
    red_vec, blue_vec = body["embeddings"]["float"]
    inputs = http.post("/v2/embed", json={"inputs": [image(media_server.url("/red.png"))]})
    assert inputs.status_code == 200, inputs.text
    chat = http.post("/v1/embeddings", json={"messages": [{"role": "user", "content": image(data_uri(red))["content"]}]})
    assert chat.status_code == 200, chat.text
    for other in (inputs.json()["embeddings"]["float"][0], chat.json()["data"][0]["embedding"]):
        assert max(abs(a - b) for a, b in zip(other, red_vec)) < 1e-6
    assert max(abs(a - b) for a, b in zip(red_vec, blue_vec)) > 1e-4


def test_cohere_image_embeds_refuse_truncation_they_cannot_honour(clip_server):
    http, _ = clip_server
    for extra, param in (({"max_tokens": 5}, "max_tokens"), ({"truncate": "START"}, "truncate"),
                         ({"truncate": "NONE"}, "truncate")):
        r = http.post("/v2/embed", json={"images": [data_uri(png())], **extra})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["param"] == param and "do not apply to `images`" in r.json()["error"]["message"]
    assert http.post("/v2/embed", json={"images": [data_uri(png())], "truncate": "END"}).status_code == 200


def test_cohere_embed_refuses_mm_processor_kwargs(clip_server):
    """Cohere's /v2/embed has no mm_processor_kwargs: a client sending vLLM's field gets a 400, not silence."""
    http, _ = clip_server
    r = http.post("/v2/embed", json={"images": [data_uri(png())], "mm_processor_kwargs": {"size": 64}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "mm_processor_kwargs", r.text
    assert http.post("/v2/embed", json={"images": [data_uri(png())], "mm_processor_kwargs": {}}).status_code == 200


def test_image_messages_refuse_chat_options_they_cannot_honour(clip_server):
    http, _ = clip_server
    content = image(data_uri(png()))["content"]
    for extra in ({"add_special_tokens": False}, {"add_generation_prompt": True}, {"continue_final_message": True},
                  {"chat_template_kwargs": {"x": 1}}):
        r = http.post("/v1/embeddings", json={"messages": [{"role": "user", "content": content}], **extra})
        assert r.status_code == 400, (extra, r.text)
        assert r.json()["error"]["param"] == "messages" and "do not apply" in r.json()["error"]["message"]


def test_embeddings_mm_processor_kwargs_need_the_trust_flag(clip_server):
    http, _ = clip_server
    messages = [{"role": "user", "content": [image(data_uri(png()))["content"][0]]}]
    r = http.post("/v1/embeddings", json={"messages": messages, "mm_processor_kwargs": {"size": 3}})
    assert r.status_code == 400 and "--trust-request-mm-kwargs" in r.json()["error"]["message"]
    assert http.post("/v1/embeddings", json={"messages": messages, "mm_processor_kwargs": {}}).status_code == 200
