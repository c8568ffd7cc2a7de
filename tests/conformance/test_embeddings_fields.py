"""Every field of vLLM's /v1/embeddings request: honoured with vLLM's semantics (checked against a reference on
the same model) or refused with a 400 that names it. The reference is the offline API on the same weights."""

from __future__ import annotations

import base64
import json

import numpy as np
import pytest
import torch

TEXT = "The river runs through the old city and past the harbour."


def _vector(response, i=0):
    return np.asarray(response.json()["data"][i]["embedding"], dtype=np.float32)


def _offline(minilm, inputs, **kwargs):
    job = minilm.scorer().embed(inputs, **kwargs)
    return [o.numpy() for o in minilm.engine.submit(job).result().outputs]


def test_token_id_inputs_embed_like_their_text(http, minilm):
    ids = minilm.get_tokenizer()(TEXT)["input_ids"]
    text = _vector(http.post("/v1/embeddings", json={"input": TEXT}))
    one = http.post("/v1/embeddings", json={"input": ids})
    many = http.post("/v1/embeddings", json={"input": [ids, ids[:5]]})
    assert one.status_code == 200 and many.status_code == 200
    assert np.allclose(_vector(one), text, atol=1e-6)
    assert np.allclose(_vector(many, 0), text, atol=1e-6) and len(many.json()["data"]) == 2
    assert one.json()["usage"]["prompt_tokens"] == len(ids)
    bad = http.post("/v1/embeddings", json={"input": [10**9]})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "input"


def test_add_special_tokens_false(http, minilm):
    plain = minilm.get_tokenizer()(TEXT, add_special_tokens=False)["input_ids"]
    r = http.post("/v1/embeddings", json={"input": TEXT, "add_special_tokens": False})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == len(plain)
    assert np.allclose(_vector(r), _offline(minilm, [plain])[0], atol=1e-6)


@pytest.mark.parametrize("side", ["left", "right"])
def test_truncation_side(http, minilm, side):
    ids = minilm.get_tokenizer()(TEXT)["input_ids"]
    kept = ids[-5:] if side == "left" else ids[:5]
    r = http.post("/v1/embeddings", json={"input": TEXT, "truncate_prompt_tokens": 5, "truncation_side": side})
    assert r.status_code == 200 and r.json()["usage"]["prompt_tokens"] == 5
    assert np.allclose(_vector(r), _offline(minilm, [kept])[0], atol=1e-6)


def test_left_and_right_truncation_differ(http):
    left, right = (_vector(http.post("/v1/embeddings", json={"input": TEXT, "truncate_prompt_tokens": 5,
                                                              "truncation_side": s})) for s in ("left", "right"))
    assert not np.allclose(left, right, atol=1e-3)


@pytest.mark.parametrize("field", ["normalize", "use_activation"])
def test_normalize_false_gives_the_raw_pooled_vector(http, minilm, field):
    r = http.post("/v1/embeddings", json={"input": TEXT, field: False})
    raw = _offline(minilm, [TEXT], normalize=False)[0]
    assert np.allclose(_vector(r), raw, atol=1e-5) and abs(np.linalg.norm(raw) - 1) > 0.01
    unit = _vector(http.post("/v1/embeddings", json={"input": TEXT, field: True}))
    assert abs(np.linalg.norm(unit) - 1) < 1e-5
    clash = http.post("/v1/embeddings", json={"input": TEXT, "normalize": False, "use_activation": True})
    assert clash.status_code == 400


@pytest.mark.parametrize("dtype, endianness, numpy_dtype, atol", [
    ("float32", "little", "<f4", 0), ("float32", "big", ">f4", 0), ("float16", "native", "=f2", 1e-3),
    ("float16", "big", ">f2", 1e-3)])
def test_base64_in_every_dtype_and_byte_order(http, dtype, endianness, numpy_dtype, atol):
    floats = _vector(http.post("/v1/embeddings", json={"input": TEXT}))
    r = http.post("/v1/embeddings", json={"input": TEXT, "encoding_format": "base64", "embed_dtype": dtype,
                                          "endianness": endianness})
    decoded = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype=numpy_dtype)
    assert decoded.shape == floats.shape
    assert np.allclose(decoded.astype(np.float32), floats, atol=atol, rtol=0)


def test_bfloat16_and_fp8_bytes_are_the_torch_bit_patterns(http):
    floats = torch.tensor(_vector(http.post("/v1/embeddings", json={"input": TEXT})))
    for dtype, torch_dtype, view in (("bfloat16", torch.bfloat16, np.int16), ("fp8_e4m3", torch.float8_e4m3fn, np.uint8)):
        r = http.post("/v1/embeddings", json={"input": TEXT, "encoding_format": "base64", "embed_dtype": dtype,
                                              "endianness": "little"})
        raw = np.frombuffer(base64.b64decode(r.json()["data"][0]["embedding"]), dtype=view).copy()
        assert torch.equal(torch.from_numpy(raw).view(torch_dtype), floats.to(torch_dtype))


def test_bytes_and_bytes_only(http):
    # The float reference comes from the same two-text request: a batch of one can differ from a batch of two
    # in the last bits on some CPUs (the matmul picks another kernel for fewer rows), and this test is about
    # the encoding, not batch invariance.
    reference = http.post("/v1/embeddings", json={"input": [TEXT, "a second text"]})
    floats = [_vector(reference, i) for i in (0, 1)]
    r = http.post("/v1/embeddings", json={"input": [TEXT, "a second text"], "encoding_format": "bytes",
                                          "endianness": "little"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/octet-stream"
    meta = json.loads(r.headers["metadata"])
    assert meta["model"] and meta["usage"]["prompt_tokens"] > 0 and [d["index"] for d in meta["data"]] == [0, 1]
    for item, want in zip(meta["data"], floats):
        got = np.frombuffer(r.content[item["start"]:item["end"]], dtype="<f4")
        assert item["shape"] == [len(want)] and np.array_equal(got, want)
    only = http.post("/v1/embeddings", json={"input": [TEXT, "a second text"], "encoding_format": "bytes_only",
                                             "endianness": "little"})
    assert "metadata" not in only.headers and only.content == r.content


@pytest.mark.parametrize("field, value", [("embed_dtype", "float64"), ("endianness", "middle"),
                                          ("encoding_format", "hex")])
def test_unknown_encodings_are_400s_naming_the_field(http, field, value):
    r = http.post("/v1/embeddings", json={"input": TEXT, field: value})
    assert r.status_code == 400 and field in r.json()["error"]["param"]


def test_dimensions_need_a_matryoshka_model(http, minilm, monkeypatch):
    r = http.post("/v1/embeddings", json={"input": TEXT, "dimensions": 64})
    assert r.status_code == 400 and "matryoshka" in r.json()["error"]["message"]
    monkeypatch.setattr(minilm.loaded.config, "matryoshka_dimensions", [64, 128], raising=False)
    cut = http.post("/v1/embeddings", json={"input": TEXT, "dimensions": 64})
    assert cut.status_code == 200
    raw = _offline(minilm, [TEXT], normalize=False)[0][:64]
    assert np.allclose(_vector(cut), raw / np.linalg.norm(raw), atol=1e-6)  # cut, then normalised
    assert http.post("/v1/embeddings", json={"input": TEXT, "dimensions": 100}).status_code == 400


def test_messages_use_the_chat_template(http, minilm, monkeypatch):
    r = http.post("/v1/embeddings", json={"messages": [{"role": "user", "content": TEXT}]})
    assert r.status_code == 400 and "chat template" in r.json()["error"]["message"]  # MiniLM has none
    tokenizer = minilm.get_tokenizer()
    monkeypatch.setattr(tokenizer, "chat_template", "{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}",
                        raising=False)
    messages = [{"role": "user", "content": [{"type": "text", "text": "first part"}, {"type": "text", "text": TEXT}]}]
    r = http.post("/v1/embeddings", json={"messages": messages})
    assert r.status_code == 200
    ids = tokenizer(f"user: first part\n{TEXT}\n", add_special_tokens=False)["input_ids"]
    assert np.allclose(_vector(r), _offline(minilm, [ids])[0], atol=1e-6)
    image = http.post("/v1/embeddings", json={"messages": [{"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}]})
    assert image.status_code == 400 and "image_url" in image.json()["error"]["message"]
    both = http.post("/v1/embeddings", json={"input": TEXT, "messages": messages})
    assert both.status_code == 400
    template = http.post("/v1/embeddings", json={"messages": messages, "chat_template": "{{ x }}"})
    assert template.status_code == 400 and template.json()["error"]["param"] == "chat_template"


def test_pooling_takes_the_same_encodings_and_token_ids(http, minilm):
    ids = minilm.get_tokenizer()(TEXT)["input_ids"]
    floats = np.asarray(http.post("/pooling", json={"input": TEXT, "task": "embed"}).json()["data"][0]["data"])
    by_ids = np.asarray(http.post("/pooling", json={"input": ids, "task": "embed"}).json()["data"][0]["data"])
    assert np.allclose(by_ids, floats, atol=1e-6)
    r = http.post("/pooling", json={"input": TEXT, "task": "token_embed", "encoding_format": "base64",
                                    "embed_dtype": "float16", "endianness": "little"})
    matrix = np.frombuffer(base64.b64decode(r.json()["data"][0]["data"]), dtype="<f2")
    assert matrix.size == len(ids) * 384
    raw = http.post("/pooling", json={"input": TEXT, "task": "embed", "encoding_format": "bytes_only",
                                      "endianness": "little"})
    assert np.allclose(np.frombuffer(raw.content, dtype="<f4"), floats, atol=0)
    r = http.post("/pooling", json={"input": TEXT, "task": "token_embed", "dimensions": 8})
    assert r.status_code == 400 and r.json()["error"]["param"] == "dimensions"
