"""The media of one prompt as the engine carries it: a model processor's tensors, identified by a key.

The engine never decodes or looks at images (no PIL here). A scoring layer runs the model's processor on the
model thread and hands the engine a `Media` per prompt; the engine only needs to

* tell prompts apart: a `Media` is equal to another exactly when their `key`s are equal (the image digests and
  the processor settings that made the tensors), so deduplication and the output cache treat the same image
  sent twice as one prompt, and never confuse two images whose prompts have the same token ids;
* price it: `extra_tokens` is what the media costs in the model's encoder beyond the prompt's token ids (a CLIP
  image prompt has no token ids, and its vision tower runs 50 positions for ViT-B/32 at 224 px; a decoder whose
  processor already expanded the image into placeholder tokens says 0). Batching and usage count it;
* pass it to the model: `collate` puts each row's Media into `Batch.media`, and the model concatenates the
  `tensors` of its rows along their first (batch) dimension, as its processor would for a list of images.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Hashable, Mapping

import torch


@dataclass(frozen=True, eq=False)
class Media:
    key: Hashable  # alone defines equality and hash: e.g. ("image", sha256 digest, processor fingerprint)
    tensors: Mapping[str, torch.Tensor] = field(default_factory=dict)  # processor outputs, batch dimension 1
    extra_tokens: int = 0  # encoder positions this media costs that are not among the prompt's input_ids
    kind: str = "image"  # the tower or modality the tensors are for; models dispatch on it

    def __eq__(self, other) -> bool:
        return isinstance(other, Media) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def without_tensors(self) -> "Media":
        """The same identity without the tensors: what a long-lived key (the output cache) keeps, so a cached
        embedding does not hold its image's pixels alive."""
        return Media(self.key, {}, self.extra_tokens, self.kind)


def concat_tensors(media: list[Media]) -> dict[str, torch.Tensor]:
    """The rows' processor outputs as one batch: each name's tensors concatenated along dimension 0."""
    names = media[0].tensors.keys()
    for m in media[1:]:
        if m.tensors.keys() != names:
            raise ValueError(f"media of one batch carry different tensors: {sorted(names)} and {sorted(m.tensors)}")
    return {name: torch.cat([m.tensors[name] for m in media]) for name in names}
