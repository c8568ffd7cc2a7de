"""The engine's scheduler: one thread owns the model and batches work from every concurrent caller.

Callers (server request threads, the offline API) `submit` a task and its prompts and wait on a future. The
scheduler thread drains the queue, merges all pending work of the same task — across requests — into
length-sorted, token-budget batches, runs them, and hands each caller its own rows back. Higher `priority`
(lower number, as in vLLM) goes first; cancelled work is dropped before it runs; the queue is bounded.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import threading
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch

from scorekit.errors import ScoreKitError
from scorekit.scoring.prompts import Prompt


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
    future: concurrent.futures.Future = field(default_factory=concurrent.futures.Future)

    def cancel(self) -> bool:
        """Drop the work if it has not started (a client that went away)."""
        return self.future.cancel()


class Scheduler:
    """`execute(task, prompts, on_progress)` runs one merged group on the model; it is the Runner's job."""

    def __init__(self, execute: Callable[[object, list[Prompt], Callable[[int], None] | None], list[torch.Tensor]],
                 max_queued_prompts: int = 100_000):
        self._execute = execute
        self.max_queued_prompts = max_queued_prompts
        self._queue: list[WorkItem] = []
        self._queued_prompts = 0
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    # -- callers ---------------------------------------------------------------------------------------
    def submit(self, task, prompts: Sequence[Prompt], priority: int = 0,
               on_progress: Callable[[int], None] | None = None) -> WorkItem:
        item = WorkItem(task, prompts, priority, next(self._counter), on_progress)
        with self._cond:
            if self._queued_prompts + len(prompts) > self.max_queued_prompts and self._queue:
                raise QueueFull(f"The engine queue is full ({self._queued_prompts} sequences waiting); retry later.")
            self._queue.append(item)
            self._queued_prompts += len(prompts)
            self._ensure_thread()
            self._cond.notify()
        return item

    @property
    def queued_prompts(self) -> int:
        return self._queued_prompts

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()

    # -- the scheduler thread --------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="scorekit-engine", daemon=True)
            self._thread.start()

    def _take(self) -> list[WorkItem]:
        """All pending work for the task of the most urgent item (priority, then arrival)."""
        with self._cond:
            while not self._queue and not self._stopped:
                self._cond.wait()
            if self._stopped:
                return []
            first = min(self._queue, key=lambda w: (w.priority, w.seq))
            taken = [w for w in self._queue if w.task == first.task]
            self._queue = [w for w in self._queue if w.task != first.task]
            self._queued_prompts -= sum(len(w.prompts) for w in taken)
        # set_running_or_notify_cancel: False for work whose caller cancelled it — dropped here, never run.
        return [w for w in taken if w.future.set_running_or_notify_cancel()]

    def _loop(self) -> None:
        while not self._stopped:
            items = self._take()
            if not items:
                continue
            try:
                self._run_group(items)
            except BaseException as exc:  # noqa: BLE001 - every waiting caller must hear about it
                for item in items:
                    if not item.future.done():
                        item.future.set_exception(exc)

    def _run_group(self, items: list[WorkItem]) -> None:
        prompts = [p for item in items for p in item.prompts]
        callbacks = [item.on_progress for item in items if item.on_progress is not None]

        def progress(n: int) -> None:
            for callback in callbacks:
                callback(n)

        outputs = self._execute(items[0].task, prompts, progress if callbacks else None)
        start = 0
        for item in items:
            item.future.set_result(outputs[start:start + len(item.prompts)])
            start += len(item.prompts)
