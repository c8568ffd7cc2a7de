"""The Scorer's input builders for the vision-language families (`LoadedModel.media_inputs`), over the prompt
layer of scoring/multimodal_prompts.py.

- ColVisionMediaInputs (ColPali/ColQwen2): every side, text or image, through the model's retrieval processor,
  so a text is the same prompt whether or not the batch holds images (batch invariance).
- QwenVLMediaInputs (Qwen-VL): the image processor; the Scorer builds cross-encoder and generative prompts
  through `QwenVLPrompts` for pairs/items with images, text-only ones keep the text path (tested against vLLM).

Truncation options would cut inside a processor's fixed prompt or an image: refused on inputs they would cut,
never applied silently.
"""

from __future__ import annotations

from typing import Sequence

from scorekit.errors import ValidationError
from scorekit.models.vision.colpali import ColVisionInputs
from scorekit.scoring.multimodal_prompts import QwenVLPrompts, colvision_prompts
from scorekit.scoring.truncation import TruncationParams


def refuse_truncation(truncation: TruncationParams | None, what: str) -> None:
    if truncation is None:
        return
    if truncation.truncate_prompt_tokens is not None or truncation.max_tokens_per_query or truncation.max_tokens_per_doc:
        raise ValidationError(f"truncation options do not apply to {what}: its prompts are built by the model's "
                              "processor and an image is never cut", param="truncate_prompt_tokens")


class ColVisionMediaInputs:
    def __init__(self, inputs: ColVisionInputs, embedding_size: int):
        self.inputs = inputs
        self.embedding_size = embedding_size

    def prompts(self, items: Sequence, builder, truncation: TruncationParams | None, is_query: bool):
        refuse_truncation(truncation, "ColPali/ColQwen2")
        return colvision_prompts(self.inputs, list(items), "query" if is_query else "document")


class QwenVLMediaInputs:
    """Holds the image processor; `prompts_for(template, special_tokens)` is the QwenVLPrompts of a Scorer."""

    def __init__(self, tokenizer, image_processor, max_model_len: int):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.max_model_len = max_model_len

    def prompts_for(self, template: str | None, special_tokens: dict) -> QwenVLPrompts:
        return QwenVLPrompts(self.tokenizer, self.image_processor, self.max_model_len, template, special_tokens)

    def prompts(self, items: Sequence, builder, truncation: TruncationParams | None, is_query: bool):
        raise ValidationError("Qwen-VL models score pairs (cross-encoder) or items (generative scoring); they have "
                              "no per-input embeddings")
