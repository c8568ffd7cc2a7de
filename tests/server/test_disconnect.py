"""A client that goes away: its queued work is dropped, its running work stops within a chunk, and the request
is counted as a 499 (client closed request) with no error logged and no 500."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from dataclasses import dataclass


from scorekit.engine.job import Job
from scorekit.engine.prompt import Prompt


@dataclass(frozen=True)
class Named:
    name: str


def _wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def _post_raw(port: int, path: str, payload: dict) -> socket.socket:
    """Send a request without reading the answer; the caller closes the socket to leave."""
    body = json.dumps(payload).encode()
    conn = socket.create_connection(("127.0.0.1", port))
    conn.sendall(f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return conn


class _Gate:
    """Wraps the engine's executor: groups of Named("block*") tasks wait until released; records what else ran."""

    def __init__(self, execute):
        self.execute, self.ran = execute, []
        self.started, self.release = threading.Semaphore(0), threading.Event()

    def __call__(self, task, prompts, should_stop):
        if isinstance(task, Named):
            self.started.release()
            self.release.wait(30)
            return [None] * len(prompts)
        self.ran.append(task.kind.value)
        return self.execute(task, prompts, should_stop)


def test_a_client_that_goes_away_has_its_queued_work_dropped(server, minilm):
    scheduler = minilm.engine.scheduler
    gate = _Gate(scheduler._execute)
    scheduler._execute = gate
    try:
        blockers = [scheduler.submit(Job.of(Named(f"block-{i}"), [Prompt((1,))])) for i in range(scheduler.model_threads)]
        for _ in blockers:  # every model thread is busy now
            assert gate.started.acquire(timeout=10)
        with _post_raw(server.port, "/v1/embeddings", {"input": "a client that leaves early", "model": "minilm"}):
            _wait_for(lambda: scheduler.queued_prompts == 1)
            queued = list(scheduler._queue)
        _wait_for(lambda: queued[0].future.cancelled())  # dropped as soon as the connection closed
        gate.release.set()
        for job in blockers:
            job.result(10)
        assert minilm.embed(["the engine still works"], use_tqdm=False)[0].outputs.embedding
        assert gate.ran == ["embed"]  # only the call just above: the departed client's work never ran
    finally:
        gate.release.set()
        scheduler._execute = gate.execute


def test_a_client_that_leaves_a_large_rerank_stops_its_running_work(server, minilm):
    """20,000 documents (tens of seconds of work here): the client leaves after 1.5 s, and the engine is idle
    within about one chunk, not when the whole request would have finished."""
    engine = minilm.engine
    batches_before, sequences_before = engine.stats.batches, engine.stats.sequences
    docs = [f"document number {i} about rivers, mountains and the sea" for i in range(20_000)]
    conn = _post_raw(server.port, "/rerank", {"query": "which document is about the sea?", "documents": docs})
    _wait_for(lambda: engine.stats.batches > batches_before, seconds=30)  # it runs now
    time.sleep(1.0)
    assert engine.scheduler.busy
    left = time.monotonic()
    conn.close()
    _wait_for(lambda: not engine.scheduler.busy, seconds=10)
    stopped_after = time.monotonic() - left
    ran = engine.stats.sequences
    time.sleep(0.5)
    assert engine.stats.sequences == ran  # nothing more of it runs
    assert stopped_after < 5.0, stopped_after
    assert engine.stats.sequences - sequences_before < 20_001  # the whole request never ran


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record):
        self.records.append(record)


def _count(metrics: str, status: str) -> float:
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("scorekit_requests_total{") and f'status="{status}"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


def test_disconnects_are_499s_not_errors(server, http, minilm):
    records = _Records()
    loggers = [logging.getLogger(name) for name in ("uvicorn", "uvicorn.error", "scorekit", "")]
    for logger in loggers:
        logger.addHandler(records)
    try:
        before = http.get("/metrics").text
        docs = [f"passage {i} on the history of rivers and their cities" for i in range(400)]
        for route in ("/score", "/rerank", "/pooling", "/v1/embeddings") * 13:
            body = ({"queries": "rivers", "documents": docs} if route == "/score" else
                    {"query": "rivers", "documents": docs} if route == "/rerank" else {"input": docs})
            conn = _post_raw(server.port, route, body)
            time.sleep(0.03)
            conn.close()
        _wait_for(lambda: not minilm.engine.scheduler.busy, seconds=60)
        time.sleep(0.3)
        after = http.get("/metrics").text
    finally:
        for logger in loggers:
            logger.removeHandler(records)
    assert _count(after, "500") == _count(before, "500")
    assert _count(after, "499") - _count(before, "499") >= 25  # most left while their work ran
    errors = [r for r in records.records if r.levelno >= logging.ERROR]
    assert not errors, [r.getMessage()[:200] for r in errors]
    assert not any(re.search("Traceback|CancelledError", r.getMessage()) for r in records.records)
