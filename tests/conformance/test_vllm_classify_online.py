"""Ported from vLLM's tests/entrypoints/pooling/classify/test_online.py (jason9693/Qwen2.5-1.5B-apeach there, a
two-label Qwen2ForSequenceClassification; a tiny random two-label LlamaForSequenceClassification with SmolLM2's
tokenizer here, tests/conformance/conftest.py). vLLM checks shapes and labels; the port also checks every
probability against transformers on the same folder (softmax of the logits of the last token).

vLLM's chat-request test (`messages`, with add_generation_prompt / continue_final_message / add_special_tokens)
is ported with SmolLM2's chat template: vLLM asserts token counts of its model's template (51, 54, 49); the port
asserts the counts and probabilities of transformers' apply_chat_template on the same folder, and the same on
/pooling (task classify), which takes the same chat form."""

from __future__ import annotations

import pytest
import torch

from scorekit.config import ModelConfig
from scorekit.server.protocol import ClassificationResponse, PoolingResponse
from tests.conformance.conftest import served_config

MODEL_NAME = "jason9693/Qwen2.5-1.5B-apeach"
INPUT_TEXT = "This product was excellent and exceeded my expectations"


@pytest.fixture(scope="module")
def server(live_server, tiny_llama_classifier):
    with served_config(live_server, ModelConfig(str(tiny_llama_classifier), max_model_len=512), MODEL_NAME) as client:
        yield client


@pytest.fixture(scope="module")
def hf(tiny_llama_classifier):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(tiny_llama_classifier))
    model = AutoModelForSequenceClassification.from_pretrained(str(tiny_llama_classifier)).eval()

    def logits(ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return model(input_ids=torch.tensor([ids])).logits[0]

    logits.tokenizer = tokenizer
    return logits


def probs(hf, ids):
    return torch.softmax(hf(ids), dim=-1).tolist()


def test_basic(server, hf):
    assert server.get("/v1/models").json()["data"][0]["id"] == MODEL_NAME
    tokens = server.post("/tokenize", json={"model": MODEL_NAME, "prompt": INPUT_TEXT}).json()["tokens"]
    assert tokens == hf.tokenizer(INPUT_TEXT)["input_ids"]


def test_completion_request(server, hf):
    ids = hf.tokenizer(INPUT_TEXT)["input_ids"]
    for given in (INPUT_TEXT, ids):  # a text, then its token ids
        r = server.post("/classify", json={"model": MODEL_NAME, "input": given})
        r.raise_for_status()
        output = ClassificationResponse.model_validate(r.json())
        assert output.object == "list" and output.model == MODEL_NAME and len(output.data) == 1
        assert output.data[0].probs == pytest.approx(probs(hf, ids), abs=1e-5)
        expected_label = ["Default", "Spoiled"][int(torch.tensor(probs(hf, ids)).argmax())]
        assert output.data[0].label == expected_label


def test_completion_request_batched(server, hf):
    n = 10
    ids = hf.tokenizer(INPUT_TEXT)["input_ids"]
    for given in ([INPUT_TEXT] * n, [ids] * n):
        output = ClassificationResponse.model_validate(server.post("/classify", json={"model": MODEL_NAME,
                                                                                      "input": given}).json())
        assert len(output.data) == n
        for i, item in enumerate(output.data):
            assert item.index == i and len(item.probs) == item.num_classes == 2
            assert item.label in ["Default", "Spoiled"]
            assert item.probs == pytest.approx(probs(hf, ids), abs=1e-5)


@pytest.mark.parametrize("given", ["", []])
def test_empty_input_error(server, given):
    r = server.post("/classify", json={"model": MODEL_NAME, "input": given})
    assert r.status_code == 400 and "error" in r.json()


def test_truncate_prompt_tokens(server, hf):
    long_text = "hello " * 600
    r = server.post("/classify", json={"model": MODEL_NAME, "input": long_text, "truncate_prompt_tokens": 5})
    r.raise_for_status()
    output = ClassificationResponse.model_validate(r.json())
    assert output.usage.prompt_tokens == 5 and output.usage.total_tokens == 5
    ids = hf.tokenizer(long_text)["input_ids"]  # cut from the tokenizer's own side, as vLLM does
    kept = ids[-5:] if hf.tokenizer.truncation_side == "left" else ids[:5]
    assert output.data[0].probs == pytest.approx(probs(hf, kept), abs=1e-5)
    r = server.post("/classify", json={"model": MODEL_NAME, "input": "test", "truncate_prompt_tokens": 513})
    assert r.status_code == 400 and "truncate_prompt_tokens" in r.json()["error"]["message"]


@pytest.mark.parametrize("side", ["left", "right"])
def test_truncation_side(server, hf, side):
    long_text = "one two three " * 100
    r = server.post("/classify", json={"model": MODEL_NAME, "input": long_text, "truncate_prompt_tokens": 7,
                                       "truncation_side": side})
    ids = hf.tokenizer(long_text)["input_ids"]
    kept = ids[-7:] if side == "left" else ids[:7]
    assert r.json()["data"][0]["probs"] == pytest.approx(probs(hf, kept), abs=1e-5)


@pytest.mark.parametrize("add_special_tokens", [False, True])
def test_add_special_tokens(server, hf, add_special_tokens):
    r = server.post("/classify", json={"model": MODEL_NAME, "input": INPUT_TEXT,
                                       "add_special_tokens": add_special_tokens})
    r.raise_for_status()
    ids = hf.tokenizer(INPUT_TEXT, add_special_tokens=add_special_tokens)["input_ids"]
    assert ClassificationResponse.model_validate(r.json()).data[0].probs == pytest.approx(probs(hf, ids), abs=1e-5)


MESSAGES = [
    {"role": "user", "content": "The cat sat on the mat."},
    {"role": "assistant", "content": "A feline was resting on a rug."},
    {"role": "user", "content": "Stars twinkle brightly in the night sky."},
]


def chat_ids(hf, add_generation_prompt=False, continue_final_message=False, add_special_tokens=False):
    text = hf.tokenizer.apply_chat_template(MESSAGES, tokenize=False, add_generation_prompt=add_generation_prompt,
                                            continue_final_message=continue_final_message)
    return hf.tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]


@pytest.mark.parametrize("options", [{}, {"add_generation_prompt": True}, {"continue_final_message": True},
                                     {"add_special_tokens": True}])
def test_chat_request(server, hf, options):
    r = server.post("/classify", json={"model": MODEL_NAME, "messages": MESSAGES, **options})
    r.raise_for_status()
    output = ClassificationResponse.model_validate(r.json())
    assert output.object == "list" and output.model == MODEL_NAME and len(output.data) == 1
    ids = chat_ids(hf, **options)
    assert output.usage.prompt_tokens == len(ids)
    assert output.data[0].label in ("Default", "Spoiled")
    assert output.data[0].probs == pytest.approx(probs(hf, ids), abs=1e-5)


def test_chat_request_options_change_the_prompt(server, hf):
    counts = {key: server.post("/classify", json={"model": MODEL_NAME, "messages": MESSAGES, **body}).json()
              ["usage"]["prompt_tokens"]
              for key, body in {"plain": {}, "generation": {"add_generation_prompt": True},
                                "continue": {"continue_final_message": True}}.items()}
    assert counts["generation"] > counts["plain"] > counts["continue"]  # as vLLM's 54 > 51 > 49


def test_chat_request_both_flags(server):
    r = server.post("/classify", json={"model": MODEL_NAME, "messages": MESSAGES, "continue_final_message": True,
                                       "add_generation_prompt": True})
    assert r.status_code == 400
    assert "Cannot set both `continue_final_message` and `add_generation_prompt` to True." in r.json()["error"]["message"]


@pytest.mark.parametrize("body, param", [({"messages": MESSAGES, "input": INPUT_TEXT}, None),
                                         ({"messages": MESSAGES, "chat_template": "{{ messages }}"}, "chat_template"),
                                         ({"messages": [{"role": "user", "content": [{"type": "image_url",
                                                                                      "image_url": {"url": "x"}}]}]},
                                          "messages"),
                                         ({"input": INPUT_TEXT, "add_generation_prompt": True}, None),
                                         ({"messages": MESSAGES, "mm_processor_kwargs": {"max_pixels": 10}},
                                          "mm_processor_kwargs")])
def test_chat_request_refusals(server, body, param):
    r = server.post("/classify", json={"model": MODEL_NAME, **body})
    assert r.status_code == 400, r.text
    if param is not None:
        assert r.json()["error"]["param"] == param


def test_empty_mm_processor_kwargs_change_nothing(server, hf):
    for route in ("/classify", "/pooling"):
        r = server.post(route, json={"model": MODEL_NAME, "messages": MESSAGES, "mm_processor_kwargs": {}})
        assert r.status_code == 200, r.text


def test_pooling_chat_request(server, hf):
    r = server.post("/pooling", json={"model": MODEL_NAME, "messages": MESSAGES, "task": "classify",
                                      "add_generation_prompt": True})
    r.raise_for_status()
    ids = chat_ids(hf, add_generation_prompt=True)
    assert r.json()["usage"]["prompt_tokens"] == len(ids)
    assert r.json()["data"][0]["data"] == pytest.approx(probs(hf, ids), abs=1e-5)


def test_invocations_completion_request(server):
    body = {"model": MODEL_NAME, "input": INPUT_TEXT}
    classify, invocation = server.post("/classify", json=body).json(), server.post("/invocations", json=body).json()
    assert classify.keys() == invocation.keys()
    for a, b in zip(classify["data"], invocation["data"]):
        assert a.keys() == b.keys() and a["probs"] == pytest.approx(b["probs"], abs=1e-6)


def test_use_activation(server):
    def outputs(use_activation):
        body = {"model": MODEL_NAME, "input": INPUT_TEXT, "use_activation": use_activation}
        return torch.tensor([x["probs"] for x in server.post("/classify", json=body).json()["data"]])

    default, with_activation, without = outputs(None), outputs(True), outputs(False)
    assert torch.allclose(default, with_activation, atol=1e-6)
    assert not torch.allclose(with_activation, without, atol=1e-2)
    assert torch.allclose(torch.softmax(without, dim=-1), with_activation, atol=1e-6)


@pytest.mark.parametrize("route, body", [("/score", {"queries": "ping", "documents": "pong"}),
                                         ("/rerank", {"query": "ping", "documents": ["pong"]})])
def test_scoring_routes_need_one_label(server, route, body):
    """Scoring API is only enabled for num_labels == 1: the routes do not exist."""
    assert server.post(route, json={"model": MODEL_NAME, **body}).json()["detail"] == "Not Found"


def test_pooling_classify(server, hf):
    r = server.post("/pooling", json={"model": MODEL_NAME, "input": INPUT_TEXT, "encoding_format": "float",
                                      "task": "classify"})
    poolings = PoolingResponse.model_validate(r.json())
    assert len(poolings.data) == 1 and len(poolings.data[0].data) == 2
    assert poolings.data[0].data == pytest.approx(probs(hf, hf.tokenizer(INPUT_TEXT)["input_ids"]), abs=1e-5)


@pytest.mark.parametrize("task", ["embed", "token_embed", "token_classify", "plugin"])
def test_pooling_not_supported(server, task):
    r = server.post("/pooling", json={"model": MODEL_NAME, "input": INPUT_TEXT, "encoding_format": "float",
                                      "task": task})
    assert r.json()["error"]["type"] == "BadRequestError"
    expected = {"plugin": "No IOProcessor plugin installed.",
                "token_classify": "Try switching the model's pooling_task via"}.get(task, f"Unsupported task: {task!r}")
    assert expected in r.json()["error"]["message"]
