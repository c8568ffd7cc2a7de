"""int8 is opt-in: off by default (scores exact), and when on the scores stay close to fp32 — for our encoder and
our decoder alike, with the FFN output projections kept in fp32."""

import pytest
import torch

from scorekit import LLM
from scorekit.models.quantize import Int8Linear

QUERY = "What is the capital of France?"
DOCS = ["Paris is the capital of France.", "Bananas are yellow.", "The Seine flows through Paris."]


def _quantized(llm) -> set[str]:  # the Linears running int8 (models/quantize.py)
    return {name for name, m in llm.loaded.model.backbone.named_modules() if isinstance(m, Int8Linear)}


def test_int8_off_by_default_and_close_when_on(minilm_llm):
    assert not _quantized(minilm_llm)
    int8 = LLM(quantization="int8")
    quantized = _quantized(int8)
    assert "layers.0.qkv" in quantized and "layers.0.ffn_in" in quantized
    assert not any(name.endswith("ffn_out") for name in quantized)  # kept fp32: see quantize.FP32_UNDER_INT8
    fp32 = [o.outputs.score for o in minilm_llm.score(QUERY, DOCS, use_tqdm=False)]
    scores = [o.outputs.score for o in int8.score(QUERY, DOCS, use_tqdm=False)]
    assert scores == pytest.approx(fp32, abs=0.05)
    assert scores != fp32  # it really ran quantized
    assert max(range(3), key=lambda i: scores[i]) == max(range(3), key=lambda i: fp32[i])


def test_int8_quantizes_our_decoder_too(smollm2_llm, smollm2_path):
    """Our decoder's own Linear blocks (decoder_layers.Linear, not nn.Linear) are swapped too."""
    int8 = LLM(str(smollm2_path), runner="generate", quantization="int8")
    quantized = _quantized(int8)
    assert any(name.endswith("qkv") for name in quantized) and any(name.endswith("gate_up") for name in quantized)
    assert not any(name.endswith("down") for name in quantized)
    tok = smollm2_llm.get_tokenizer()
    labels = [tok.encode(" yes", add_special_tokens=False)[0], tok.encode(" no", add_special_tokens=False)[0]]
    prompt = "Question: Is Paris the capital of France? Answer:"
    fp32 = torch.tensor([o.outputs.score for o in smollm2_llm.generative_score(prompt, DOCS, labels, use_tqdm=False)])
    int8_scores = torch.tensor([o.outputs.score for o in int8.generative_score(prompt, DOCS, labels, use_tqdm=False)])
    assert not torch.equal(int8_scores, fp32)
    # SmolLM2 barely separates these documents (fp32 0.10, 0.51, 0.24). Under oneDNN int8 with per-token scales
    # (models/quantize.py): 0.07, 0.51, 0.18, max |Δ| 0.066 on the Intel Xeon VM (the torch.ao per-tensor path
    # this replaced moved them by 0.13 there and 0.145 on an AMD EPYC). The best document stays the best.
    assert float((int8_scores - fp32).abs().max()) < 0.2
    assert int(int8_scores.argmax()) == int(fp32.argmax())
