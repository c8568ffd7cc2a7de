"""The engine's scheduler: model threads that batch work from every concurrent caller.

Callers (server request threads, the offline API) `submit` a task and its prompts and wait on a future. A free
model thread takes all pending work of the most urgent task — across requests — runs it as length-sorted,
cost-planned batches, and hands each caller its own rows back. Higher `priority` (lower number, as in vLLM) is
taken first; cancelled work is dropped before it runs; the queue is bounded.

Several model threads (each with a share of torch's intra-op threads) rather than one: on a small CPU a
forward of a few short rows keeps one core busy far better than two, and concurrent requests arrive a few at a
time. Two threads with one torch thread each ran single-text requests 2x faster than one thread with two. A
large group is not left to one thread either: its owner shares its batches (fanout.SharedJobs) with model
threads that have nothing of their own to do.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator, Sequence, TypeVar

import torch

from scorekit.engine.fanout import SharedJobs
from scorekit.errors import ScoreKitError
from scorekit.scoring.prompts import Prompt

T = TypeVar("T")


class QueueFull(ScoreKitError):
    status_code = 503
    error_type = "ServiceUnavailableError"


@dataclass(eq=False)
class WorkItem:
    task: object  # engine.runner.Task (hashable)
    prompts: Sequence[Prompt]
    priority: int = 0
    seq: int = 0
    on_progress: Callable[[int], None] | None = None
    # Builds `prompts` on the model thread when the work is taken (the server's tokenisation: no hop through
    # a request thread); its exception fails this item alone.
    prepare: Callable[[], Sequence[Prompt]] | None = None
    queued: int = 0  # sequences it counts for in the bounded queue
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)

    def cancel(self) -> bool:
        """Drop the work if it has not started (a client that went away)."""
        return self.future.cancel()

    @property
    def urgency(self) -> tuple[int, int]:
        return self.priority, self.seq


class Scheduler:
    """`execute(task, prompts, on_progress)` runs one merged group on the model; it is the Runner's job, and it
    may spread the group's batches over idle model threads with `fan_out`.

    `model_threads` threads take work; each sets torch's intra-op threads to `torch_threads` (None: torch's
    default for a new thread)."""

    def __init__(self, execute: Callable[[object, list[Prompt], Callable[[int], None] | None], list[torch.Tensor]],
                 max_queued_prompts: int = 100_000, model_threads: int = 1, torch_threads: int | None = None,
                 gather_fraction: float = 0.5, max_gather_seconds: float = 0.02):
        self._execute = execute
        self.gather_fraction = gather_fraction
        self.max_gather_seconds = max_gather_seconds
        self.max_queued_prompts = max_queued_prompts
        self.model_threads = max(1, model_threads)
        self.torch_threads = torch_threads
        self._queue: list[WorkItem] = []
        self._queued_prompts = 0
        self._shared: list[SharedJobs] = []  # groups whose batches idle model threads may run
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._threads: list[threading.Thread] = []
        self._group = threading.local()  # per model thread: the urgency of the group it is running
        self._stopped = False
        self._idle = 0  # model threads waiting for work in _next

    # -- callers ---------------------------------------------------------------------------------------
    def submit(self, task, prompts: Sequence[Prompt], priority: int = 0,
               on_progress: Callable[[int], None] | None = None,
               prepare: Callable[[], Sequence[Prompt]] | None = None, count: int | None = None) -> WorkItem:
        """Queue `prompts`, or `count` prompts that `prepare` will build on the model thread."""
        queued = len(prompts) if prepare is None else (count or 0)
        item = WorkItem(task, prompts, priority, next(self._counter), on_progress, prepare, queued)
        with self._cond:
            if self._queued_prompts + item.queued > self.max_queued_prompts and self._queue:
                raise QueueFull(f"The engine queue is full ({self._queued_prompts} sequences waiting); retry later.")
            self._queue.append(item)
            self._queued_prompts += item.queued
            self._ensure_threads()
            self._cond.notify()
        return item

    @property
    def queued_prompts(self) -> int:
        return self._queued_prompts

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    # -- called by `execute`, on a model thread --------------------------------------------------------
    def fan_out(self, jobs: Sequence[Callable[[], T]]) -> Iterator[tuple[int, T]]:
        """Run `jobs` (a group's batches) on this thread and on any model thread that is idle meanwhile;
        yields (job index, result) on this thread as they finish."""
        if self.model_threads == 1 or len(jobs) <= 1:
            for index, job in enumerate(jobs):
                yield index, job()
            return
        shared = SharedJobs(jobs, getattr(self._group, "urgency", (0, 0)))
        with self._cond:
            self._shared.append(shared)
            self._cond.notify(len(jobs) - 1)
        try:
            yield from shared.results()
        finally:
            shared.abandon()
            with self._cond:
                self._shared.remove(shared)

    # -- the model threads -----------------------------------------------------------------------------
    def _ensure_threads(self) -> None:
        self._threads = [t for t in self._threads if t.is_alive()]
        while len(self._threads) < self.model_threads:
            thread = threading.Thread(target=self._loop, name=f"scorekit-engine-{len(self._threads)}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _next(self) -> SharedJobs | list[WorkItem] | None:
        """Wait for work: a batch of a running group that is at least as urgent as anything queued, else all
        pending work for the task of the most urgent queued item (priority, then arrival). None: stopped.

        Gathering: callers this thread just answered tend to come straight back (a client with its next
        request). Taking the first of them alone would run a batch of one, so while fewer callers wait than
        this thread last served, it waits for them — until `gather_fraction` of its last group's run time (at
        most `max_gather_seconds`) has passed since that group finished. Single-text requests at concurrency 8
        (bench/serve_load.py): 2.3 rows per forward without it, 2.8 with it; model CPU per request 8.4 -> 7.9 ms
        (a quarter of the run time gave 2.4 rows, the whole of it no more than half)."""
        with self._cond:
            while not self._stopped:
                shared = min((s for s in self._shared if s.has_pending), key=lambda s: s.urgency, default=None)
                first = min(self._queue, key=lambda w: w.urgency, default=None)
                if shared is not None and (first is None or shared.urgency <= first.urgency):
                    return shared
                if first is not None:
                    taken = [w for w in self._queue if w.task == first.task]
                    if len(taken) < getattr(self._group, "served", 0):
                        left = self._group.gather_until - time.monotonic()
                        if left > 0:
                            self._idle_wait(left)
                            continue
                    taken = self._my_share(taken)
                    chosen = set(taken)  # WorkItems hash by identity (eq=False)
                    self._queue = [w for w in self._queue if w not in chosen]
                    self._queued_prompts -= sum(w.queued for w in taken)
                    if self._queue and self._idle:
                        self._cond.notify()  # an idle model thread takes what this one left
                    return taken
                self._idle_wait(None)
            return None

    def _idle_wait(self, timeout: float | None) -> None:
        self._idle += 1
        try:
            self._cond.wait(timeout)
        finally:
            self._idle -= 1

    def _my_share(self, items: list[WorkItem]) -> list[WorkItem]:
        """The most urgent items of one task, as many as make this thread's fair part of their prompts when
        other model threads are idle too; all of them otherwise. Without it the first thread to wake took all
        eight single-text requests at concurrency 8 and ran them alone while the other core waited, and the
        two threads settled into taking turns (bench/serve_load.py: 1.05 of 2 cores busy on the model)."""
        if not self._idle or len(items) == 1:
            return items
        items = sorted(items, key=lambda w: w.urgency)
        part = sum(max(w.queued, 1) for w in items) / (self._idle + 1)
        share, prompts = [], 0
        for item in items:
            if share and prompts >= part:
                break
            share.append(item)
            prompts += max(item.queued, 1)
        return share

    def _loop(self) -> None:
        if self.torch_threads is not None:
            torch.set_num_threads(self.torch_threads)  # this thread's own OpenMP/MKL setting, not the process's
        while True:
            work = self._next()
            if work is None:
                return
            if isinstance(work, SharedJobs):
                work.help()
                continue
            # set_running_or_notify_cancel: False for work whose caller cancelled it — dropped here, never run.
            items = [w for w in work if w.future.set_running_or_notify_cancel() and self._prepared(w)]
            if not items:
                continue
            try:
                self._run_group(items)
            except BaseException as exc:  # noqa: BLE001 - every waiting caller must hear about it
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(exc)

    @staticmethod
    def _prepared(item: WorkItem) -> bool:
        """Build a running item's prompts if it came with `prepare`; False (and its caller told) if that failed."""
        if item.prepare is None:
            return True
        try:
            item.prompts = item.prepare()
        except BaseException as exc:  # noqa: BLE001 - e.g. a text over the length limit: a 400 for this request only
            item.future.set_exception(exc)
            return False
        return True

    def _run_group(self, items: list[WorkItem]) -> None:
        prompts = [p for item in items for p in item.prompts]
        callbacks = [item.on_progress for item in items if item.on_progress is not None]

        def progress(n: int) -> None:
            for callback in callbacks:
                callback(n)

        self._group.urgency = min(item.urgency for item in items)
        started = time.monotonic()
        outputs = self._execute(items[0].task, prompts, progress if callbacks else None)
        finished = time.monotonic()
        self._group.served = len(items)
        self._group.gather_until = finished + min(self.max_gather_seconds, self.gather_fraction * (finished - started))
        start = 0
        for item in items:
            item.future.set_result(outputs[start:start + len(item.prompts)])
            start += len(item.prompts)
