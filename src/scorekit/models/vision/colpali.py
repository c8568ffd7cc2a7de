"""ColPali and ColQwen2: late interaction over page images, on `transformers`' own retrieval classes.

`ColPaliForRetrieval` (PaliGemma: SigLIP + Gemma) and `ColQwen2ForRetrieval` (Qwen2-VL) return one vector per
prompt token, image tokens included: projected to `embedding_dim`, L2-normalised and zeroed on padding by the
model itself. scorekit keeps each row's real tokens ([T, dim]) and scores pairs by MaxSim (SPEC §5.4). Each side
of a pair is encoded on its own, so an image never sees the query.

Inputs are made the way the model was trained, by its processor (`ColPaliProcessor` / `ColQwen2Processor`):
- text (a query, or a text-only document) through `process_queries`: the processor's query prefix, the text and
  its ten query-augmentation tokens;
- one image through `process_images`: the image tokens and the processor's fixed visual prompt.
An input with both text and an image, or with several images, has no such form and is refused by name.

The engine sees token ids plus per-prompt media (engine/media.py: the image's processor tensors, keyed by its
digest); `collate_images` joins those of a batch's rows in row order, the order the model consumes images in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from scorekit.engine.media import Media
from scorekit.errors import ValidationError
from scorekit.models.backbone import EncoderBackbone
from scorekit.scoring.truncation import too_long_error

COLVISION_ARCHITECTURES = ("ColPaliForRetrieval", "ColQwen2ForRetrieval")


@dataclass(frozen=True)
class ColVisionPrompt:
    input_ids: list[int]
    token_type_ids: list[int] | None  # ColPali's processor gives them (all 0: PaliGemma's prefix); ColQwen2's none
    # The image's processor tensors: ColPali `pixel_values` [1, 3, H, W]; ColQwen2 `pixel_values`
    # [patches, C·T·P·P] (unpadded) and `image_grid_thw` [1, 3].
    image: dict[str, Tensor] | None = None

    def media(self, digest) -> Media | None:
        """The engine's Media for the image: keyed by its `ImagePart.key` (the bytes' digest and the processor
        options); its tokens are among the prompt's ids."""
        return None if self.image is None else Media(("colvision-image", digest), self.image, extra_tokens=0)


def collate_images(media: Sequence[Media | None] | None, device: torch.device, dtype: torch.dtype) -> dict[str, Tensor]:
    """Model inputs for a batch's images, in row order. ColQwen2's forward takes one padded row of patches per
    image, with `image_grid_thw` saying how many of them are real; ColPali's takes the images stacked."""
    images = [m.tensors for m in (media or ()) if m is not None]
    if not images:
        return {}
    if "image_grid_thw" not in images[0]:
        return {"pixel_values": torch.cat([i["pixel_values"] for i in images]).to(device, dtype)}
    longest = max(i["pixel_values"].shape[0] for i in images)
    padded = torch.zeros(len(images), longest, images[0]["pixel_values"].shape[1], dtype=dtype)
    for row, image in enumerate(images):
        padded[row, : image["pixel_values"].shape[0]] = image["pixel_values"]
    grid = torch.cat([i["image_grid_thw"] for i in images])
    return {"pixel_values": padded.to(device), "image_grid_thw": grid.to(device)}


class ColVisionBackbone(torch.nn.Module, EncoderBackbone):
    """Token embeddings [B, T, dim] of a ColPali/ColQwen2 model: already projected, unit length and zero on
    padding (the model's forward does all three), so scorekit adds no projection of its own."""

    packs_padding = False  # transformers runs every padded position through every layer
    has_classifier = False
    accepts_media = True

    def __init__(self, hf_model):
        super().__init__()
        self.hf_model = hf_model.eval().requires_grad_(False)
        self.embedding_dim = hf_model.config.embedding_dim

    @property
    def vocab_size(self) -> int:
        return self.hf_model.vlm.get_input_embeddings().num_embeddings

    def hidden_states(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None,
                      media: Sequence[Media | None] | None = None) -> Tensor:
        weight = self.hf_model.embedding_proj_layer.weight
        extra = collate_images(media, weight.device, weight.dtype)
        if token_type_ids is not None:
            # ColPali's processor marks the whole prompt as PaliGemma's prefix (token type 0): attention over it is
            # bidirectional. Without them transformers' PaliGemma is bidirectional under SDPA only when the batch
            # has no padding, and causal otherwise: the same row would embed differently in different batches.
            extra["token_type_ids"] = token_type_ids
        return self.hf_model(input_ids=input_ids, attention_mask=attention_mask, **extra).embeddings

    def classify_tokens(self, input_ids, attention_mask, token_type_ids=None):
        raise TypeError(f"{type(self.hf_model).__name__} is a late-interaction model: it has no classifier")


class ColVisionInputs:
    """Texts and images → (token ids, image) prompts, through the model's own retrieval processor."""

    def __init__(self, processor, max_model_len: int):
        self.processor = processor
        self.max_model_len = max_model_len
        self.qwen = hasattr(processor.image_processor, "merge_size")  # ColQwen2's Qwen2-VL image processor

    def _rows(self, batch) -> list[ColVisionPrompt]:
        """The processor's padded batch as rows of real tokens (and ColPali's token types)."""
        mask = batch["attention_mask"].bool()
        types = batch.get("token_type_ids")
        rows = []
        for i, real in enumerate(mask):
            ids = batch["input_ids"][i][real].tolist()
            if len(ids) > self.max_model_len:
                raise too_long_error(len(ids), self.max_model_len)
            rows.append(ColVisionPrompt(ids, types[i][real].tolist() if types is not None else None))
        return rows

    def texts(self, texts: Sequence[str]) -> list[ColVisionPrompt]:
        """`process_queries`: prefix, text, augmentation tokens (padding dropped)."""
        if not texts:
            return []
        return self._rows(self.processor.process_queries(list(texts), return_tensors="pt"))

    def image(self, image, options: Sequence[tuple[str, int]] = ()) -> ColVisionPrompt:
        """`process_images` of one PIL image: its token ids (image tokens included) and tensors. `options`
        (ColQwen2's min_pixels/max_pixels, validated by the caller) bound the image's resize."""
        extra = {}
        if options:
            from scorekit.models.vision.qwen_vl import pixel_bounds

            extra = {"size": pixel_bounds(self.processor.image_processor, options)}
        batch = self.processor.process_images([image], return_tensors="pt", **extra)
        row = self._rows(batch)[0]
        if self.qwen:
            grid = batch["image_grid_thw"]
            patches = int(grid[0, 1] * grid[0, 2])  # ColQwen2's processor pads patches per image; one image: none
            image = {"pixel_values": batch["pixel_values"][0, :patches], "image_grid_thw": grid}
        else:
            image = {"pixel_values": batch["pixel_values"]}
        return ColVisionPrompt(row.input_ids, row.token_type_ids, image)

    @staticmethod
    def check_parts(texts: Sequence[str], images: Sequence, where: str) -> None:
        """One input is text or one image: the two forms the processor defines."""
        if images and any(t.strip() for t in texts):
            raise ValidationError(f"{where}: ColPali/ColQwen2 encode an input as text or as one image, not both; "
                                  "send the text and the image as separate inputs", param=where)
        if len(images) > 1:
            raise ValidationError(f"{where}: ColPali/ColQwen2 encode one image per input, got {len(images)}",
                                  param=where)
