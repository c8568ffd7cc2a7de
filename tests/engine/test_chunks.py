"""A large job runs in chunks: other requests are served between its chunks (fairness), a cancelled job stops
at its next chunk or batch (cancellation), and the chunked result equals the unchunked one."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import pytest
import torch

from scorekit.engine.job import Job, JobCancelled, Step
from scorekit.engine.prompt import Prompt
from scorekit.engine.scheduler import Scheduler, Stopped


@dataclass(frozen=True)
class Named:
    name: str


def _prompts(n: int, length: int = 10) -> list[Prompt]:
    return [Prompt(tuple(range(i, i + length))) for i in range(n)]


class _Slow:
    """An executor that takes `seconds` per group and records (task name, rows) of every group."""

    def __init__(self, seconds: float = 0.02):
        self.seconds = seconds
        self.groups: list[tuple[str, int]] = []
        self.first = threading.Event()

    def __call__(self, task, prompts, should_stop):
        self.groups.append((task.name, len(prompts)))
        self.first.set()
        time.sleep(self.seconds)
        return [p.input_ids[0] for p in prompts]


def test_a_large_job_runs_in_chunks_and_keeps_its_order():
    from scorekit.engine.scheduler import SOLO_CHUNKS

    slow = _Slow(0.0)
    scheduler = Scheduler(slow, chunk_tokens=10)
    prompts = [Prompt(tuple([i] * (1 + i % 7))) for i in range(400)]  # lengths 1..7, out of order: 1,596 tokens
    out = scheduler.submit(Job.of(Named("big"), prompts)).result(10)
    assert out == list(range(400))  # each prompt's own output, in request order, across chunks
    # Alone in the engine, a job takes SOLO_CHUNKS chunks at once: fewer chunk ends, where a thread idles.
    assert len(slow.groups) > 5 and all(rows <= 10 * SOLO_CHUNKS for _, rows in slow.groups)
    scheduler.stop()


def test_chunks_shrink_while_others_wait():
    slow = _Slow(0.02)
    scheduler = Scheduler(slow, chunk_tokens=50)
    big = scheduler.submit(Job.of(Named("big"), _prompts(500)))
    assert slow.first.wait(5)
    others = [scheduler.submit(Job.of(Named(f"other-{k}"), _prompts(100))) for k in range(2)]
    for job in others + [big]:
        job.result(20)
    big_rows = [rows for name, rows in slow.groups if name == "big"]
    assert min(big_rows) <= 5  # 50-token chunks of 10-token prompts while the others were queued
    scheduler.stop()


def test_a_small_request_is_served_between_the_chunks_of_a_large_one():
    slow = _Slow(0.02)
    scheduler = Scheduler(slow, chunk_tokens=50)
    big = scheduler.submit(Job.of(Named("big"), _prompts(500)))  # 100 chunks of 5 prompts: ~2 s
    assert slow.first.wait(5)
    start = time.monotonic()
    small = scheduler.submit(Job.of(Named("small"), _prompts(1)))
    small.result(5)
    waited = time.monotonic() - start
    assert waited < 0.2  # at most one chunk (0.02 s) plus its own, not the ~2 s the large job still needs
    assert not big.future.done()
    names = [name for name, _ in slow.groups]
    assert names.index("small") < len(names) - 1 and names[-1] == "big"
    big.result(10)
    scheduler.stop()


def test_a_cancelled_running_job_stops_at_its_next_chunk():
    slow = _Slow(0.02)
    scheduler = Scheduler(slow, chunk_tokens=50)
    big = scheduler.submit(Job.of(Named("big"), _prompts(500)))
    assert slow.first.wait(5)
    assert not big.cancel()  # already running: it cannot be cancelled at once...
    with pytest.raises(JobCancelled):
        big.result(5)  # ...but it stops at the next chunk
    time.sleep(0.1)
    ran = len(slow.groups)
    assert ran <= 3  # of 100 chunks
    time.sleep(0.1)
    assert len(slow.groups) == ran and not scheduler.busy  # the engine is idle
    scheduler.stop()


def test_a_group_whose_callers_all_left_stops_between_batches():
    batches_run = []
    scheduler = None

    def execute(task, prompts, should_stop):
        results = []
        for k, prompt in enumerate(prompts):  # one "batch" per prompt, checking before each as the runner does
            if should_stop():
                raise Stopped()
            batches_run.append(k)
            if k == 1:
                job.cancel()
            results.append(0)
        return results

    scheduler = Scheduler(execute)
    job = Job.of(Named("t"), _prompts(10))
    scheduler.submit(job)
    with pytest.raises(JobCancelled):
        job.result(5)
    assert batches_run == [0, 1]
    scheduler.stop()


def test_a_plan_of_several_steps_gets_each_steps_outputs():
    scheduler = Scheduler(lambda task, prompts, stop: [len(p) * task.name.count("x") for p in prompts], chunk_tokens=3)

    def plan():
        first = yield Step(Named("x"), [Prompt((1,)), Prompt((1, 2))])
        second = yield Step(Named("xx"), [Prompt((1, 2, 3))] * 4)
        return first, second

    assert scheduler.submit(Job(plan())).result(5) == ([1, 2], [6, 6, 6, 6])
    scheduler.stop()


def test_chunked_scores_equal_unchunked(minilm_llm):
    """A request split into many chunks scores exactly as one that fits in one."""
    from scorekit.config import EngineConfig
    from scorekit.engine.runner import Runner
    from scorekit.engine.task import Task, TaskKind
    from scorekit.scoring.prompts import pad_token_id
    from scorekit.scoring.truncation import TruncationParams

    texts = [f"document {i} " + "word " * (i % 37) for i in range(120)]
    prompts = minilm_llm.scorer().builder.singles(texts, TruncationParams(), is_query=False)
    pad = pad_token_id(minilm_llm.loaded.tokenizer)
    runners = [Runner(minilm_llm.loaded.model, pad, EngineConfig(chunk_tokens=c)) for c in (64, 1 << 20)]
    small, whole = (r.submit(Job.of(Task(TaskKind.EMBED), prompts)).result() for r in runners)
    for a, b in zip(small, whole):
        assert torch.allclose(a, b, atol=1e-5)
    assert runners[0].stats.batches > runners[1].stats.batches
    for r in runners:
        r.scheduler.stop()
