"""`scorekit convert` writes a folder that transformers itself loads and scores identically."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from scorekit import LLM
from scorekit.convert import main as convert_main

OVERRIDES = '{"architectures": ["LlamaForSequenceClassification"], "classifier_from_token": ["no", "yes"], "method": "from_2_way_softmax"}'
QUERY = "Is Paris the capital of France?"
DOCS = [" Paris is the capital of France.", " Bananas are yellow."]


def test_converted_folder_scores_identically(tmp_path, smollm2_path):
    out = tmp_path / "smollm2-seq-cls"
    assert convert_main([str(smollm2_path), str(out), "--hf-overrides", OVERRIDES]) == 0

    converted = LLM(str(out))
    assert converted.info.architecture == "LlamaForSequenceClassification" and converted.info.conversion is None
    results = converted.score(QUERY, DOCS, use_tqdm=False)

    hf = AutoModelForSequenceClassification.from_pretrained(str(out), dtype=torch.float32).eval()
    for result in results:
        with torch.no_grad():
            logit = hf(torch.tensor([result.prompt_token_ids])).logits[0, 0]
        assert result.outputs.score == pytest.approx(float(torch.sigmoid(logit)), abs=1e-5)

    original = LLM(str(smollm2_path), hf_overrides=__import__("json").loads(OVERRIDES))
    direct = [o.outputs.score for o in original.score(QUERY, DOCS, use_tqdm=False)]
    assert [r.outputs.score for r in results] == pytest.approx(direct, abs=1e-5)
