"""int8 is opt-in: off by default (scores exact), and when on the scores stay close to fp32."""

import pytest

from scorekit import LLM

QUERY = "What is the capital of France?"
DOCS = ["Paris is the capital of France.", "Bananas are yellow.", "The Seine flows through Paris."]


def test_int8_off_by_default_and_close_when_on(minilm_llm):
    assert not any("quantized" in type(m).__module__ for m in minilm_llm.loaded.model.backbone.modules())
    int8 = LLM(quantization="int8")
    assert any("quantized" in type(m).__module__ for m in int8.loaded.model.backbone.modules())
    fp32 = [o.outputs.score for o in minilm_llm.score(QUERY, DOCS, use_tqdm=False)]
    quantized = [o.outputs.score for o in int8.score(QUERY, DOCS, use_tqdm=False)]
    assert quantized == pytest.approx(fp32, abs=0.05)
    assert quantized != fp32  # it really ran quantized
    assert max(range(3), key=lambda i: quantized[i]) == max(range(3), key=lambda i: fp32[i])
