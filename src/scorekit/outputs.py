"""Result objects of the offline API, shaped like vLLM's so code written against `vllm.LLM` keeps working."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ScoringOutput:
    score: float


@dataclass
class EmbeddingOutput:
    embedding: list[float]

    @property
    def hidden_size(self) -> int:
        return len(self.embedding)


@dataclass
class ClassificationOutput:
    probs: list[float]

    @property
    def num_classes(self) -> int:
        return len(self.probs)


@dataclass
class PoolingOutput:
    """vLLM's PoolingOutput: what `LLM.encode` returns for every task, the raw tensor of one prompt."""

    data: Any  # torch.Tensor: [dim] (embed), [tokens, dim] (token_embed), [num_labels] (classify)


@dataclass
class RequestOutput:
    """vLLM's PoolingRequestOutput: `outputs` holds the result, `prompt_token_ids` the prompt that was run, and
    `num_cached_tokens` how many of its tokens the engine did not compute for it (docs/fields.md, "Offline
    outputs": the output cache, a repeat of a prompt run beside it, a shared prefix). Fields in vLLM's order."""

    request_id: str
    outputs: Any
    prompt_token_ids: list[int] = field(default_factory=list)
    num_cached_tokens: int = 0
    finished: bool = True


@dataclass
class RerankOutput:
    index: int
    document: Any
    relevance_score: float
    chunks: int | None = None  # with max_chunks_per_doc > 1: the windows of this document that were scored
    best_chunk: tuple[int, int] | None = None  # and the character span of the one that decided the score
    num_cached_tokens: int = 0  # as RequestOutput's, for this document's pair (docs/fields.md, "Offline outputs")


@dataclass
class PoolingParams:
    """The subset of vLLM's PoolingParams that scoring reads. Never mutated by scorekit."""

    use_activation: bool | None = None
    truncate_prompt_tokens: int | None = None
    task: str | None = None
    extra_kwargs: dict[str, Any] | None = None
