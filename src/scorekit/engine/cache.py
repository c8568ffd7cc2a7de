"""The engine's output cache: what a prompt gave, kept for the next request that sends the same prompt.

In RAG the same candidate documents come back for many queries; a bi-encoder or late-interaction model would
embed them again every time, and a cross-encoder or decoder reranker score the same (query, document) prompt
again. The key is everything the engine's output depends on: the task (its kind and parameters: label rows,
normalisation...) and the prompt's exact token ids (and token type ids). Everything else that changes a result
— truncation, template, pooling choice, activation — either changes those tokens or is applied after the
engine, on the cached output, as on a fresh one. One cache per engine, so per model, shared by every request.

An LRU bounded in bytes: the tensors' bytes plus the key's token ids (8 bytes each in a Python tuple) and a
fixed per-entry overhead. A hit returns the very tensor computed the first time, so a cached answer is
bit-identical to the first one.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import torch

from scorekit.engine.prompt import Prompt
from scorekit.engine.task import Task

ENTRY_OVERHEAD_BYTES = 200  # the OrderedDict slot, the key tuple and the tensor object itself


def entry_bytes(prompt: Prompt, value: torch.Tensor) -> int:
    types = len(prompt.token_type_ids) if prompt.token_type_ids is not None else 0
    return value.numel() * value.element_size() + 8 * (len(prompt) + types) + ENTRY_OVERHEAD_BYTES


class OutputCache:
    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[Task, Prompt], tuple[torch.Tensor, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.bytes = 0
        self.hits = 0
        self.misses = 0

    @property
    def enabled(self) -> bool:
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, task: Task, prompts: list[Prompt]) -> list[torch.Tensor | None]:
        """The cached output of each prompt, or None."""
        out: list[torch.Tensor | None] = []
        with self._lock:
            for prompt in prompts:
                entry = self._entries.get((task, prompt))
                if entry is None:
                    self.misses += 1
                    out.append(None)
                else:
                    self._entries.move_to_end((task, prompt))
                    self.hits += 1
                    out.append(entry[0])
        return out

    def put(self, task: Task, prompts: list[Prompt], values: list[torch.Tensor]) -> None:
        with self._lock:
            for prompt, value in zip(prompts, values):
                size = entry_bytes(prompt, value)
                if size > self.max_bytes:
                    continue  # larger than the whole cache: never kept
                key = (task, prompt)
                old = self._entries.pop(key, None)
                if old is not None:
                    self.bytes -= old[1]
                # A model's outputs are rows of its batch tensor: kept as they are, one row would hold the whole
                # batch's memory, which the byte count would not see.
                self._entries[key] = (value.clone(), size)
                self.bytes += size
            while self.bytes > self.max_bytes:
                _, (_, size) = self._entries.popitem(last=False)
                self.bytes -= size
