"""Ported from vLLM's tests/entrypoints/openai/test_tokenization.py (zephyr-7b-beta there, "any model with a chat
template"; the packaged SmolLM2-135M-Instruct here). The reference is the same as vLLM's: the HF tokenizer's
`encode` and `apply_chat_template(tokenize=False)` then `encode`.

Not ported: the /tokenizer_info tests (vLLM's --enable-tokenizer-info-endpoint; scorekit has no such route)."""

from __future__ import annotations

import pytest

from tests.conformance.conftest import served_as

MODEL_NAME = "HuggingFaceH4/zephyr-7b-beta"
CONVERSATION = [{"role": "user", "content": "Hi there!"}, {"role": "assistant", "content": "Nice to meet you!"},
                {"role": "user", "content": "Can I ask a question? vllm1"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {
    "type": "object", "properties": {"location": {"type": "string"}}}}}]


@pytest.fixture(scope="module")
def server(live_server, smollm2_llm):
    with served_as(live_server, smollm2_llm, MODEL_NAME) as client:
        yield client


@pytest.fixture(scope="module")
def tokenizer(smollm2_llm):
    return smollm2_llm.get_tokenizer()


@pytest.fixture(scope="module")
def max_model_len(smollm2_llm):
    return smollm2_llm.info.max_model_len


@pytest.mark.parametrize("add_special", [False, True])
def test_tokenize_completions(server, tokenizer, max_model_len, add_special):
    prompt = "vllm1 This is a test prompt."
    tokens = tokenizer.encode(prompt, add_special_tokens=add_special)
    r = server.post("/tokenize", json={"add_special_tokens": add_special, "model": MODEL_NAME, "prompt": prompt})
    r.raise_for_status()
    assert r.json() == {**r.json(), "tokens": tokens, "count": len(tokens), "max_model_len": max_model_len,
                        "token_strs": None}


def _cases():
    for add_generation in (False, True):
        for add_special in (False, True):
            for continue_final in (False, True):
                if not (add_generation and continue_final):
                    yield add_generation, add_special, continue_final


@pytest.mark.parametrize("tools", [None, TOOLS], ids=["chat", "chat_with_tools"])
@pytest.mark.parametrize("add_generation, add_special, continue_final", list(_cases()))
def test_tokenize_chat(server, tokenizer, max_model_len, tools, add_generation, add_special, continue_final):
    conversation = CONVERSATION + ([{"role": "assistant", "content": "Sure,"}] if continue_final else [])
    prompt = tokenizer.apply_chat_template(conversation, add_generation_prompt=add_generation,
                                           continue_final_message=continue_final, tools=tools, tokenize=False)
    tokens = tokenizer.encode(prompt, add_special_tokens=add_special)
    body = {"add_generation_prompt": add_generation, "continue_final_message": continue_final,
            "add_special_tokens": add_special, "messages": conversation, "model": MODEL_NAME}
    r = server.post("/tokenize", json=body if tools is None else {**body, "tools": tools})
    r.raise_for_status()
    assert r.json() == {**r.json(), "tokens": tokens, "count": len(tokens), "max_model_len": max_model_len,
                        "token_strs": None}


def test_both_continue_final_and_generation_prompt_are_refused(server):
    r = server.post("/tokenize", json={"messages": CONVERSATION, "add_generation_prompt": True,
                                       "continue_final_message": True})
    assert r.status_code == 400
    assert "Cannot set both `continue_final_message` and `add_generation_prompt` to True." in r.text


def test_tokenize_with_return_token_strs(server, tokenizer, max_model_len):
    prompt = "This is a token_strs test prompt! vllm1"
    r = server.post("/tokenize", json={"prompt": prompt, "model": MODEL_NAME, "return_token_strs": True})
    r.raise_for_status()
    tokens = tokenizer.encode(prompt, add_special_tokens=True)
    assert r.json() == {**r.json(), "tokens": tokens, "count": len(tokens), "max_model_len": max_model_len,
                        "token_strs": tokenizer.convert_ids_to_tokens(tokens)}


def test_detokenize(server, tokenizer):
    prompt = "This is a test prompt. vllm1"
    tokens = tokenizer.encode(prompt, add_special_tokens=False)
    r = server.post("/detokenize", json={"model": MODEL_NAME, "tokens": tokens})
    r.raise_for_status()
    assert r.json() == {"prompt": prompt}
