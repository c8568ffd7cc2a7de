"""The engine batches across concurrent callers and gives each caller its own answers; priority,
cancellation, the bounded queue and deduplication behave as documented."""

from __future__ import annotations

import threading
from dataclasses import dataclass
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from scorekit.engine.job import Job
from scorekit.engine.prompt import Prompt
from scorekit.engine.scheduler import QueueFull, Scheduler


@dataclass(frozen=True)
class Task:
    """A stand-in task: the scheduler only compares tasks, and these executors read the name."""

    name: str

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

    def __call__(self, task, prompts, should_stop):
        self.ran.append(task.name)
        if len(self.ran) == 1:
            self.release.wait(5)
        return [len(p) for p in prompts]


def _prompt(n):
    return Prompt(tuple(range(n)))


def test_priority_cancellation_and_results_per_caller():
    recorder = _Recorder()
    scheduler = Scheduler(recorder)
    blocker = scheduler.submit(Job.of(Task("block"), [_prompt(1)]))
    time.sleep(0.1)  # the scheduler thread is now busy with `blocker`
    late = scheduler.submit(Job.of(Task("low"), [_prompt(2)], priority=5))
    cancelled = scheduler.submit(Job.of(Task("gone"), [_prompt(3)], priority=-10))
    urgent = scheduler.submit(Job.of(Task("high"), [_prompt(4), _prompt(5)], priority=-1))
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
    scheduler.submit(Job.of(Task("block"), [_prompt(1)]))
    time.sleep(0.1)
    scheduler.submit(Job.of(Task("a"), [_prompt(1), _prompt(1)]))
    with pytest.raises(QueueFull):
        scheduler.submit(Job.of(Task("b"), [_prompt(1), _prompt(1)]))
    recorder.release.set()
    scheduler.stop()


def test_identical_prompts_run_once(minilm_llm):
    stats = minilm_llm.engine.stats
    before = stats.deduplicated
    out = minilm_llm.score(["same query"] * 3, ["same doc"] * 3, use_tqdm=False)
    assert len({o.outputs.score for o in out}) == 1
    assert stats.deduplicated - before >= 4  # 2 repeated queries + 2 repeated docs were not re-run


def test_cancelled_jobs_are_dropped_before_they_run():
    recorder = _Recorder()
    scheduler = Scheduler(recorder)
    scheduler.submit(Job.of(Task("block"), [_prompt(1)]))
    time.sleep(0.1)
    gone = [scheduler.submit(Job.of(Task(name), [_prompt(2)])) for name in ("x", "y")]
    survivor = scheduler.submit(Job.of(Task("z"), [_prompt(3)]))
    assert all(job.cancel() for job in gone)  # not started: cancelled at once
    recorder.release.set()
    assert survivor.future.result(5) == [3]
    assert all(job.future.cancelled() for job in gone)
    assert recorder.ran == ["block", "z"]
    scheduler.stop()


# -- several model threads --------------------------------------------------------------------------------------

class _Gate:
    """A stand-in executor for two model threads: groups named in `hold` wait for `release`; records what ran
    and on which thread."""

    def __init__(self, *hold):
        self.hold = set(hold)
        self.ran: list[str] = []
        self.threads: dict[str, str] = {}
        self.started = threading.Semaphore(0)
        self.release = threading.Event()

    def __call__(self, task, prompts, should_stop):
        self.ran.append(task.name)
        self.threads[task.name] = threading.current_thread().name
        if task.name in self.hold:
            self.started.release()
            self.release.wait(5)
        return [len(p) for p in prompts]

    def wait_started(self, n):
        for _ in range(n):
            assert self.started.acquire(timeout=5)


def test_two_model_threads_keep_priority_cancellation_and_results_per_caller():
    gate = _Gate("block-a", "block-b")
    scheduler = Scheduler(gate, model_threads=2, max_queued_prompts=6)
    a = scheduler.submit(Job.of(Task("block-a"), [_prompt(1)]))
    b = scheduler.submit(Job.of(Task("block-b"), [_prompt(2)]))
    gate.wait_started(2)  # both model threads are busy now
    assert gate.threads["block-a"] != gate.threads["block-b"]
    late = scheduler.submit(Job.of(Task("low"), [_prompt(3)], priority=5))
    cancelled = scheduler.submit(Job.of(Task("gone"), [_prompt(4)], priority=-10))
    urgent = scheduler.submit(Job.of(Task("high"), [_prompt(5), _prompt(6)], priority=-1))
    same_task = [scheduler.submit(Job.of(Task("high"), [_prompt(7)], priority=-1)),
                 scheduler.submit(Job.of(Task("high"), [_prompt(8)]))]
    assert cancelled.cancel()
    with pytest.raises(QueueFull):  # 6 sequences wait: the bound holds however many threads there are
        scheduler.submit(Job.of(Task("low"), [_prompt(9)]))
    gate.release.set()
    assert urgent.future.result(5) == [5, 6]
    assert [w.future.result(5) for w in same_task] == [[7], [8]]  # merged into one group, answered per caller
    assert late.future.result(5) == [3]
    assert a.future.result(5) == [1] and b.future.result(5) == [2]
    assert "gone" not in gate.ran
    assert gate.ran.index("high") < gate.ran.index("low")  # the first thread to come free took the urgent work
    assert gate.ran.count("high") == 1
    scheduler.stop()


def test_a_large_group_shares_its_batches_with_an_idle_model_thread():
    scheduler = None
    ran_on: dict[int, str] = {}
    both_running = threading.Barrier(2, timeout=5)

    def job(k):
        def run():
            ran_on[k] = threading.current_thread().name
            if k < 2:
                both_running.wait()  # the first two batches only finish once two threads run them at once
            return k * 10
        return run

    def execute(task, prompts, should_stop):
        results = dict(scheduler.fan_out([job(k) for k in range(len(prompts))]))
        return [results[k] for k in range(len(prompts))]

    scheduler = Scheduler(execute, model_threads=2)
    item = scheduler.submit(Job.of(Task("big"), [_prompt(1)] * 6))
    assert item.future.result(10) == [0, 10, 20, 30, 40, 50]
    assert len(set(ran_on.values())) == 2
    scheduler.stop()


def test_an_error_in_a_helped_batch_reaches_the_caller():
    scheduler = None
    both_running = threading.Barrier(2, timeout=5)

    def execute(task, prompts, should_stop):
        def ok():
            both_running.wait()
            return 1

        def fails():
            both_running.wait()
            raise ValueError("batch failed")

        return [v for _, v in scheduler.fan_out([ok, fails])]

    scheduler = Scheduler(execute, model_threads=2)
    item = scheduler.submit(Job.of(Task("t"), [_prompt(1)]))
    with pytest.raises(ValueError, match="batch failed"):
        item.future.result(10)
    assert scheduler.submit(Job.of(Task("t2"), [_prompt(1)]))  # the threads survived
    scheduler.stop()


def test_two_model_threads_give_the_same_embeddings_as_one(minilm_llm):
    from scorekit.config import EngineConfig
    from scorekit.engine.runner import Runner
    from scorekit.engine.task import Task as EngineTask
    from scorekit.engine.task import TaskKind
    from scorekit.scoring.prompts import pad_token_id
    from scorekit.scoring.truncation import TruncationParams

    texts = [" ".join(WORDS[(i * 5 + k) % len(WORDS)] for k in range(1 + i % 40)) for i in range(300)]
    prompts = minilm_llm.scorer().builder.singles(texts, TruncationParams(), is_query=False)
    pad = pad_token_id(minilm_llm.loaded.tokenizer)
    runners = [Runner(minilm_llm.loaded.model, pad, EngineConfig(max_num_seqs=16, model_threads=n)) for n in (1, 2)]
    one, two = (r.submit(Job.of(EngineTask(TaskKind.EMBED), prompts)).result() for r in runners)
    assert runners[1].stats.batches > 2 and runners[1].stats.sequences == len(prompts)
    for a, b in zip(one, two):
        assert torch.allclose(a, b, atol=1e-5)
    for r in runners:
        r.scheduler.stop()


def test_a_thread_waits_briefly_for_the_callers_it_just_answered():
    sizes = []
    first_group = threading.Event()

    def execute(task, prompts, should_stop):
        sizes.append(len(prompts))
        if len(sizes) == 1:
            first_group.wait(5)  # three callers are queued meanwhile: they form the next group
        time.sleep(0.1)
        return [len(p) for p in prompts]

    # A generous window (10x the last group's 0.1 s, up to 5 s), so the test does not race the clock.
    scheduler = Scheduler(execute, gather_fraction=10.0, max_gather_seconds=5.0)
    blocker = scheduler.submit(Job.of(Task("t"), [_prompt(1)]))
    time.sleep(0.1)
    callers = [scheduler.submit(Job.of(Task("t"), [_prompt(2)])) for _ in range(3)]
    time.sleep(0.2)
    first_group.set()
    blocker.future.result(5)
    [c.future.result(5) for c in callers]
    assert sizes == [1, 3]
    # The three come back one by one: the thread waits for all three instead of running the first alone.
    again = [scheduler.submit(Job.of(Task("t"), [_prompt(3)]))]
    time.sleep(0.05)
    again += [scheduler.submit(Job.of(Task("t"), [_prompt(3)])) for _ in range(2)]
    assert [c.future.result(5) for c in again] == [[3], [3], [3]]
    assert sizes == [1, 3, 3]
    scheduler.stop()


class _FakeModel:
    """Enough of a ScoringModel for the runner: `embed` returns each row's length."""

    def __init__(self, packs_padding):
        self.packs_padding = packs_padding
        self.device, self.activation, self.supports_prefix = torch.device("cpu"), None, False

    def embed(self, batch, normalize=False):
        return list(batch.attention_mask.sum(1).float().unsqueeze(1))


@pytest.mark.parametrize("packs_padding, forwards", [(False, 2), (True, 1)])
def test_a_backbone_that_skips_padding_gets_fewer_forwards(packs_padding, forwards):
    from scorekit.config import EngineConfig
    from scorekit.engine.runner import Runner
    from scorekit.engine.task import Task as EngineTask
    from scorekit.engine.task import TaskKind

    runner = Runner(_FakeModel(packs_padding), 0, EngineConfig(model_threads=1))
    lengths = [5, 40, 9, 33, 12, 28]  # padded to 40 in one forward: splitting long from short is cheaper
    out = runner.submit(Job.of(EngineTask(TaskKind.EMBED), [_prompt(n) for n in lengths])).result()
    assert [int(o) for o in out] == lengths
    assert runner.stats.batches == forwards
    runner.scheduler.stop()


def test_plans_run_on_the_model_thread_and_a_failure_stays_with_its_caller():
    from scorekit.engine.job import Step

    recorder = _Recorder()
    scheduler = Scheduler(recorder, max_queued_prompts=4)
    blocker = scheduler.submit(Job.of(Task("block"), [_prompt(1)]))
    time.sleep(0.1)  # the model thread is busy: the next three are taken together as one group
    built_on = []

    def tokenised(n):  # a plan that builds its prompts where it runs, like the scorer's
        built_on.append(threading.current_thread().name)
        outputs = yield Step(Task("embed"), [_prompt(n), _prompt(n + 1)])
        return outputs

    def too_long():
        raise ValueError("text over the length limit")
        yield

    good = scheduler.submit(Job(tokenised(3), size=2))
    bad = scheduler.submit(Job(too_long(), size=1))
    plain = scheduler.submit(Job.of(Task("embed"), [_prompt(7)]))
    assert scheduler.queued_prompts == 4  # `size` holds a place in the bounded queue before tokenisation
    with pytest.raises(QueueFull):
        scheduler.submit(Job(tokenised(1), size=1))
    recorder.release.set()
    assert good.future.result(5) == [3, 4]
    assert plain.future.result(5) == [7]
    with pytest.raises(ValueError, match="length limit"):
        bad.future.result(5)
    assert blocker.future.result(5) == [1]
    assert recorder.ran == ["block", "embed"]  # the failure did not cost the others their shared group
    assert built_on and all(name.startswith("scorekit-engine") for name in built_on)
    assert scheduler.queued_prompts == 0
    scheduler.stop()


def test_idle_model_threads_share_queued_requests_fairly():
    """Eight single-text requests queued at once with two idle model threads: each thread takes four. Before,
    the first thread to wake took all eight and the other core waited (serve_load at concurrency 8)."""
    sizes, threads = [], set()
    both_running = threading.Barrier(2, timeout=5)  # only passes if two threads run groups at the same time

    def execute(task, prompts, should_stop):
        sizes.append(len(prompts))
        threads.add(threading.current_thread().name)
        both_running.wait()
        return [len(p) for p in prompts]

    scheduler = Scheduler(execute, model_threads=2)
    with scheduler._cond:
        scheduler._ensure_threads()
    deadline = time.monotonic() + 5
    while scheduler._idle < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    with scheduler._cond:  # all eight are queued before either thread wakes
        items = [scheduler.submit(Job.of(Task("embed"), [_prompt(k + 1)])) for k in range(8)]
    assert [w.future.result(10) for w in items] == [[k + 1] for k in range(8)]
    assert sorted(sizes) == [4, 4] and len(threads) == 2
    scheduler.stop()
