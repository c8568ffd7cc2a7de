"""Run one task over many prompts on the model: deduplicate, batch by token budget, restore order.

The runner knows token sequences and tasks only; it never learns what a request or a query is.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from functools import partial
from typing import Sequence

import torch
from tqdm.auto import tqdm

from scorekit.engine.batching import plan_batches, spread
from scorekit.engine.cancel import current_scope
from scorekit.engine.malloc import return_large_blocks_to_os
from scorekit.engine.prefix import group_by_prefix
from scorekit.engine.scheduler import Scheduler, WorkItem
from scorekit.engine.stats import EngineStats
from scorekit.models.scoring_model import Batch, ScoringModel
from scorekit.scoring.prompts import Prompt


@dataclass(frozen=True)
class Task:
    name: str  # embed | token_embed | classify | next_token
    token_ids: tuple[int, ...] = ()  # next_token: the label rows to return
    full_vocab_log_softmax: bool = False  # next_token: log-probs over the whole vocabulary (else raw label logits)
    normalize: bool = False  # embed: unit vectors, normalised for the whole batch at once


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


# Estimated peak activations of one batch. Together with results held as small per-row tensors, this keeps a
# 1 query × 2,000 × 512-token request well under 1.5 GB above the loaded model (bench/memory.py measures it),
# however large --max-num-batched-tokens / --max-num-seqs are set.
DEFAULT_MAX_BATCH_BYTES = 1 << 30


def default_model_threads(device: torch.device, torch_threads: int, packed: bool) -> int:
    """Two model threads on a CPU with at least two torch threads (they split those threads between them) for
    our packed encoder: its short forwards keep one core busy far better than two (scheduler.py). One
    elsewhere, and for decoders: each of two threads would stream every weight of the (larger) model through
    its own core, and their forwards are big enough for torch to split across cores — Qwen2.5-0.5B reranking
    50 documents (bench/decoder_rerank.py) took 16.1 s with one thread of two torch threads, 19.0 s with two."""
    return 2 if device.type == "cpu" and torch_threads >= 2 and packed else 1


class Runner:
    """Runs tasks on the model. `run` may be called from any number of threads at once: the scheduler
    merges their work into shared batches on its model threads."""

    def __init__(self, model: ScoringModel, pad_id: int, max_batch_tokens: int = 16384, max_batch_size: int = 256,
                 max_queued_prompts: int = 100_000, prefix_sharing: bool = True, min_prefix: int = 16,
                 max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES, model_threads: int | None = None):
        self.model = model
        self.max_batch_bytes = max_batch_bytes
        return_large_blocks_to_os()  # or freed activations stay in the heap and peak RSS doubles
        self.prefix_sharing = prefix_sharing  # a switch, so benchmarks and tests can compare with it off
        self.min_prefix = min_prefix
        self.pad_id = pad_id
        self.max_batch_tokens = max_batch_tokens
        self.max_batch_size = max_batch_size
        threads = torch.get_num_threads()
        # A backbone that computes real tokens only (padding dropped before its first layer) says so; its
        # batches are then priced by real tokens, not rows × longest (batching.py).
        self.packed = bool(getattr(model.backbone, "packs_padding", False))
        model_threads = model_threads or default_model_threads(torch.device(model.device), threads, self.packed)
        self.scheduler = Scheduler(self._execute, max_queued_prompts=max_queued_prompts, model_threads=model_threads,
                                   torch_threads=max(1, threads // model_threads))
        self.stats = EngineStats()

    def submit(self, task: Task, prompts: Sequence[Prompt], priority: int = 0, on_progress=None,
               prepare=None, count: int | None = None) -> WorkItem:
        """Queue work without waiting for it; with `prepare`, the prompts are built on the model thread."""
        return self.scheduler.submit(task, prompts, priority, on_progress, prepare=prepare, count=count)

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
        """On a model thread: run each distinct prompt once, in length-sorted token-budget batches;
        decoder prompts that share a prefix (template + query) compute it once."""
        unique: dict[Prompt, int] = {}
        slots = [unique.setdefault(p, len(unique)) for p in prompts]  # identical prompts run once
        distinct = list(unique)
        copies = Counter(slots)  # progress counts every submitted prompt, duplicates included
        outputs: list[torch.Tensor | None] = [None] * len(distinct)
        self.stats.add(sequences=len(prompts), deduplicated=len(prompts) - len(distinct))

        def report(indices: list[int]) -> None:
            if on_progress is not None:
                on_progress(sum(copies[i] for i in indices))

        groups, rest = [], list(range(len(distinct)))
        if self.prefix_sharing and task.name in ("classify", "next_token") and self.model.supports_prefix:
            groups, rest = group_by_prefix([p.input_ids for p in distinct], self.min_prefix)
        for group in groups:
            with torch.inference_mode():
                cache = self.model.encode_prefix(distinct[group.members[0]].input_ids[: group.prefix_len])
            suffixes = [Prompt(distinct[i].input_ids[group.prefix_len:]) for i in group.members]
            for rows, out in self._batches(task, suffixes, prefix=cache):
                for row, value in zip(rows, out):
                    outputs[group.members[row]] = value
                report([group.members[r] for r in rows])
            self.stats.add(prefix_hit_tokens=group.prefix_len * (len(group.members) - 1))
        for rows, out in self._batches(task, [distinct[i] for i in rest]):
            for row, value in zip(rows, out):
                outputs[rest[row]] = value
            report([rest[r] for r in rows])
        return [outputs[s] for s in slots]

    def _batches(self, task: Task, prompts: list[Prompt], prefix=None):
        """Yield (row indices into `prompts`, outputs) batch by batch, in the order they finish: idle model
        threads may run some of the batches (scheduler.fan_out)."""
        lengths = [len(p) for p in prompts]
        row_bytes = None
        if self.model.activation is not None:
            row_bytes = partial(self.model.activation.row_bytes, prefix=prefix.length if prefix is not None else 0,
                                full_vocab=task.full_vocab_log_softmax)
        # Each model thread may hold a batch at once: together they stay within the byte cap.
        batches = plan_batches(lengths, self.max_batch_tokens, self.max_batch_size, row_bytes=row_bytes,
                               max_batch_bytes=self.max_batch_bytes // self.scheduler.model_threads,
                               packed=self.packed)
        batches = spread(batches, lengths, self.scheduler.model_threads)
        self.stats.record_batches(lengths, batches)
        jobs = [partial(self._run_batch, task, [prompts[i] for i in rows], prefix) for rows in batches]
        for k, out in self.scheduler.fan_out(jobs):
            yield batches[k], out

    def _run_batch(self, task: Task, prompts: list[Prompt], prefix=None) -> list[torch.Tensor]:
        batch = collate(prompts, self.pad_id, self.model.device)
        with torch.inference_mode():  # per thread: a helper model thread runs this too
            return self._forward(task, batch, prefix)

    def _forward(self, task: Task, batch: Batch, prefix=None) -> list[torch.Tensor]:
        if task.name == "next_token":
            return self.model.next_token(batch, task.token_ids, task.full_vocab_log_softmax, prefix=prefix)
        if task.name == "classify":
            return self.model.classify(batch, prefix=prefix)
        if task.name == "embed":
            return self.model.embed(batch, normalize=task.normalize)
        return getattr(self.model, task.name)(batch)
