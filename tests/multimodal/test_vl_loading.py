"""Saved tiny VL models load back through models/vision/vl_loading.py, strictly, and score as the originals."""

from __future__ import annotations

import torch

from scorekit.engine.runner import collate
from scorekit.media.content import Content, ImagePart
from scorekit.models.vision.colpali import ColVisionBackbone
from scorekit.models.vision.qwen_vl import QwenVLBackbone
from scorekit.models.vision.vl_loading import (COLVISION, QWEN_VL, load_colvision_inputs, load_image_processor,
                                               load_vl_backbone, vl_family)
from scorekit.scoring.multimodal_prompts import QwenVLPrompts, colvision_prompts
from tests.multimodal.vl_models import random_image, tiny_colqwen2, tiny_qwen_vl


def _config(folder):
    from transformers import AutoConfig

    return AutoConfig.from_pretrained(str(folder))


def test_qwen3_vl_folder_loads_as_a_reranker_backbone(tmp_path):
    tiny = tiny_qwen_vl("qwen3_vl")
    folder = tiny.save(tmp_path / "qwen3-vl")
    config = _config(folder)
    config.architectures = ["Qwen3VLForSequenceClassification"]  # the recipe's hf_overrides name
    assert vl_family(config) == QWEN_VL
    backbone = load_vl_backbone(folder, config, QWEN_VL, torch.float32)
    builder = QwenVLPrompts(tiny.tokenizer, load_image_processor(folder), 512)
    prompts = builder.pairs([("q", Content(("page", ImagePart(random_image(5), "d5"))))])
    batch = collate(prompts, pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        loaded = backbone.hidden_states(batch.input_ids, batch.attention_mask, media=batch.media)
        original = QwenVLBackbone(tiny.model).hidden_states(batch.input_ids, batch.attention_mask, media=batch.media)
    assert torch.equal(loaded, original)


def test_colqwen2_folder_loads_with_its_processor(tmp_path):
    tiny = tiny_colqwen2()
    folder = tiny.save(tmp_path / "colqwen2")
    config = _config(folder)
    assert vl_family(config) == COLVISION
    backbone = load_vl_backbone(folder, config, COLVISION, torch.float32)
    inputs = load_colvision_inputs(folder, config, 512)
    prompts = colvision_prompts(inputs, ["a query", Content((ImagePart(random_image(6), "d6"),))], "documents")
    batch = collate(prompts, pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        out = backbone.hidden_states(batch.input_ids, batch.attention_mask, media=batch.media)
    with torch.no_grad():
        want = ColVisionBackbone(tiny.model).hidden_states(batch.input_ids, batch.attention_mask, media=batch.media)
    assert torch.equal(out, want)
