"""Run one task over many prompts on the model: deduplicate, batch by token budget, restore order.

The runner knows token sequences and tasks only; it never learns what a request or a query is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
from tqdm.auto import tqdm

from scorekit.engine.batching import plan_batches
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
    def __init__(self, model: ScoringModel, pad_id: int, max_batch_tokens: int = 16384, max_batch_size: int = 256):
        self.model = model
        self.pad_id = pad_id
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size

    def run(self, task: Task, prompts: Sequence[Prompt], use_tqdm: bool = False) -> list[torch.Tensor]:
        unique: dict[Prompt, int] = {}
        slots = [unique.setdefault(p, len(unique)) for p in prompts]  # identical prompts run once
        distinct = list(unique)
        outputs: list[torch.Tensor | None] = [None] * len(distinct)
        batches = plan_batches([len(p) for p in distinct], self.max_batch_tokens, self.max_batch_size)
        progress = tqdm(total=len(distinct), desc=f"scorekit {task.name}", unit="seq", disable=not use_tqdm)
        with torch.inference_mode(), progress:
            for batch_indices in batches:
                batch = collate([distinct[i] for i in batch_indices], self.pad_id, self.model.device)
                for i, out in zip(batch_indices, self._forward(task, batch)):
                    outputs[i] = out
                progress.update(len(batch_indices))
        return [outputs[s] for s in slots]

    def _forward(self, task: Task, batch: Batch) -> list[torch.Tensor]:
        if task.name == "next_token":
            return self.model.next_token(batch, task.token_ids, task.full_vocab_log_softmax)
        return getattr(self.model, task.name)(batch)
