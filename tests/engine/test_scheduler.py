"""The engine batches across concurrent callers and gives each caller its own answers; priority,
cancellation, the bounded queue and deduplication behave as documented."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from scorekit.engine.runner import Task
from scorekit.engine.scheduler import QueueFull, Scheduler
from scorekit.scoring.prompts import Prompt

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu".split()


def _docs(i):
    return [" ".join(WORDS[(i + k) % len(WORDS)] for k in range(1 + (i * 7 + j) % 11)) for j in range(5)]


def test_concurrent_callers_get_their_own_scores(minilm_llm):
    queries = [f"query number {i} about {WORDS[i % len(WORDS)]}" for i in range(24)]
    expected = {q: [o.outputs.score for o in minilm_llm.score(q, _docs(i), use_tqdm=False)] for i, q in enumerate(queries)}
    batches_before = minilm_llm.engine.stats.batches

    def call(i):
        q = queries[i]
        return q, [o.outputs.score for o in minilm_llm.score(q, _docs(i), use_tqdm=False)]

    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(call, range(len(queries))))
    for q, scores in results:
        assert scores == pytest.approx(expected[q], abs=1e-5)
    assert minilm_llm.engine.stats.batches - batches_before < len(queries)  # work was merged across callers


class _Recorder:
    """A stand-in executor: blocks on the first group until released, records what ran."""

    def __init__(self):
        self.ran = []
        self.release = threading.Event()

    def __call__(self, task, prompts, on_progress):
        self.ran.append(task.name)
        if len(self.ran) == 1:
            self.release.wait(5)
        return [len(p) for p in prompts]


def _prompt(n):
    return Prompt(tuple(range(n)))


def test_priority_cancellation_and_results_per_caller():
    recorder = _Recorder()
    scheduler = Scheduler(recorder)
    blocker = scheduler.submit(Task("block"), [_prompt(1)])
    time.sleep(0.1)  # the scheduler thread is now busy with `blocker`
    late = scheduler.submit(Task("low"), [_prompt(2)], priority=5)
    cancelled = scheduler.submit(Task("gone"), [_prompt(3)], priority=-10)
    urgent = scheduler.submit(Task("high"), [_prompt(4), _prompt(5)], priority=-1)
    assert cancelled.cancel()
    recorder.release.set()
    assert urgent.future.result(5) == [4, 5]
    assert late.future.result(5) == [2]
    assert blocker.future.result(5) == [1]
    assert recorder.ran == ["block", "high", "low"]  # the cancelled work never ran
    scheduler.stop()


def test_queue_is_bounded():
    recorder = _Recorder()
    scheduler = Scheduler(recorder, max_queued_prompts=3)
    scheduler.submit(Task("block"), [_prompt(1)])
    time.sleep(0.1)
    scheduler.submit(Task("a"), [_prompt(1), _prompt(1)])
    with pytest.raises(QueueFull):
        scheduler.submit(Task("b"), [_prompt(1), _prompt(1)])
    recorder.release.set()
    scheduler.stop()


def test_identical_prompts_run_once(minilm_llm):
    stats = minilm_llm.engine.stats
    before = stats.deduplicated
    out = minilm_llm.score(["same query"] * 3, ["same doc"] * 3, use_tqdm=False)
    assert len({o.outputs.score for o in out}) == 1
    assert stats.deduplicated - before >= 4  # 2 repeated queries + 2 repeated docs were not re-run


def test_cancel_scope_drops_queued_work_of_a_gone_client():
    from scorekit.engine.cancel import CancelScope

    recorder = _Recorder()
    scheduler = Scheduler(recorder)
    scheduler.submit(Task("block"), [_prompt(1)])
    time.sleep(0.1)
    scope = CancelScope()
    for name in ("x", "y"):
        scope.add(scheduler.submit(Task(name), [_prompt(2)]))
    survivor = scheduler.submit(Task("z"), [_prompt(3)])
    assert scope.cancel() == 2
    late = scheduler.submit(Task("after"), [_prompt(1)])
    scope.add(late)  # registered after the client left: cancelled at once
    assert late.future.cancelled()
    recorder.release.set()
    assert survivor.future.result(5) == [3]
    assert recorder.ran == ["block", "z"]
    scheduler.stop()
