"""A prompt as the engine sees it: token ids (and token type ids for BERT-style pairs), nothing else."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Prompt:
    input_ids: tuple[int, ...]
    token_type_ids: tuple[int, ...] | None = None

    def __len__(self) -> int:
        return len(self.input_ids)
