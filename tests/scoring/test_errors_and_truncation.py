"""Pairing rules, length limits and truncation: exact SPEC messages, and token_type_ids kept aligned."""

from __future__ import annotations

import pytest

from scorekit import LLM, PoolingParams
from scorekit.errors import ValidationError
from scorekit.scoring.pairing import pair_inputs
from scorekit.scoring.prompts import PromptBuilder
from scorekit.scoring.truncation import TruncationParams, cut_text_to_tokens


@pytest.mark.parametrize(
    "side1, side2, message",
    [
        ("q", [], "At least one text_pair element must be given"),
        ([], ["d"], "At least one text element must be given"),
        (["a", "b"], [], "Input lengths must be either 1:1, 1:N or N:N"),
        (["a", "b", "c"], "d", "Input lengths must be either 1:1, 1:N or N:N"),
        ({"content": [{"type": "text", "text": "x"}]}, "d", "MultiModalParam is not supported for BertModel"),
    ],
)
def test_pairing_errors(side1, side2, message):
    with pytest.raises(ValidationError) as info:
        pair_inputs(side1, side2, "BertModel")
    assert str(info.value) == message


def test_pairing_broadcasts_and_zips():
    assert pair_inputs("q", ["a", "b"], "X") == [("q", "a"), ("q", "b")]
    assert pair_inputs(["q1", "q2"], ["a", "b"], "X") == [("q1", "a"), ("q2", "b")]
    assert pair_inputs(["q"], "a", "X") == [("q", "a")]


def test_too_long_is_an_error_with_the_vllm_message(minilm_llm):
    long_doc = "word " * 400  # MiniLM serves 256 tokens
    with pytest.raises(ValidationError) as info:
        minilm_llm.score("q", long_doc, use_tqdm=False)
    message = str(info.value)
    assert "Please reduce the length of the input prompt" in message
    assert message.startswith("This model's maximum context length is 256 tokens. However, your prompt contains at least 257")
    assert message.endswith("(parameter=input_tokens, value=257)")
    assert info.value.param == "input_tokens"


def test_truncate_prompt_tokens(minilm_llm):
    long_doc = "word " * 400
    out = minilm_llm.score("q", long_doc, use_tqdm=False, truncate_prompt_tokens=-1)
    assert len(out[0].prompt_token_ids) == 3 + 1 + 256  # query prompt + [pad] + doc cut to max_model_len
    out = minilm_llm.score("q", long_doc, use_tqdm=False, truncate_prompt_tokens=10)
    assert len(out[0].prompt_token_ids) == 3 + 1 + 10
    with pytest.raises(ValidationError, match="Please request a smaller truncation size"):
        minilm_llm.score("q", "d", use_tqdm=False, truncate_prompt_tokens=1000)


def test_max_tokens_limits_validation(minilm_llm):
    with pytest.raises(ValueError, match="^max_tokens_per_doc must be a non-negative integer$"):
        minilm_llm.score("q", "d", use_tqdm=False, pooling_params=PoolingParams(extra_kwargs={"max_tokens_per_doc": -1}))
    with pytest.raises(ValueError, match=r"^max_tokens_per_query \(256\) must be less than max_model_len \(256\)\.$"):
        minilm_llm.score("q", "d", use_tqdm=False, pooling_params=PoolingParams(extra_kwargs={"max_tokens_per_query": 256}))


def test_max_tokens_per_doc_cuts_content_tokens(minilm_llm):
    doc = "The capital of France is Paris. " * 20
    out = minilm_llm.score("q", doc, use_tqdm=False, pooling_params=PoolingParams(extra_kwargs={"max_tokens_per_doc": 10}))
    assert len(out[0].prompt_token_ids) == 3 + 1 + (10 + 2)  # 10 content tokens + [CLS] [SEP]


def test_cut_text_never_splits_inside_a_token(minilm_llm):
    tok = minilm_llm.get_tokenizer()
    text = "The capital of France is Paris."
    cut = cut_text_to_tokens(tok, text, 3)
    assert cut == "The capital of"
    assert cut_text_to_tokens(tok, text, 0) == ""
    assert cut_text_to_tokens(tok, text, 100) == text


def test_left_truncation_keeps_token_types_aligned(minilm_llm):
    """Left truncation of a pair cuts tokens and token_type_ids with one slice (vLLM PR #47772)."""
    tok = minilm_llm.get_tokenizer()
    builder = PromptBuilder(tok, 256, uses_token_types=True)
    query, doc = "alpha beta gamma delta", "one two three"
    full = tok(query, doc)
    params = TruncationParams(truncate_prompt_tokens=7, truncation_side="left")
    prompt = builder.pairs([(query, doc)], params)[0]
    assert list(prompt.input_ids) == full["input_ids"][-7:]
    assert list(prompt.token_type_ids) == full["token_type_ids"][-7:]
    right = builder.pairs([(query, doc)], TruncationParams(truncate_prompt_tokens=7, truncation_side="right"))[0]
    assert list(right.input_ids) == full["input_ids"][:7]
    assert list(right.token_type_ids) == full["token_type_ids"][:7]


def test_generative_model_refuses_score(smollm2_llm):
    with pytest.raises(ValueError, match="LLM.score\\(\\) is only supported for pooling models"):
        smollm2_llm.score("q", "d")
