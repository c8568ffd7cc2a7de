"""A replica killed by PID while requests stream in is replaced by Serve; each request that failed succeeds
when retried (scoring has no side effects)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest


QUERY = "What is the capital of France?"


def test_killed_replica_is_replaced_and_failed_requests_succeed_on_retry(ray_server, minilm_llm, alive_replicas):
    docs = [f"Paris fact {i}: the city has {i} bridges." for i in range(400)]
    offline = {d: o.outputs.score for d, o in zip(docs, minilm_llm.score(QUERY, docs, use_tqdm=False))}
    before = alive_replicas()
    assert len(before) == 2
    victim = before[0].pid
    results: dict[str, object] = {}
    failed: list[str] = []
    seen: list[str] = []  # what each failure looked like to the client (docs/ray.md reports it)
    lock = threading.Lock()
    stop = threading.Event()

    def stream(my_docs):
        with ray_server.client(timeout=30) as c:
            for doc in my_docs:
                if stop.is_set():
                    return
                try:
                    r = c.post("/score", json={"text_1": QUERY, "text_2": doc})
                    ok, why = r.status_code == 200, f"HTTP {r.status_code}: {r.text[:80]}"
                except Exception as exc:  # the connection itself may break: the client sees an error, not an answer
                    ok, why = False, type(exc).__name__
                with lock:
                    if ok:
                        results[doc] = r.json()["data"][0]["score"]
                    else:
                        failed.append(doc)
                        seen.append(why)

    threads = [threading.Thread(target=stream, args=(docs[i::4],)) for i in range(4)]
    for t in threads:
        t.start()
    deadline = time.time() + 60
    while len(results) < 40:  # the stream is under way on both replicas
        assert time.time() < deadline and any(t.is_alive() for t in threads), f"no stream: {len(failed)} failed"
        time.sleep(0.05)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.time()
    replaced_after = None
    while time.time() - killed_at < 120:
        alive = alive_replicas()
        if len(alive) == 2 and victim not in {r.pid for r in alive}:
            replaced_after = time.time() - killed_at
            break
        time.sleep(1)
    stop.set()
    for t in threads:
        t.join(timeout=60)
    assert replaced_after is not None, "the killed replica was not replaced within 120 s"
    answered_after_kill = len(results)

    with ray_server.client() as c:  # every failed request, retried, succeeds with the right score
        for doc in failed:
            r = c.post("/score", json={"text_1": QUERY, "text_2": doc})
            assert r.status_code == 200, r.text
            results[doc] = r.json()["data"][0]["score"]
    for doc, score in results.items():
        assert score == pytest.approx(offline[doc], abs=1e-5)
    print(f"replica {victim} killed; replaced after {replaced_after:.1f} s; {len(failed)} requests failed and "
          f"succeeded on retry ({seen}); {answered_after_kill} answered in the stream")
