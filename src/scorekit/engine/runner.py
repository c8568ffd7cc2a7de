"""The engine's door and its batch runner: `submit(job)` queues a request's work; on a model thread, each
group of prompts runs deduplicated, batched by token budget, with shared prefixes computed once.

The runner knows token sequences and tasks only; it never learns what a request or a query is.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Sequence

import torch

from scorekit.config import EngineConfig
from scorekit.engine.batching import plan_batches, spread
from scorekit.engine.cache import OutputCache
from scorekit.engine.job import Job, StepOutputs
from scorekit.engine.prefix import PrefixGroup, group_by_prefix
from scorekit.engine.prompt import Prompt
from scorekit.engine.scheduler import Scheduler, Stopped
from scorekit.engine.stats import EngineStats
from scorekit.engine.task import Task, TaskKind
from scorekit.models.scoring_model import Batch, ScoringModel


def collate(prompts: Sequence[Prompt], pad_id: int, device: torch.device) -> Batch:
    """Right-padded token tensors of the rows, and the rows' media. A row may have no token ids at all (an
    image prompt of a dual-tower model): it is all padding, with length 0."""
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
    # Each row's media (or None), passed through for the model to concatenate; None when no row has any.
    media = tuple(p.media for p in prompts) if any(p.media is not None for p in prompts) else None
    return Batch(ids.to(device), mask.to(device), types.to(device) if types is not None else None, lengths.to(device),
                 media=media)


def prefix_groups(prompts: Sequence[Prompt], min_prefix: int) -> tuple[list[PrefixGroup], list[int]]:
    """Prompts that share a prefix (engine/prefix.py), and the indices of the rest. Prompts with media never
    join a group: equal token ids (a processor's image placeholders) with different images must not share K/V."""
    text_only = [i for i, p in enumerate(prompts) if p.media is None]
    groups, loners = group_by_prefix([prompts[i].input_ids for i in text_only], min_prefix)
    for group in groups:
        group.members = [text_only[m] for m in group.members]
    rest = sorted([text_only[m] for m in loners] + [i for i, p in enumerate(prompts) if p.media is not None])
    return groups, rest


def default_model_threads(device: torch.device, torch_threads: int, packed: bool) -> int:
    """Two model threads on a CPU with at least two torch threads (they split those threads between them) for
    our packed encoder: its short forwards keep one core busy far better than two (scheduler.py). One
    elsewhere, and for decoders: each of two threads would stream every weight of the (larger) model through
    its own core, and their forwards are big enough for torch to split across cores — Qwen2.5-0.5B reranking
    50 documents (bench/decoder_rerank.py) took 16.1 s with one thread of two torch threads, 19.0 s with two."""
    return 2 if device.type == "cpu" and torch_threads >= 2 and packed else 1


class Runner:
    """The engine. `submit` may be called from any thread (or the event loop: it never blocks); the scheduler
    merges concurrent jobs into shared batches on its model threads."""

    def __init__(self, model: ScoringModel, pad_id: int, config: EngineConfig | None = None):
        self.model = model
        self.config = config = config or EngineConfig()
        self.pad_id = pad_id
        threads = torch.get_num_threads()
        # A backbone that computes real tokens only (padding dropped before its first layer) says so; its
        # batches are then priced by real tokens, not rows × longest (batching.py).
        self.packed = model.packs_padding
        model_threads = config.model_threads or default_model_threads(torch.device(model.device), threads, self.packed)
        self.scheduler = Scheduler(self._execute, max_queued_prompts=config.max_queued_prompts,
                                   model_threads=model_threads, torch_threads=max(1, threads // model_threads),
                                   chunk_tokens=config.chunk_tokens)
        self.stats = EngineStats()
        self.cache = OutputCache(config.score_cache_bytes)

    def submit(self, job: Job) -> Job:
        """The one door into the engine: queue a job, never wait for it (QueueFull when the queue is full)."""
        return self.scheduler.submit(job)

    def _execute(self, task: Task, prompts: list[Prompt], should_stop: Callable[[], bool]) -> StepOutputs:
        """On a model thread: run each distinct prompt once, in length-sorted token-budget batches; decoder
        prompts that share a prefix (template + query) compute it once. Before each batch, `should_stop()`
        (every caller of the group has gone) ends the group with Stopped.

        Per prompt, the tokens not computed for it (vLLM's num_cached_tokens): all of them for an output-cache
        hit and for a repeat of an earlier prompt of this group, the shared prefix for each member of a prefix
        group after its first (whose forward the prefix is counted to), none otherwise."""
        unique: dict[Prompt, int] = {}
        slots = [unique.setdefault(p, len(unique)) for p in prompts]  # identical prompts run once
        distinct = list(unique)
        self.stats.add(sequences=len(prompts), deduplicated=len(prompts) - len(distinct))
        if not self.cache.enabled:
            outputs, saved = self._compute(task, distinct, should_stop)
        else:
            outputs = self.cache.get(task, distinct)  # what earlier requests computed for the same prompts
            saved = [len(p) if out is not None else 0 for p, out in zip(distinct, outputs)]
            missing = [i for i, out in enumerate(outputs) if out is None]
            if missing:
                computed, computed_saved = self._compute(task, [distinct[i] for i in missing], should_stop)
                # Keyed without media tensors (equal, same hash): a cached vector must not keep its image's pixels.
                self.cache.put(task, [distinct[i].light() for i in missing], computed)
                for i, out, n in zip(missing, computed, computed_saved):
                    outputs[i], saved[i] = out, n
        cached, seen = [], set()
        for s in slots:  # the first copy of a prompt ran (or was cached); its repeats reuse its output whole
            cached.append(len(distinct[s]) if s in seen else saved[s])
            seen.add(s)
        return StepOutputs([outputs[s] for s in slots], cached)

    def _compute(self, task: Task, distinct: list[Prompt],
                 should_stop: Callable[[], bool]) -> tuple[list[torch.Tensor], list[int]]:
        """The outputs of distinct prompts, and per prompt the tokens a shared prefix spared it."""
        outputs: list[torch.Tensor | None] = [None] * len(distinct)
        saved = [0] * len(distinct)
        groups, rest = [], list(range(len(distinct)))
        if (self.config.enable_prefix_caching and task.kind in (TaskKind.CLASSIFY, TaskKind.NEXT_TOKEN)
                and self.model.supports_prefix):
            groups, rest = prefix_groups(distinct, self.config.min_prefix_tokens)
        for group in groups:
            if should_stop():
                raise Stopped()
            with torch.inference_mode():
                cache = self.model.encode_prefix(distinct[group.members[0]].input_ids[: group.prefix_len])
            suffixes = [Prompt(distinct[i].input_ids[group.prefix_len:]) for i in group.members]
            for rows, out in self._batches(task, suffixes, should_stop, prefix=cache):
                for row, value in zip(rows, out):
                    outputs[group.members[row]] = value
            self.stats.add(prefix_hit_tokens=group.prefix_len * (len(group.members) - 1))
            for member in group.members[1:]:
                saved[member] = group.prefix_len
        for rows, out in self._batches(task, [distinct[i] for i in rest], should_stop):
            for row, value in zip(rows, out):
                outputs[rest[row]] = value
        return outputs, saved

    def _batches(self, task: Task, prompts: list[Prompt], should_stop: Callable[[], bool], prefix=None):
        """Yield (row indices into `prompts`, outputs) batch by batch, in the order they finish: idle model
        threads may run some of the batches (scheduler.fan_out)."""
        if not prompts:
            return
        lengths = [p.num_tokens for p in prompts]  # media priced by the encoder positions they cost
        row_bytes = None
        if self.model.activation is not None:
            row_bytes = partial(self.model.activation.row_bytes, prefix=prefix.length if prefix is not None else 0,
                                full_vocab=task.full_vocab_log_softmax)
        config = self.config
        # Forwards no larger than a chunk: a request that arrives while a large one runs waits for one forward
        # of a model thread at most (scheduler.py). Measured on 1,000 sentences, forwards of 2,048 tokens ran as
        # fast as forwards of 16,384 within one group (2.84 s against 2.90 s).
        max_tokens = min(config.max_num_batched_tokens, config.chunk_tokens)
        # Each model thread may hold a batch at once: together they stay within the byte cap.
        batches = plan_batches(lengths, max_tokens, config.max_num_seqs, row_bytes=row_bytes,
                               max_batch_bytes=config.max_batch_bytes // self.scheduler.model_threads,
                               packed=self.packed)
        batches = spread(batches, lengths, self.scheduler.model_threads)
        self.stats.record_batches(lengths, batches)
        jobs = [partial(self._run_batch, task, [prompts[i] for i in rows], should_stop, prefix) for rows in batches]
        for k, out in self.scheduler.fan_out(jobs):
            yield batches[k], out

    def _run_batch(self, task: Task, prompts: list[Prompt], should_stop: Callable[[], bool],
                   prefix=None) -> list[torch.Tensor]:
        if should_stop():
            raise Stopped()
        batch = collate(prompts, self.pad_id, self.model.device)
        with torch.inference_mode():  # per thread: a helper model thread runs this too
            return _FORWARD[task.kind](self.model, task, batch, prefix)


# One model call per task kind.
_FORWARD: dict[TaskKind, Callable[[ScoringModel, Task, Batch, object], list[torch.Tensor]]] = {
    TaskKind.EMBED: lambda model, task, batch, prefix: model.embed(batch, normalize=task.normalize),
    TaskKind.TOKEN_EMBED: lambda model, task, batch, prefix: model.token_embed(batch),
    TaskKind.CLASSIFY: lambda model, task, batch, prefix: model.classify(batch, prefix=prefix),
    TaskKind.NEXT_TOKEN: lambda model, task, batch, prefix: model.next_token(
        batch, task.token_ids, task.full_vocab_log_softmax, prefix=prefix),
}
