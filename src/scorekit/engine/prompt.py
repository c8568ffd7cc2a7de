"""A prompt as the engine sees it: token ids (and token type ids for BERT-style pairs), and optionally the
media (processor tensors, identified by a key: engine/media.py) that go with them.

A Prompt is hashable and compared by value: identical prompts in a group run once, and the output cache is keyed
by them. Media take part through their key only (the same image bytes under the same processor settings).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from scorekit.engine.media import Media


@dataclass(frozen=True)
class Prompt:
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None = None
    media: Media | None = None

    def __len__(self) -> int:
        """Token positions (the width `collate` pads to); media cost more: see `num_tokens`."""
        return len(self.input_ids)

    @property
    def num_tokens(self) -> int:
        """What the prompt costs the model, in tokens: its token ids plus its media's encoder positions. Batches
        are priced with it, and usage counts it (an image counts the vision tokens it runs, as in vLLM)."""
        return len(self.input_ids) + (self.media.extra_tokens if self.media is not None else 0)

    def light(self) -> "Prompt":
        """This prompt with its media's tensors dropped (same equality and hash): for long-lived keys."""
        return self if self.media is None else replace(self, media=self.media.without_tensors())
