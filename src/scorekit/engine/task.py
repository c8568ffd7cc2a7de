"""What the engine can compute for a prompt: the four task kinds, and a task with its parameters."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class TaskKind(str, enum.Enum):
    EMBED = "embed"  # one pooled vector per prompt
    TOKEN_EMBED = "token_embed"  # one vector per token (late interaction)
    CLASSIFY = "classify"  # classifier logits per prompt
    NEXT_TOKEN = "next_token"  # next-token values of a few label rows after the prompt


@dataclass(frozen=True)
class Task:
    """A kind and the parameters that change its result. Work of equal tasks from different requests may share
    batches, so everything that changes a row's output must be a field here."""

    kind: TaskKind
    token_ids: tuple[int, ...] = ()  # NEXT_TOKEN: the label rows to return
    full_vocab_log_softmax: bool = False  # NEXT_TOKEN: log-probs over the whole vocabulary (else raw label logits)
    normalize: bool = False  # EMBED: unit vectors, normalised for the whole batch at once

    def __post_init__(self):
        object.__setattr__(self, "kind", TaskKind(self.kind))
