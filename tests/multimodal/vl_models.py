"""Tiny randomly initialised vision-language models built from configs, with a byte-level tokenizer built here:
no weights or tokenizer files come from anywhere but this file. Each builder returns the `transformers` model
(the reference) and the pieces scorekit needs; `save` writes them as a folder that `LLM(folder)` loads.

Sizes are chosen so one forward takes milliseconds: 2 decoder layers of width 64, one or two vision blocks,
images of a few dozen pixels (4-6 image tokens each).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|image_pad|>",
                 "<|vision_end|>", "<|video_pad|>"]
QWEN_IMAGE = "<|vision_start|><|image_pad|><|vision_end|>"  # the placeholder a Qwen-VL prompt carries per image


def byte_tokenizer(specials: list[str]):
    """A byte-level BPE tokenizer: every text tokenises (one token per byte) and "yes"/"no" (also with a leading
    space) are single tokens, so they can serve as classifier_from_token labels."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {c: i for i, c in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    merges = [("y", "e"), ("ye", "s"), ("n", "o"), ("Ġ", "yes"), ("Ġ", "no")]
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend)
    tokenizer.add_special_tokens({"additional_special_tokens": specials})
    return tokenizer


def random_image(seed: int, size: tuple[int, int] = (80, 60)) -> Image.Image:
    """An RGB image of uniform noise, `size` = (width, height)."""
    pixels = np.random.RandomState(seed).randint(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    return Image.fromarray(pixels)


@dataclass
class TinyVL:
    model: Any  # the transformers model: the reference
    tokenizer: Any
    image_processor: Any
    processor: Any = None  # ColPali / ColQwen2 processors (Qwen-VL processors need torchvision: not built)

    def save(self, folder: Path) -> Path:
        self.model.save_pretrained(str(folder))
        (self.processor or self.tokenizer).save_pretrained(str(folder))
        if self.processor is None:
            self.image_processor.save_pretrained(str(folder))
        return folder


def _qwen_tokenizer():
    tokenizer = byte_tokenizer(QWEN_SPECIALS)
    tokenizer.pad_token = "<|endoftext|>"
    tokenizer.eos_token = "<|im_end|>"
    return tokenizer


def _qwen_ids(tokenizer) -> dict[str, int]:
    ids = tokenizer.convert_tokens_to_ids
    return dict(image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
                vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"))


def _text_config(tokenizer, **extra) -> dict:
    return dict(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                bos_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
                pad_token_id=tokenizer.pad_token_id, **extra)


def qwen2_vl_config(tokenizer, family: str = "qwen2_vl"):
    """Qwen2-VL or Qwen2.5-VL: 14-pixel patches, 2x2 merge (an 56x56 image is 4 tokens)."""
    import transformers

    rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0}
    vision = dict(depth=1, hidden_size=64, num_heads=2, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    if family == "qwen2_vl":
        cls, vision = transformers.Qwen2VLConfig, {**vision, "embed_dim": 32, "mlp_ratio": 2}
    else:  # Qwen2.5-VL: windowed vision attention, its own MLP width and output size
        cls = transformers.Qwen2_5_VLConfig
        vision = {**vision, "hidden_size": 32, "intermediate_size": 64, "out_hidden_size": 64, "window_size": 56,
                  "fullatt_block_indexes": [0]}
    return cls(text_config=_text_config(tokenizer, rope_parameters=rope), vision_config=vision,
               **_qwen_ids(tokenizer), tie_word_embeddings=False)


def qwen3_vl_config(tokenizer):
    """Qwen3-VL: 16-pixel patches, learned position embeddings, one DeepStack layer, interleaved M-RoPE."""
    from transformers import Qwen3VLConfig

    rope = {"rope_type": "default", "mrope_section": [2, 3, 3], "rope_theta": 10000.0, "mrope_interleaved": True}
    vision = dict(depth=2, hidden_size=32, intermediate_size=64, num_heads=2, patch_size=16, spatial_merge_size=2,
                  temporal_patch_size=2, out_hidden_size=64, num_position_embeddings=64, deepstack_visual_indexes=[0])
    return Qwen3VLConfig(text_config=_text_config(tokenizer, rope_parameters=rope, head_dim=16), vision_config=vision,
                         **_qwen_ids(tokenizer), tie_word_embeddings=False)


def tiny_qwen_vl(family: str = "qwen2_vl", seed: int = 0) -> TinyVL:
    """A random Qwen2-VL / Qwen2.5-VL / Qwen3-VL ForConditionalGeneration with its (PIL) image processor."""
    import transformers

    tokenizer = _qwen_tokenizer()
    config = qwen3_vl_config(tokenizer) if family == "qwen3_vl" else qwen2_vl_config(tokenizer, family)
    patch = config.vision_config.patch_size
    cls = {"qwen2_vl": transformers.Qwen2VLForConditionalGeneration,
           "qwen2_5_vl": transformers.Qwen2_5_VLForConditionalGeneration,
           "qwen3_vl": transformers.Qwen3VLForConditionalGeneration}[family]
    torch.manual_seed(seed)
    model = cls(config).eval()
    # Between 2x2 and 4x4 merged tokens per image: small, and images of different sizes give different grids.
    image_processor = transformers.Qwen2VLImageProcessorPil(
        min_pixels=(4 * patch) ** 2, max_pixels=(8 * patch) ** 2, patch_size=patch, merge_size=2,
        temporal_patch_size=2)
    return TinyVL(model, tokenizer, image_processor)


def tiny_colpali(seed: int = 0) -> TinyVL:
    """A random ColPaliForRetrieval (PaliGemma: SigLIP 28x28 → 4 image tokens, Gemma text) and its processor."""
    from transformers import (ColPaliConfig, ColPaliForRetrieval, ColPaliProcessor, PaliGemmaConfig,
                              SiglipImageProcessorPil)

    tokenizer = byte_tokenizer(["<pad>", "<bos>", "<eos>"])
    tokenizer.pad_token, tokenizer.bos_token, tokenizer.eos_token = "<pad>", "<bos>", "<eos>"
    image_processor = SiglipImageProcessorPil(size={"height": 28, "width": 28})
    image_processor.image_seq_length = 4
    processor = ColPaliProcessor(image_processor=image_processor, tokenizer=tokenizer)  # adds <image> and more
    text = dict(_text_config(tokenizer), model_type="gemma", num_key_value_heads=1, head_dim=16)
    vlm = PaliGemmaConfig(text_config=text, image_token_id=processor.image_token_id, projection_dim=64,
                          vision_config=dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64,
                                             num_hidden_layers=1, num_attention_heads=2, image_size=28,
                                             patch_size=14))
    torch.manual_seed(seed)
    model = ColPaliForRetrieval(ColPaliConfig(vlm_config=vlm, embedding_dim=16)).eval()
    return TinyVL(model, tokenizer, image_processor, processor)


def tiny_colqwen2(seed: int = 0) -> TinyVL:
    """A random ColQwen2ForRetrieval over a tiny Qwen2-VL, and its processor."""
    from transformers import ColQwen2Config, ColQwen2ForRetrieval, ColQwen2Processor, Qwen2VLImageProcessorPil

    tokenizer = _qwen_tokenizer()
    image_processor = Qwen2VLImageProcessorPil(min_pixels=56 * 56, max_pixels=112 * 112, patch_size=14,
                                               merge_size=2, temporal_patch_size=2)
    processor = ColQwen2Processor(image_processor=image_processor, tokenizer=tokenizer)
    torch.manual_seed(seed)
    config = ColQwen2Config(vlm_config=qwen2_vl_config(tokenizer), embedding_dim=16)
    model = ColQwen2ForRetrieval(config).eval()
    return TinyVL(model, tokenizer, image_processor, processor)
