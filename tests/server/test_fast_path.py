"""The embedding route's lighter request path: JSON written directly, plain-ASGI metrics, and a client that
goes away still has its queued engine work dropped."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from scorekit.server.protocol import EmbeddingResponse


def test_embeddings_body_is_the_documented_schema(http, minilm):
    r = http.post("/v1/embeddings", json={"input": ["a river", "a mountain"], "model": "minilm"},
                  headers={"X-Request-Id": "fast-1"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert list(body) == ["id", "object", "created", "model", "data", "usage"]
    parsed = EmbeddingResponse.model_validate(body)
    assert parsed.id == "embd-fast-1" and parsed.model == "minilm" and parsed.object == "list"
    assert [d.index for d in parsed.data] == [0, 1] and all(d.object == "embedding" for d in parsed.data)
    offline = [o.outputs.embedding for o in minilm.embed(["a river", "a mountain"], use_tqdm=False)]
    for got, want in zip(parsed.data, offline):
        assert got.embedding == pytest.approx(want, abs=1e-6)
    assert body["usage"] == {"prompt_tokens": parsed.usage.prompt_tokens, "total_tokens": parsed.usage.prompt_tokens,
                             "completion_tokens": 0, "prompt_tokens_details": None, "completion_tokens_details": None}


def test_metrics_count_errors_and_unmatched_routes(http):
    http.post("/v1/embeddings", json={"input": "x", "encoding_format": "nope"})
    http.get("/no/such/route")
    text = http.get("/metrics").text
    assert 'scorekit_requests_total{method="POST",route="/v1/embeddings",status="400"}' in text
    assert 'scorekit_requests_total{method="GET",route="<unmatched>",status="404"}' in text


class _Gate:
    """Wraps the engine's executor: groups of the `block*` tasks wait until released; records what else ran."""

    def __init__(self, execute):
        self.execute, self.ran = execute, []
        self.started, self.release = threading.Semaphore(0), threading.Event()

    def __call__(self, task, prompts, on_progress):
        if task.name.startswith("block"):
            self.started.release()
            self.release.wait(30)
            return [None] * len(prompts)
        self.ran.append(task.name)
        return self.execute(task, prompts, on_progress)


def _wait_for(condition, seconds=10.0):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def test_a_client_that_goes_away_has_its_queued_work_dropped(server, minilm):
    from scorekit.engine.runner import Task

    scheduler = minilm.engine.scheduler
    gate = _Gate(scheduler._execute)
    scheduler._execute = gate
    try:
        blockers = [scheduler.submit(Task(f"block-{i}"), [()]) for i in range(scheduler.model_threads)]
        for _ in blockers:  # every model thread is busy now
            assert gate.started.acquire(timeout=10)
        body = json.dumps({"input": "a client that leaves early", "model": "minilm"}).encode()
        with socket.create_connection(("127.0.0.1", server.port)) as conn:
            conn.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            _wait_for(lambda: scheduler.queued_prompts == 1)
            queued = list(scheduler._queue)
        _wait_for(lambda: queued[0].future.cancelled())  # dropped as soon as the connection closed
        gate.release.set()
        for item in blockers:
            item.future.result(10)
        assert minilm.embed(["the engine still works"], use_tqdm=False)[0].outputs.embedding
        assert gate.ran == ["embed"]  # only the call just above: the departed client's work never ran
    finally:
        gate.release.set()
        scheduler._execute = gate.execute
