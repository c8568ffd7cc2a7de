"""The offline API accepts vLLM's `LLM` signatures: prompts by keyword, `encode(prompts, pooling_params,
pooling_task=...)` with tensors in `.outputs.data`, `reward`, and errors of vLLM's types."""

from __future__ import annotations

import pytest
import torch

from scorekit import LLM, PoolingParams
from scorekit.errors import UnsupportedTask

TEXTS = ["The river runs through the old city.", "Bees make honey."]


def test_prompts_keyword(minilm_llm):
    by_keyword = minilm_llm.embed(prompts=TEXTS, use_tqdm=False)
    positional = minilm_llm.embed(TEXTS, use_tqdm=False)
    assert [o.outputs.embedding for o in by_keyword] == [o.outputs.embedding for o in positional]


def test_encode_returns_tensors_in_data(minilm_llm):
    vectors = [o.outputs.embedding for o in minilm_llm.embed(TEXTS, use_tqdm=False)]
    out = minilm_llm.encode(TEXTS, PoolingParams(), use_tqdm=False)  # the model's own task: embed
    assert all(isinstance(o.outputs.data, torch.Tensor) for o in out)
    for o, want in zip(out, vectors):
        assert torch.allclose(o.outputs.data, torch.tensor(want), atol=1e-6)
    raw = minilm_llm.encode(TEXTS, PoolingParams(use_activation=False), use_tqdm=False)
    assert abs(float(raw[0].outputs.data.norm()) - 1) > 0.01  # not normalised
    tokens = minilm_llm.encode(TEXTS[0], pooling_task="token_embed", use_tqdm=False)[0]
    assert tokens.outputs.data.shape[0] == len(tokens.prompt_token_ids)


def test_unsupported_tasks_are_value_errors(minilm_llm):
    assert issubclass(UnsupportedTask, ValueError)
    with pytest.raises(ValueError, match="token_classify"):
        minilm_llm.reward(TEXTS, use_tqdm=False)
    with pytest.raises(ValueError):
        minilm_llm.classify(TEXTS, use_tqdm=False)  # an embedding model
    with pytest.raises(ValueError, match="lora_request"):
        minilm_llm.score("q", ["d"], lora_request=object(), use_tqdm=False)


def test_unknown_llm_options_are_refused(minilm_dir):
    with pytest.raises(TypeError, match="no_such_option"):
        LLM(str(minilm_dir), no_such_option=1)
