"""Long documents scored whole: split into token windows, score each window against the query, aggregate.

A cross-encoder sees max_model_len tokens, query and template included; a document longer than what is left
would be cut (or refused). With `max_chunks_per_doc` > 1 (Cohere's name) it is split instead into windows of
the largest size the model allows after the query and template, overlapping by `chunk_overlap_tokens`, at
most `max_chunks_per_doc` of them, each scored as an ordinary (query, window) pair — so templates, prefix
sharing and batching apply unchanged — and the document's score is the `chunk_aggregation` of its windows
(`max`, `mean` or `first`). Windows are cut at token boundaries and carried as the character span of their
tokens, which is also what a result reports as `best_chunk` (for highlighting). A document that fits in one
window is scored exactly as without chunking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Sequence

from scorekit.errors import ValidationError

Aggregation = Literal["max", "mean", "first"]
DEFAULT_OVERLAP_TOKENS = 32
# A window's text is tokenised again inside its prompt, where the tokens at its two edges may merge
# differently with their neighbours: this many tokens of the budget are kept free for that.
EDGE_SLACK_TOKENS = 4


@dataclass(frozen=True)
class ChunkParams:
    max_chunks_per_doc: int = 1  # 1: no chunking (today's behaviour)
    chunk_overlap_tokens: int = DEFAULT_OVERLAP_TOKENS
    chunk_aggregation: Aggregation = "max"

    @property
    def enabled(self) -> bool:
        return self.max_chunks_per_doc > 1

    def validate(self) -> None:
        if self.max_chunks_per_doc < 1:
            raise ValidationError("max_chunks_per_doc must be at least 1", param="max_chunks_per_doc")
        if self.chunk_overlap_tokens < 0:
            raise ValidationError("chunk_overlap_tokens must not be negative", param="chunk_overlap_tokens")
        if self.chunk_aggregation not in ("max", "mean", "first"):
            raise ValidationError("chunk_aggregation must be max, mean or first", param="chunk_aggregation")


@dataclass(frozen=True)
class Windows:
    spans: list[tuple[int, int]]  # character [start, end) of each window, in document order
    total: int  # windows the whole document needs (more than len(spans) when max_chunks_per_doc cut it)


def token_windows(offsets: Sequence[tuple[int, int]], text_length: int, window: int, overlap: int,
                  max_chunks: int) -> Windows:
    """Windows of `window` tokens, each starting `window - overlap` tokens after the previous one, given the
    tokens' character offsets. One window covering the whole text when it fits."""
    if len(offsets) <= window:
        return Windows([(0, text_length)], 1)
    if overlap >= window:
        raise ValidationError(f"chunk_overlap_tokens ({overlap}) must be smaller than the window the model leaves "
                              f"for a document ({window} tokens)", param="chunk_overlap_tokens")
    stride = window - overlap
    starts = list(range(0, len(offsets) - overlap, stride))
    spans = [(offsets[s][0], offsets[min(s + window, len(offsets)) - 1][1]) for s in starts]
    return Windows(spans[:max_chunks], len(spans))


def aggregate(scores: Sequence[float], how: Aggregation) -> tuple[float, int]:
    """The document's score and the index of the window that decides it (best for max, first otherwise)."""
    if how == "first":
        return scores[0], 0
    best = max(range(len(scores)), key=lambda i: scores[i])
    if how == "mean":
        return sum(scores) / len(scores), best
    return scores[best], best
