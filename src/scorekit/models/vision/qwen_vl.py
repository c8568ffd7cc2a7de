"""Qwen2-VL, Qwen2.5-VL and Qwen3-VL as decoders that read images: generative scorers, and rerankers through the
same `classifier_from_token` conversion as text decoders (models/decoder_heads.py reads the label rows of the
LM head at the last real position; nothing here is specific to scoring).

The `transformers` *ForConditionalGeneration class does the work; this backbone adds what scoring needs:
- final-normed hidden states for right-padded batches that mix text-only rows and rows with images;
- M-RoPE position ids computed here, per row over its real tokens (`get_rope_index` with the attention mask),
  instead of by the model's forward, which caches `rope_deltas` on the module between calls (a state two
  batches must not share);
- each image's placeholder expanded to its number of merged patches (`expand_image_pads`), the way the
  processor does, from the image processor's grid.

No shared-prefix reuse: images sit inside prompts and M-RoPE positions after an image are not the token
index, so a cached prefix would not be exact (`supports_prefix` is False).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from scorekit.engine.media import Media, concat_tensors
from scorekit.models.hf_fallback import HFDecoderBackbone

QWEN_VL_TYPES = ("qwen2_vl", "qwen2_5_vl", "qwen3_vl")
# The placeholder a Qwen-VL prompt carries for one image, before expansion (vLLM's placeholder string too).
IMAGE_PLACEHOLDER = "<|vision_start|><|image_pad|><|vision_end|>"


@dataclass(frozen=True)
class QwenVLImage:
    """One image as the Qwen2-VL image processor prepared it."""

    pixel_values: Tensor  # [patches, C·T·P·P]
    image_grid_thw: Tensor  # [1, 3]: temporal, height, width in patches

    def tokens(self, merge_size: int) -> int:
        """Placeholder tokens the image takes in the prompt: its patches after the spatial merge."""
        return int(self.image_grid_thw.prod()) // merge_size**2


# mm_processor_kwargs a Qwen-VL image processor takes: the pixel bounds its resize keeps every image within
# (vLLM's and the model card's names; transformers spells them size={"shortest_edge", "longest_edge"}).
PIXEL_BOUNDS = {"min_pixels": "shortest_edge", "max_pixels": "longest_edge"}


def pixel_bounds(image_processor, options: Sequence[tuple[str, int]] = ()) -> dict[str, int]:
    """The processor's own {shortest_edge, longest_edge} (min and max pixels), with `options` over them."""
    size = image_processor.size
    bounds = {"shortest_edge": int(size["shortest_edge"]), "longest_edge": int(size["longest_edge"])}
    for name, value in options:
        bounds[PIXEL_BOUNDS[name]] = int(value)
    return bounds


def process_images(image_processor, images: Sequence, options: Sequence[tuple[str, int]] = ()) -> list[QwenVLImage]:
    """PIL images → one QwenVLImage each (the processor resizes each to a multiple of patch × merge, its pixel
    count within min_pixels..max_pixels: the processor's own, or those of `options`)."""
    if not images:
        return []
    extra = {"size": pixel_bounds(image_processor, options)} if options else {}
    out = image_processor(images=list(images), return_tensors="pt", **extra)
    grids = out["image_grid_thw"]
    pieces = torch.split(out["pixel_values"], grids.prod(-1).tolist())
    return [QwenVLImage(p, g.unsqueeze(0)) for p, g in zip(pieces, grids)]


def prompt_media(images: Sequence[QwenVLImage], digests: Sequence) -> Media | None:
    """The engine's Media of one prompt with these images (in prompt order): their patches concatenated and
    one grid row each, identified by the images' keys (digest and processor options: `ImagePart.key`). The placeholders are already prompt tokens, so the
    media costs no tokens beyond the prompt's (vLLM counts image placeholders as prompt tokens too)."""
    if not images:
        return None
    tensors = {"pixel_values": torch.cat([i.pixel_values for i in images]),
               "image_grid_thw": torch.cat([i.image_grid_thw for i in images])}
    return Media(("qwen-vl-images", tuple(digests)), tensors, extra_tokens=0)


def expand_image_pads(token_ids: Sequence[int], pad_id: int, counts: Sequence[int]) -> list[int]:
    """Each `<|image_pad|>` of a tokenised prompt repeated to its image's token count, images in order.
    A prompt whose placeholders and images disagree in number is a caller's bug: refused."""
    found = sum(1 for t in token_ids if t == pad_id)
    if found != len(counts):
        raise ValueError(f"the prompt has {found} image placeholders for {len(counts)} images")
    expanded: list[int] = []
    images = iter(counts)
    for token in token_ids:
        expanded.extend([pad_id] * next(images) if token == pad_id else [token])
    return expanded


class QwenVLBackbone(HFDecoderBackbone):
    """A Qwen-VL *ForConditionalGeneration as a DecoderBackbone whose `hidden_states` also takes the batch's media
    (`Batch.media`: per row a Media of `prompt_media`, or None). Their tensors are concatenated in row order,
    which is the order the model fills image tokens in (row by row, left to right)."""

    accepts_media = True

    def __init__(self, hf_model):
        super().__init__(hf_model)
        config = hf_model.config
        self.image_token_id = config.image_token_id
        self.merge_size = config.vision_config.spatial_merge_size

    def hidden_states(self, input_ids: Tensor, attention_mask: Tensor,
                      media: Sequence[Media | None] | None = None) -> Tensor:
        vlm = self.hf_model.model
        # Image tokens on real positions only: padding is never an image token, whatever id fills it.
        mm_token_type_ids = ((input_ids == self.image_token_id) & attention_mask.bool()).int()
        extra, grid, wanted = {}, None, 0
        rows = [m for m in (media or ()) if m is not None]
        if rows:
            tensors = concat_tensors(rows)
            grid = tensors["image_grid_thw"].to(input_ids.device)
            extra = {"pixel_values": tensors["pixel_values"].to(input_ids.device, vlm.visual.dtype),
                     "image_grid_thw": grid}
            wanted = int(grid.prod(-1).sum()) // self.merge_size**2
        if int(mm_token_type_ids.sum()) != wanted:
            raise ValueError(f"the batch has {int(mm_token_type_ids.sum())} image tokens for images of {wanted}")
        position_ids, _ = vlm.get_rope_index(input_ids, mm_token_type_ids, image_grid_thw=grid,
                                             attention_mask=attention_mask)
        out = vlm(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                  mm_token_type_ids=mm_token_type_ids, use_cache=False, **extra)
        return out.last_hidden_state
