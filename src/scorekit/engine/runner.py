"""Run one task over many prompts on the model: deduplicate, batch by token budget, restore order.

The runner knows token sequences and tasks only; it never learns what a request or a query is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

from scorekit.engine.batching import plan_batches
from scorekit.engine.cancel import current_scope
from scorekit.engine.scheduler import Scheduler, WorkItem
from scorekit.engine.stats import EngineStats
from scorekit.models.scoring_model import Batch, ScoringModel
from scorekit.scoring.prompts import Prompt


@dataclass(frozen=True)
class Task:
    name: str  # embed | token_embed | classify | next_token
    token_ids: tuple[int, ...] = ()  # next_token: the label rows to return
    full_vocab_log_softmax: bool = False  # next_token: log-probs over the whole vocabulary (else raw label logits)


def collate(prompts: Sequence[Prompt], pad_id: int, device: torch.device) -> Batch:
    width = max(len(p) for p in prompts)
    ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(prompts), width), dtype=torch.long)
    types = None
    if any(p.token_type_ids is not None for p in prompts):
        types = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        n = len(prompt)
        ids[row, :n] = torch.tensor(prompt.input_ids)
        mask[row, :n] = 1
        if types is not None and prompt.token_type_ids is not None:
            types[row, :n] = torch.tensor(prompt.token_type_ids)
    lengths = mask.sum(1)
    return Batch(ids.to(device), mask.to(device), types.to(device) if types is not None else None, lengths.to(device))


class Runner:
    """Runs tasks on the model. `run` may be called from any number of threads at once: the scheduler
    merges their work into shared batches on the one model thread."""

    def __init__(self, model: ScoringModel, pad_id: int, max_batch_tokens: int = 16384, max_batch_size: int = 256,
                 max_queued_prompts: int = 100_000):
        self.model = model
        self.pad_id = pad_id
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        self.scheduler = Scheduler(self._execute, max_queued_prompts=max_queued_prompts)
        self.stats = EngineStats()

    def submit(self, task: Task, prompts: Sequence[Prompt], priority: int = 0, on_progress=None) -> WorkItem:
        return self.scheduler.submit(task, prompts, priority, on_progress)

    def run(self, task: Task, prompts: Sequence[Prompt], use_tqdm: bool = False, priority: int = 0) -> list[torch.Tensor]:
        if not prompts:
            return []
        progress = tqdm(total=len(prompts), desc=f"scorekit {task.name}", unit="seq", disable=not use_tqdm)
        with progress:
            item = self.submit(task, prompts, priority, progress.update if use_tqdm else None)
            scope = current_scope.get()
            if scope is not None:
                scope.add(item)
            return item.future.result()

    def _execute(self, task: Task, prompts: list[Prompt], on_progress=None) -> list[torch.Tensor]:
        """On the model thread: run each distinct prompt once, in length-sorted token-budget batches."""
        unique: dict[Prompt, int] = {}
        slots = [unique.setdefault(p, len(unique)) for p in prompts]  # identical prompts run once
        distinct = list(unique)
        copies = Counter(slots)  # progress counts every submitted prompt, duplicates included
        outputs: list[torch.Tensor | None] = [None] * len(distinct)
        lengths = [len(p) for p in distinct]
        batches = plan_batches(lengths, self.max_batch_tokens, self.max_batch_size)
        self.stats.record(lengths, batches, len(prompts))
        with torch.inference_mode():
            for batch_indices in batches:
                batch = collate([distinct[i] for i in batch_indices], self.pad_id, self.model.device)
                for i, out in zip(batch_indices, self._forward(task, batch)):
                    outputs[i] = out
                if on_progress is not None:
                    on_progress(sum(copies[i] for i in batch_indices))
        return [outputs[s] for s in slots]

    def _forward(self, task: Task, batch: Batch) -> list[torch.Tensor]:
        if task.name == "next_token":
            return self.model.next_token(batch, task.token_ids, task.full_vocab_log_softmax)
        return getattr(self.model, task.name)(batch)
