"""Counters the engine keeps for /metrics and the benchmarks: batches, padding, tokens, deduplication."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field


@dataclass
class EngineStats:
    """Written by the engine's model threads (several groups may run at once), under one lock; /metrics and
    benchmarks read the plain ints."""

    batches: int = 0
    sequences: int = 0  # sequences submitted
    deduplicated: int = 0  # of which identical to another one in the same group (not run again)
    real_tokens: int = 0
    padded_tokens: int = 0  # rows × longest row, summed over batches
    prefix_hit_tokens: int = 0  # tokens served from a shared-prefix KV cache instead of recomputed
    # Called after every batch with (rows, real tokens, padded tokens): how /metrics fills its histograms
    # without the engine knowing about Prometheus.
    listeners: list = field(default_factory=list, repr=False)
    # `x += n` on a shared int is a read and a write: two model threads could lose an update between them.
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, sequences: int = 0, deduplicated: int = 0, prefix_hit_tokens: int = 0) -> None:
        with self._lock:
            self.sequences += sequences
            self.deduplicated += deduplicated
            self.prefix_hit_tokens += prefix_hit_tokens

    def record_batches(self, lengths: list[int], batches: list[list[int]]) -> None:
        sizes = []
        for batch in batches:
            sizes.append((len(batch), sum(lengths[i] for i in batch), max(lengths[i] for i in batch) * len(batch)))
        with self._lock:
            for _, real, padded in sizes:
                self.batches += 1
                self.real_tokens += real
                self.padded_tokens += padded
        for rows, real, padded in sizes:
            for listener in self.listeners:
                listener(rows, real, padded)

    @property
    def padding_fraction(self) -> float:
        return 0.0 if not self.padded_tokens else 1 - self.real_tokens / self.padded_tokens
