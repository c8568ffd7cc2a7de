"""dtype="bfloat16" on scorekit's own decoder (Llama, Qwen2): a tiny random Llama / Qwen2 in bf16 against the exact
fp32 default on the same weights, through generative scoring and the label-token reranker; the label logits come
out of an fp32 matmul; the load-time warning on a CPU without native bf16 matmuls (the encoder's); and the fp32
default left bit-for-bit alone. docs/quantization.md has the numbers on the real Qwen2.5-0.5B."""

from __future__ import annotations

import logging

import pytest
import torch

from scorekit import LLM
from scorekit.models import gemm
from tests.models.conftest import spearman

ITEMS = ["Paris is the capital of France.", "Bananas are yellow.", "The Seine flows through Paris.",
         "Berlin is in Germany.", "Cats sleep a lot.", "France borders Spain and Italy.", "Tea is a drink.",
         "The Louvre is a museum in Paris.", "Rain falls from clouds.", "Lyon is a French city.",
         "Mount Everest is tall.", "The Eiffel Tower is made of iron."]
OVERRIDES = {"classifier_from_token": ["no", "yes"], "method": "from_2_way_softmax"}
# Stated bounds (docs/quantization.md). Measured on these seeded models (scores over 0.06-0.99): max |Δ| 0.016 (llama)
# and 0.014 (qwen2) generative, 0.012 as a reranker; Spearman 0.993 (llama: one near-tie swapped), 1.0 and 1.0.
MAX_SCORE_DEVIATION = 0.05
MIN_SPEARMAN = 0.98








def _labels(llm) -> list[int]:
    tok = llm.get_tokenizer()
    return [tok.encode(" yes", add_special_tokens=False)[0], tok.encode(" no", add_special_tokens=False)[0]]


@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_tiny_decoder_bf16_close_to_fp32_same_order(tiny_decoders, family):
    folder = str(tiny_decoders[family])
    fp32, bf16 = LLM(folder, runner="generate"), LLM(folder, runner="generate", dtype="bfloat16")
    backbone = bf16.loaded.model.backbone
    assert backbone.dtype == torch.bfloat16
    assert all(p.dtype == torch.bfloat16 for p in backbone.parameters())
    labels, prompt = _labels(fp32), "Question: is this about Paris? Answer:"
    want = [o.outputs.score for o in fp32.generative_score(prompt, ITEMS, labels, use_tqdm=False)]
    got = [o.outputs.score for o in bf16.generative_score(prompt, ITEMS, labels, use_tqdm=False)]
    assert got != want  # it really ran in bf16
    assert max(abs(a - b) for a, b in zip(got, want)) < MAX_SCORE_DEVIATION
    assert spearman(got, want) >= MIN_SPEARMAN


def test_tiny_reranker_bf16_keeps_the_order(tiny_decoders):
    """The classify path (label rows of the LM head as a yes/no reranker, as bench/decoder_rerank.py runs it)."""
    folder = str(tiny_decoders["qwen2"])
    overrides = {"architectures": ["Qwen2ForSequenceClassification"], **OVERRIDES}
    fp32 = LLM(folder, hf_overrides=overrides, score_cache_bytes=0)
    bf16 = LLM(folder, hf_overrides=overrides, score_cache_bytes=0, dtype="bfloat16")
    want = [o.outputs.score for o in fp32.score("Is this about Paris?", ITEMS, use_tqdm=False)]
    got = [o.outputs.score for o in bf16.score("Is this about Paris?", ITEMS, use_tqdm=False)]
    assert got != want
    assert max(abs(a - b) for a, b in zip(got, want)) < MAX_SCORE_DEVIATION
    assert spearman(got, want) >= MIN_SPEARMAN


def test_bf16_label_logits_are_an_fp32_matmul(tiny_decoders):
    """A bf16 model's logits (label rows and full vocabulary) are float32, computed from the bf16 hidden state
    with the head upcast: not a bf16 matmul rounded to 8 bits of mantissa."""
    backbone = LLM(str(tiny_decoders["llama"]), runner="generate", dtype="bfloat16").loaded.model.backbone
    torch.manual_seed(0)
    hidden = (torch.randn(3, backbone.hidden_size) * 4).to(torch.bfloat16)
    rows = torch.tensor([5, 17, 300])
    weight = backbone.lm_head_weight.float()
    want = hidden.float() @ weight.T
    full = backbone.logits(hidden)
    assert full.dtype == torch.float32 and full.shape == (3, backbone.vocab_size)
    torch.testing.assert_close(full, want, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(backbone.logits(hidden, rows), want[:, rows], rtol=1e-5, atol=1e-5)


def test_bf16_warns_without_native_bf16(tiny_decoders, monkeypatch, caplog):
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)
    with caplog.at_level(logging.WARNING):
        LLM(str(tiny_decoders["llama"]), runner="generate", dtype="bfloat16")
    assert any("without native bf16" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        LLM(str(tiny_decoders["llama"]), runner="generate")  # fp32: nothing to warn about
    assert not any("bf16" in r.getMessage() for r in caplog.records)


def test_fp32_default_is_untouched(tiny_decoders):
    folder = str(tiny_decoders["llama"])
    default, explicit = LLM(folder, runner="generate"), LLM(folder, runner="generate", dtype="float32")
    assert default.loaded.model.backbone.dtype == torch.float32
    labels = _labels(default)
    a = [o.outputs.score for o in default.generative_score("Paris?", ITEMS, labels, use_tqdm=False)]
    b = [o.outputs.score for o in explicit.generative_score("Paris?", ITEMS, labels, use_tqdm=False)]
    assert a == b  # bit for bit
    backbone = default.loaded.model.backbone
    hidden = torch.randn(2, backbone.hidden_size)
    rows = torch.tensor([1, 2])
    assert torch.equal(backbone.logits(hidden), gemm.linear(hidden, backbone.lm_head_weight))
    assert torch.equal(backbone.logits(hidden, rows), gemm.linear(hidden, backbone.lm_head_weight[rows]))
