"""The server's limits and secure defaults: inputs per request, huge texts, priority, names, an empty API key,
fairness for a small request behind a large one, and a graceful SIGTERM."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from scorekit.config import EngineConfig, ModelConfig, ServerConfig
from scorekit.server.app import build_app


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def small_limits(minilm, live_server):
    with live_server(build_app(minilm, ServerConfig(max_client_batch_size=4))) as live:
        yield live


def test_more_inputs_than_the_limit_is_a_413_naming_the_flag(small_limits):
    with small_limits.client() as c:
        for route, body in (("/v1/embeddings", {"input": ["a"] * 5}),
                            ("/rerank", {"query": "q", "documents": ["d"] * 5}),
                            ("/score", {"queries": "q", "documents": ["d"] * 5}),
                            ("/v2/embed", {"texts": ["a"] * 5})):
            r = c.post(route, json=body)
            assert r.status_code == 413, (route, r.text)
            error = r.json()["error"]
            assert "--max-client-batch-size" in error["message"] and error["code"] == 413
        assert c.post("/v1/embeddings", json={"input": ["a"] * 4}).status_code == 200


def test_a_5mb_text_is_cut_before_tokenising(http, minilm):
    text = "the river runs through the old city " * 140_000  # ~5 MB
    start = time.monotonic()
    r = http.post("/v1/embeddings", json={"input": text, "truncate_prompt_tokens": -1})
    assert r.status_code == 200 and time.monotonic() - start < 2.0
    # The same vector as the text cut to the model's limit by the tokenizer itself.
    short = minilm.embed([text[:20_000]], truncate_prompt_tokens=-1, use_tqdm=False)[0].outputs.embedding
    assert r.json()["data"][0]["embedding"] == pytest.approx(short, abs=1e-6)
    start = time.monotonic()
    r = http.post("/v1/embeddings", json={"input": text})  # no truncation asked: refused, quickly
    assert r.status_code == 400 and "Please reduce the length" in r.json()["error"]["message"]
    assert time.monotonic() - start < 2.0


def test_priority_needs_the_priority_policy(http, minilm_dir, live_server):
    r = http.post("/rerank", json={"query": "q", "documents": ["a", "b"], "priority": -5})
    assert r.status_code == 400 and "--scheduling-policy priority" in r.json()["error"]["message"]
    assert r.json()["error"]["param"] == "priority"
    assert http.post("/rerank", json={"query": "q", "documents": ["a"], "priority": 0}).status_code == 200

    from scorekit import LLM

    llm = LLM.from_configs(ModelConfig(str(minilm_dir)), EngineConfig(scheduling_policy="priority"))
    with live_server(build_app(llm)) as live, live.client() as c:
        r = c.post("/rerank", json={"query": "q", "documents": ["a", "b"], "priority": -5})
        assert r.status_code == 200
        # Served under its folder name: no absolute path in /v1/models or in a 404.
        cards = c.get("/v1/models").json()["data"]
        assert [card["id"] for card in cards] == [minilm_dir.name] and cards[0]["root"] == minilm_dir.name
        missing = c.post("/rerank", json={"model": "nope", "query": "q", "documents": ["a"]})
        assert missing.status_code == 404 and str(minilm_dir) not in missing.text
        assert all(str(minilm_dir) not in c.get(p).text for p in ("/v1/models", "/openapi.json"))
    llm.engine.scheduler.stop()


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_api_key_refuses_to_start(key):
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "scorekit.cli", "serve", "--port", str(_free_port()),
                           "--api-key", key], capture_output=True, text=True, timeout=120)
    assert proc.returncode != 0
    assert "empty or blank key" in proc.stderr
    assert time.monotonic() - started < 60  # refused before the model loads


def test_a_small_request_is_answered_beside_a_large_rerank(server, minilm):
    """A one-text request behind a 20,000-document rerank waits for about one chunk, not for the rerank."""
    docs = [f"document number {i} about rivers, mountains and the sea" for i in range(20_000)]
    engine = minilm.engine
    batches_before = engine.stats.batches
    with ThreadPoolExecutor(1) as pool, server.client() as c:
        big = pool.submit(c.post, "/rerank", json={"query": "the sea", "documents": docs})
        deadline = time.monotonic() + 30
        while engine.stats.batches == batches_before and time.monotonic() < deadline:
            time.sleep(0.01)
        latencies = []
        with server.client() as small:
            for i in range(5):
                start = time.monotonic()
                r = small.post("/v1/embeddings", json={"input": f"a small request {i}"})
                latencies.append(time.monotonic() - start)
                assert r.status_code == 200
        assert not big.done()  # all five were answered while the large request still ran
        assert max(latencies) < 5.0, latencies
        assert big.result(300).status_code == 200


def test_sigterm_finishes_in_flight_requests_and_exits_cleanly(tmp_path, cli_server_starter):
    """More work in flight than the grace time allows: every accepted request is answered, with its scores or
    (past the grace time) a clean 503, and the process exits 0 in time."""
    grace = 3
    log_path = tmp_path / "serve.log"
    proc, url = cli_server_starter(["--timeout-graceful-shutdown", str(grace)], log_path)
    try:
        docs = [f"passage {i} about rivers and cities" for i in range(2_000)]
        results: list = [None] * 8

        def call(i):
            with httpx.Client(base_url=url, trust_env=False, timeout=120) as c:
                try:
                    results[i] = c.post("/rerank", json={"query": "rivers", "documents": docs}).status_code
                except httpx.TransportError as exc:
                    results[i] = type(exc).__name__

        threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        time.sleep(1.5)  # all eight accepted and running
        proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        for t in threads:
            t.join(120)
        assert proc.wait(grace + 30) == 0, log_path.read_text()
        assert time.monotonic() - sent < grace + 10
        assert set(results) <= {200, 503}, results  # every accepted request was answered
        with pytest.raises(httpx.TransportError):  # and new ones are refused
            httpx.post(f"{url}/rerank", json={"query": "q", "documents": ["d"]}, trust_env=False)
    finally:
        if proc.poll() is None:
            proc.kill()
