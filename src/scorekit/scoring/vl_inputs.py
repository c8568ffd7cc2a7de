"""The Scorer's input builders for the vision-language families (`LoadedModel.media_inputs`), over the prompt
layer of scoring/multimodal_prompts.py.

- ColVisionMediaInputs (ColPali/ColQwen2): every side, text or image, through the model's retrieval processor,
  so a text is the same prompt whether or not the batch holds images (batch invariance).
- QwenVLMediaInputs (Qwen-VL): the image processor; the Scorer builds cross-encoder and generative prompts
  through `QwenVLPrompts` for pairs/items with images, text-only ones keep the text path (tested against vLLM).

Truncation options would cut inside a processor's fixed prompt or an image: refused on inputs they would cut,
never applied silently. mm_processor_kwargs (`processor_options`): each builder names the keys its processor
takes; they ride on each image (`ImagePart.options`) into the processor call and the media key.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from scorekit.errors import ValidationError
from scorekit.media.content import ProcessorOptions
from scorekit.models.vision.colpali import ColVisionInputs
from scorekit.models.vision.qwen_vl import PIXEL_BOUNDS, pixel_bounds
from scorekit.scoring.multimodal_prompts import QwenVLPrompts, colvision_prompts
from scorekit.scoring.truncation import TruncationParams

PARAM = "mm_processor_kwargs"


def processor_options(media_inputs, architecture: str, *layers: Mapping[str, Any] | None) -> ProcessorOptions:
    """mm_processor_kwargs (the model's defaults, then a request's over them) → the validated options every image
    of the request is processed with (`ImagePart.options`). Each input builder says which keys its processor takes
    (`check_processor_kwargs`); any other key, or a bad value, is a ValidationError naming it. Empty: ()."""
    merged: dict[str, Any] = {}
    for layer in layers:
        if layer:
            if not isinstance(layer, Mapping):
                raise ValidationError(f"{PARAM} must be an object", param=PARAM)
            merged.update(layer)
    if not merged:
        return ()
    check = getattr(media_inputs, "check_processor_kwargs", None)
    if check is None:
        raise ValidationError(f"{PARAM}: {architecture} takes no multimodal input, so there is no processor to pass "
                              "them to.", param=PARAM)
    return check(merged)


def _positive_int(name: str, value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValidationError(f"{PARAM}.{name} must be a positive integer, not {value!r}", param=PARAM)
    return value


def refuse_unknown(kwargs: Mapping[str, Any], allowed: Sequence[str], what: str) -> None:
    unknown = [k for k in kwargs if k not in allowed]
    if unknown:
        takes = f"takes only {', '.join(repr(a) for a in allowed)}" if allowed else "takes none"
        raise ValidationError(f"{PARAM}: {unknown[0]!r} is not a setting of {what}; it {takes}", param=PARAM)


def check_pixel_bounds(kwargs: Mapping[str, Any], image_processor, max_model_len: int, what: str) -> ProcessorOptions:
    """min_pixels / max_pixels of a Qwen2-VL-style image processor (Qwen-VL, ColQwen2): positive integers, the
    minimum not over the maximum (with the processor's own value for the one not given), and not so large that
    every image alone would be longer than max_model_len."""
    refuse_unknown(kwargs, tuple(PIXEL_BOUNDS), what)
    options = tuple(sorted((name, _positive_int(name, value)) for name, value in kwargs.items()))
    bounds = pixel_bounds(image_processor, options)
    if bounds["shortest_edge"] > bounds["longest_edge"]:
        raise ValidationError(f"{PARAM}: min_pixels ({bounds['shortest_edge']}) is over max_pixels "
                              f"({bounds['longest_edge']})", param=PARAM)
    factor = image_processor.patch_size * image_processor.merge_size  # pixels per side of one image token
    least = bounds["shortest_edge"] // factor**2
    if least > max_model_len:
        raise ValidationError(f"{PARAM}: min_pixels {bounds['shortest_edge']} makes every image at least {least} "
                              f"tokens, over max_model_len ({max_model_len})", param=PARAM)
    return options


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

    def check_processor_kwargs(self, kwargs: Mapping[str, Any]) -> ProcessorOptions:
        """ColQwen2: min_pixels / max_pixels (its Qwen2-VL image processor). ColPali: none: PaliGemma's image
        takes a fixed number of tokens (`image_seq_length`), so its resolution cannot change per request."""
        if not self.inputs.qwen:
            refuse_unknown(kwargs, (), "ColPali's image processor (PaliGemma images have a fixed size and token count)")
        return check_pixel_bounds(kwargs, self.inputs.processor.image_processor, self.inputs.max_model_len,
                                  "ColQwen2's image processor")


class QwenVLMediaInputs:
    """Holds the image processor; `prompts_for(template, special_tokens)` is the QwenVLPrompts of a Scorer."""

    def __init__(self, tokenizer, image_processor, max_model_len: int, embedding_size: int):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.max_model_len = max_model_len
        # The width of the hidden states (what a decoder's `embedding_size` is, as for text decoders); the model
        # serves no embeddings (`prompts` below), so no request is ever answered with vectors of this size.
        self.embedding_size = embedding_size

    def check_processor_kwargs(self, kwargs: Mapping[str, Any]) -> ProcessorOptions:
        """min_pixels / max_pixels: the bounds of the image processor's resize (vLLM's mm_processor_kwargs for
        Qwen-VL), which set how many tokens an image takes."""
        return check_pixel_bounds(kwargs, self.image_processor, self.max_model_len, "the Qwen-VL image processor")

    def prompts_for(self, template: str | None, special_tokens: dict) -> QwenVLPrompts:
        return QwenVLPrompts(self.tokenizer, self.image_processor, self.max_model_len, template, special_tokens)

    def prompts(self, items: Sequence, builder, truncation: TruncationParams | None, is_query: bool):
        raise ValidationError("Qwen-VL models score pairs (cross-encoder) or items (generative scoring); they have "
                              "no per-input embeddings")
