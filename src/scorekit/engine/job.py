"""A job: one request's work for the engine, and the only thing that goes through the engine's door.

A job wraps a generator (the request's "plan"): it yields `Step`s — a task and the prompts to run it on — and
receives each step's outputs back, then returns the request's result. A single-task request is a plan of one
step; late interaction (queries first, then documents chunk by chunk, each chunk reduced to scores at once) is a
plan of several. Everything between the steps (tokenising, MaxSim, activations) runs on the engine's model
thread when the job's turn comes, so no caller thread has to block while it waits, and the offline API and
the server take the same path: `engine.submit(job)`, then `job.result()` or `await` on `job.future`.

The scheduler runs a step in chunks of about `chunk_tokens` tokens (longest prompts first, so the whole step is
length-sorted, not each chunk alone), and between two chunks it may serve other requests (fairness) or notice
that this job was cancelled (its client went away) and stop it there.
"""

from __future__ import annotations

import concurrent.futures
import threading
from dataclasses import dataclass
from typing import Any, Callable, Generator, Sequence

import torch

from scorekit.engine.prompt import Prompt
from scorekit.engine.task import Task
from scorekit.errors import ValidationError


class JobCancelled(Exception):
    """The job was cancelled (its caller went away) before it finished."""


@dataclass(frozen=True)
class Step:
    task: Task
    prompts: Sequence[Prompt]


class StepOutputs(list):
    """A step's outputs in prompt order (a list, as plans index and slice it), and `cached_tokens`: per prompt,
    how many of its tokens the engine did not compute for it (engine/runner.py says when; vLLM's
    `num_cached_tokens`)."""

    def __init__(self, outputs: Sequence[torch.Tensor], cached_tokens: Sequence[int]):
        super().__init__(outputs)
        self.cached_tokens = list(cached_tokens)


Plan = Generator[Step, StepOutputs, Any]


def one_step(task: Task, prompts: Sequence[Prompt]) -> Plan:
    """The plan of a request that is a single task over given prompts: its result is the outputs."""
    return (yield Step(task, prompts))


def no_step(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Plan:
    """The plan of work that needs no model, only a model thread's turn (tokenising): its result is fn's."""
    return fn(*args, **kwargs)
    yield  # unreachable: makes this function a generator

class Job:
    """`plan` runs on a model thread. `size` is what the job counts for in the engine's bounded queue before its
    plan has run (the number of inputs); `on_progress(n)` is told of every n prompts finished."""

    def __init__(self, plan: Plan, priority: int = 0, size: int = 1,
                 on_progress: Callable[[int], None] | None = None):
        self.future: concurrent.futures.Future = concurrent.futures.Future()
        self.priority = priority
        self.seq = 0  # set by the scheduler: arrival order, renewed each time the job goes back to the queue
        self.size = max(1, size)
        self.on_progress = on_progress
        self._plan = plan
        self._cancel = threading.Event()
        self.step: Step | None = None
        self._order: list[int] = []  # the current step's prompt indices, longest first
        self._position = 0  # how many of `_order` have run
        self._taken = 0  # where the chunk that `next_chunk` gave ends
        self._outputs: list[torch.Tensor | None] = []
        self._cached: list[int] = []

    @classmethod
    def of(cls, task: Task, prompts: Sequence[Prompt], priority: int = 0, **kwargs) -> "Job":
        return cls(one_step(task, prompts), priority=priority, size=len(prompts), **kwargs)

    # -- the caller's side --------------------------------------------------------------------------------------
    def result(self, timeout: float | None = None) -> Any:
        return self.future.result(timeout)

    def cancel(self) -> bool:
        """Stop the job: at once if it has not started (True), else at its next chunk boundary."""
        self._cancel.set()
        return self.future.cancel()

    @property
    def cancel_requested(self) -> bool:
        return self._cancel.is_set()

    # -- the scheduler's side (one model thread at a time holds a job) ------------------------------------------
    @property
    def urgency(self) -> tuple[int, int]:
        return self.priority, self.seq

    @property
    def started(self) -> bool:
        return self.step is not None

    @property
    def task(self) -> Task | None:
        return self.step.task if self.step is not None else None

    @property
    def queued(self) -> int:
        """Sequences this job counts for in the queue: what is left of its step, or its size before it started."""
        return len(self._order) - self._position if self.step is not None else self.size

    def begin(self) -> bool:
        """Run the plan up to its first step. False when the job is over: cancelled, failed, or already done."""
        if self.future.done() or not self.future.set_running_or_notify_cancel():
            return False
        return self._advance(None, first=True)

    def next_chunk(self, max_tokens: int) -> list[Prompt]:
        """The next prompts of the current step, at most `max_tokens` tokens (at least one prompt)."""
        prompts = self.step.prompts
        end, total = self._position, 0
        while end < len(self._order) and (end == self._position or total + len(prompts[self._order[end]]) <= max_tokens):
            total += len(prompts[self._order[end]])
            end += 1
        self._taken = end
        return [prompts[i] for i in self._order[self._position:end]]

    def deliver(self, outputs: list[torch.Tensor], cached_tokens: Sequence[int] | None = None) -> bool:
        """The outputs of the chunk `next_chunk` gave (and per prompt its cached tokens, when the executor counts
        them); True while the job has more to run."""
        chunk = self._order[self._position:self._taken]
        for index, value in zip(chunk, outputs):
            self._outputs[index] = value
        for index, count in zip(chunk, cached_tokens or ()):
            self._cached[index] = count
        if self.on_progress is not None:
            self.on_progress(self._taken - self._position)
        self._position = self._taken
        if self._position < len(self._order):
            return self._still_wanted()
        outputs = StepOutputs(self._outputs, self._cached)
        self._outputs, self._cached = [], []
        return self._advance(outputs)

    def fail(self, exc: BaseException) -> None:
        if not self.future.done():
            self.future.set_exception(exc)
        self._plan.close()

    def stop_if_cancelled(self) -> bool:
        """At a chunk boundary: True (and the caller told) if the job was cancelled meanwhile."""
        if not self.cancel_requested:
            return False
        self.fail(JobCancelled("the request was cancelled"))
        return True

    def _still_wanted(self) -> bool:
        return not self.stop_if_cancelled()

    def _advance(self, outputs: StepOutputs | None, first: bool = False) -> bool:
        """Send a step's outputs to the plan and take its next step; False when the plan finished or failed."""
        if not self._still_wanted():
            return False
        try:
            step = next(self._plan) if first else self._plan.send(outputs)
            while not step.prompts:  # an empty step needs no model: answer it at once
                step = self._plan.send(StepOutputs([], []))
            if any(len(p) == 0 and p.media is None for p in step.prompts):  # nothing for the model to read
                raise ValidationError("The decoder prompt cannot be empty", param="input")
        except StopIteration as done:
            self.future.set_result(done.value)
            return False
        except BaseException as exc:  # noqa: BLE001 - e.g. a text over the length limit: this request's 400 alone
            self.future.set_exception(exc)
            return False
        self.step = step
        self._order = sorted(range(len(step.prompts)), key=lambda i: -len(step.prompts[i]))
        self._position = 0
        self._outputs = [None] * len(step.prompts)
        self._cached = [0] * len(step.prompts)
        return True
