"""The engine's scheduler: model threads that batch the jobs of every concurrent caller, fairly.

Callers `submit` a Job (engine/job.py) and wait on its future. A free model thread takes the most urgent job
(priority, then arrival; lower priority numbers first, as in vLLM) with every other queued job of the same task,
runs the next chunk of each as one length-sorted, cost-planned group, hands each job its rows back, and puts
jobs that have more to do back at the end of the queue. So:
- concurrent requests share forwards (eight single-text requests make one batch, not eight);
- a large request runs chunk by chunk, and a one-text request that arrives meanwhile is served after at most
  one chunk, not after the whole large request (fairness);
- a job whose caller has gone stops at its next chunk, or between two batches of its chunk (cancellation);
- the queue is bounded: a submission beyond `max_queued_prompts` sequences is refused with QueueFull (503).

Several model threads (each with a share of torch's intra-op threads) rather than one: on a small CPU a
forward of a few short rows keeps one core busy far better than two, and concurrent requests arrive a few at a
time. Two threads with one torch thread each ran single-text requests 2x faster than one thread with two. A
large group is not left to one thread either: its owner shares its batches (fanout.SharedJobs) with model
threads that have nothing of their own to do.
"""

from __future__ import annotations

import atexit
import itertools
import threading
import time
import weakref
from typing import Callable, Iterator, Sequence, TypeVar

import torch

from scorekit import runtime
from scorekit.engine.fanout import SharedJobs
from scorekit.engine.job import Job
from scorekit.engine.prompt import Prompt
from scorekit.engine.task import Task
from scorekit.errors import ScoreKitError

T = TypeVar("T")


class QueueFull(ScoreKitError):
    status_code = 503
    error_type = "ServiceUnavailableError"


class Stopped(Exception):
    """A group's every job was cancelled while it ran: its remaining batches are not run."""


SOLO_CHUNKS = 16

Execute = Callable[[Task, list[Prompt], Callable[[], bool]], list[torch.Tensor]]


class Scheduler:
    """`execute(task, prompts, should_stop)` runs one merged group on the model (the Runner's job): it may spread
    the group's batches over idle model threads with `fan_out`, and raises Stopped between batches once
    `should_stop()` is true.

    `model_threads` threads take work; each sizes torch's intra-op threads to `torch_threads` (None: torch's
    default for a new thread)."""

    def __init__(self, execute: Execute, max_queued_prompts: int = 100_000, model_threads: int = 1,
                 torch_threads: int | None = None, chunk_tokens: int = 16384,
                 gather_fraction: float = 0.5, max_gather_seconds: float = 0.02):
        self._execute = execute
        self.chunk_tokens = chunk_tokens
        self.gather_fraction = gather_fraction
        self.max_gather_seconds = max_gather_seconds
        self.max_queued_prompts = max_queued_prompts
        self.model_threads = max(1, model_threads)
        self.torch_threads = torch_threads
        self._queue: list[Job] = []
        self._shared: list[SharedJobs] = []  # groups whose batches idle model threads may run
        self._cond = threading.Condition()
        self._counter = itertools.count()
        self._threads: list[threading.Thread] = []
        self._group = threading.local()  # per model thread: the urgency of the group it is running
        self._stopped = False
        self._idle = 0  # model threads waiting for work in _next
        self._running = 0  # groups being run now (for `busy`)
        # Model threads are daemons (a forgotten engine must not keep a process alive), but a process must not
        # finalise while one of them is inside torch: libgomp then aborts it ("terminate called without an
        # active exception", seen at the exit of bench/memory.py's child processes). So they are stopped first.
        atexit.register(_stop_at_exit, weakref.ref(self))

    # -- callers ---------------------------------------------------------------------------------------
    def submit(self, job: Job) -> Job:
        with self._cond:
            queued = self.queued_prompts
            if self._queue and queued + job.queued > self.max_queued_prompts:
                raise QueueFull(f"The engine queue is full ({queued} sequences waiting); retry later.")
            job.seq = next(self._counter)
            self._queue.append(job)
            self._ensure_threads()
            self._cond.notify()
        return job

    @property
    def queued_prompts(self) -> int:
        return sum(job.queued for job in list(self._queue))

    @property
    def busy(self) -> bool:
        """Work is queued or running (tests and benchmarks wait for the engine to go idle)."""
        return bool(self._queue) or self._running > 0

    def stop(self, timeout: float | None = 0.0) -> bool:
        """No more work: queued jobs are cancelled, and the model threads end after their current batch. With a
        `timeout`, wait that long for them (None: as long as it takes); True when they have all ended. A process
        should not exit while a model thread is inside torch: the interpreter's teardown then aborts it."""
        with self._cond:
            self._stopped = True
            queued, self._queue = self._queue, []
            self._cond.notify_all()
        for job in queued:
            job.cancel()
            job.stop_if_cancelled()
        deadline = None if timeout is None else time.monotonic() + timeout
        for thread in self._threads:
            thread.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(thread.is_alive() for thread in self._threads)

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

    def _next(self) -> SharedJobs | list[Job] | None:
        """Wait for work: a batch of a running group of higher priority than anything queued, else the most
        urgent queued job with every queued job that can share its forwards. None: stopped.

        A queued job of equal priority goes before helping a running group: the running group is a large job's
        chunk, and the queued one a newcomer that would otherwise wait for that chunk to end.

        Gathering: callers this thread just answered tend to come straight back (a client with its next
        request). Taking the first of them alone would run a batch of one, so while fewer callers wait than
        this thread last served, it waits for them — until `gather_fraction` of its last group's run time (at
        most `max_gather_seconds`) has passed since that group finished. Single-text requests at concurrency 8
        (bench/serve_load.py): 2.3 rows per forward without it, 2.8 with it; model CPU per request 8.4 -> 7.9 ms
        (a quarter of the run time gave 2.4 rows, the whole of it no more than half)."""
        with self._cond:
            while not self._stopped:
                shared = min((s for s in self._shared if s.has_pending), key=lambda s: s.urgency, default=None)
                first = min(self._queue, key=lambda j: j.urgency, default=None)
                if shared is not None and (first is None or shared.urgency[0] < first.priority):
                    return shared
                if first is not None:
                    taken = [j for j in self._queue if _joins(j, first)]
                    if len(taken) < getattr(self._group, "served", 0):
                        left = self._group.gather_until - time.monotonic()
                        if left > 0:
                            self._idle_wait(left)
                            continue
                    taken = self._my_share(taken)
                    self._remove(taken)
                    if self._queue and self._idle:
                        self._cond.notify()  # an idle model thread takes what this one left
                    self._running += 1
                    return taken
                if shared is not None:
                    return shared
                self._idle_wait(None)
            return None

    def _remove(self, jobs: list[Job]) -> None:
        chosen = set(map(id, jobs))
        self._queue = [j for j in self._queue if id(j) not in chosen]

    def _idle_wait(self, timeout: float | None) -> None:
        self._idle += 1
        try:
            self._cond.wait(timeout)
        finally:
            self._idle -= 1

    def _my_share(self, jobs: list[Job]) -> list[Job]:
        """The most urgent jobs of one task, as many as make this thread's fair part of their prompts when
        other model threads are idle too; all of them otherwise. Without it the first thread to wake took all
        eight single-text requests at concurrency 8 and ran them alone while the other core waited, and the
        two threads settled into taking turns (bench/serve_load.py: 1.05 of 2 cores busy on the model)."""
        if not self._idle or len(jobs) == 1:
            return jobs
        jobs = sorted(jobs, key=lambda j: j.urgency)
        part = sum(j.queued for j in jobs) / (self._idle + 1)
        share, prompts = [], 0
        for job in jobs:
            if share and prompts >= part:
                break
            share.append(job)
            prompts += job.queued
        return share

    def _requeue(self, jobs: list[Job], behind: bool) -> None:
        """Jobs with more to do go back to the queue; `behind`: after every job that arrived meanwhile."""
        if not jobs:
            return
        with self._cond:
            for job in jobs:
                if behind:
                    job.seq = next(self._counter)
                self._queue.append(job)
            self._cond.notify(len(jobs))

    def _same_task_queued(self, task: Task) -> list[Job]:
        with self._cond:
            joined = [j for j in self._queue if j.task == task and not j.cancel_requested]
            self._remove(joined)
            return joined

    def _loop(self) -> None:
        if self.torch_threads is not None:
            runtime.set_model_thread_torch_threads(self.torch_threads)  # this thread's, not the process's
        while True:
            work = self._next()
            if work is None:
                return
            if isinstance(work, SharedJobs):
                work.help()
                continue
            try:
                self._serve(work)
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()
                    idle = not self._running and not self._queue and not any(s.has_pending for s in self._shared)
            if idle:  # the heap kept this work's freed activations (runtime.py); nothing needs them now
                runtime.release_free_memory()

    def _serve(self, jobs: list[Job]) -> None:
        """Start the jobs that have not started (their plans run up to a first step), then run one chunk of
        every job that shares the most urgent one's task."""
        ready = [j for j in jobs if (j.begin() if not j.started else not j.stop_if_cancelled())]
        if not ready:
            return
        lead = min(ready, key=lambda j: j.urgency).task
        group = [j for j in ready if j.task == lead]
        self._requeue([j for j in ready if j.task != lead], behind=False)
        group += self._same_task_queued(lead)
        self._run_group(lead, group)

    def _run_group(self, task: Task, jobs: list[Job]) -> None:
        # Chunks are the unit of fairness, and they cost: at every chunk's end one model thread idles until the
        # next chunk starts (1,000 sentences alone in 4,096-token chunks: 3.16 s against 2.82 s in one). So a
        # group that nothing waits behind takes SOLO_CHUNKS chunks at once; whoever arrives meanwhile still
        # waits for one forward only, as forwards are cut to chunk_tokens (runner.py) and an idle model thread
        # serves a newcomer before it helps a running group.
        with self._cond:
            alone = not self._queue
        limit = self.chunk_tokens * (SOLO_CHUNKS if alone else 1)
        chunks = [job.next_chunk(limit) for job in jobs]
        prompts = [p for chunk in chunks for p in chunk]
        self._group.urgency = min(job.urgency for job in jobs)
        started = time.monotonic()
        try:
            outputs = self._execute(task, prompts, lambda: all(job.cancel_requested for job in jobs))
        except Stopped:
            for job in jobs:
                job.stop_if_cancelled()
            return
        except BaseException as exc:  # noqa: BLE001 - every waiting caller must hear about it
            for job in jobs:
                job.fail(exc)
            return
        finished = time.monotonic()
        self._group.served = len(jobs)
        self._group.gather_until = finished + min(self.max_gather_seconds, self.gather_fraction * (finished - started))
        more, start = [], 0
        cached = getattr(outputs, "cached_tokens", None)  # the Runner counts them; a bare executor may not
        for job, chunk in zip(jobs, chunks):
            end = start + len(chunk)
            if job.deliver(outputs[start:end], cached[start:end] if cached is not None else None):
                more.append(job)
            start = end
        self._requeue(more, behind=True)


def _stop_at_exit(ref: "weakref.ref[Scheduler]") -> None:
    scheduler = ref()
    if scheduler is not None:
        scheduler.stop(timeout=30)


def _joins(job: Job, first: Job) -> bool:
    """Whether a queued job is taken together with the most urgent one: jobs that have not started (their task
    is known only once their plan runs, on the model thread) go with other unstarted ones; started ones with
    those of the same task."""
    return job.task == first.task if first.started else not job.started
