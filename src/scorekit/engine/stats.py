"""Counters the engine keeps for /metrics and the benchmarks: batches, padding, tokens, deduplication."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class EngineStats:
    """Written only by the engine's model thread; /metrics and benchmarks read the plain ints."""

    batches: int = 0
    sequences: int = 0  # sequences submitted
    deduplicated: int = 0  # of which identical to another one in the same group (not run again)
    real_tokens: int = 0
    padded_tokens: int = 0  # rows × longest row, summed over batches
    prefix_hit_tokens: int = 0  # tokens served from a shared-prefix KV cache instead of recomputed
    # Called after every batch with (rows, real tokens, padded tokens): how /metrics fills its histograms
    # without the engine knowing about Prometheus.
    listeners: list = field(default_factory=list, repr=False)

    def record_batches(self, lengths: list[int], batches: list[list[int]]) -> None:
        for batch in batches:
            real = sum(lengths[i] for i in batch)
            padded = max(lengths[i] for i in batch) * len(batch)
            self.batches += 1
            self.real_tokens += real
            self.padded_tokens += padded
            for listener in self.listeners:
                listener(len(batch), real, padded)

    @property
    def padding_fraction(self) -> float:
        return 0.0 if not self.padded_tokens else 1 - self.real_tokens / self.padded_tokens
