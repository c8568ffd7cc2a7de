"""`scorekit serve --ray-replicas 2`: the same app on two Ray Serve replicas, answering as the offline API does."""

from __future__ import annotations

import concurrent.futures as futures
import time

import psutil
import pytest


QUERY = "What is the capital of France?"
DOCS = ["Paris is the capital of France.", "Bananas are yellow.", "Berlin is in Germany.", "The Eiffel Tower."]


def _offline_scores(llm, query, docs):
    return [o.outputs.score for o in llm.score(query, docs, use_tqdm=False)]


def test_two_replica_actors_in_state_api(ray_server, alive_replicas):
    replicas = alive_replicas()
    assert len(replicas) == 2 and len({r.pid for r in replicas}) == 2
    assert all(r.required_resources.get("CPU") == 0.25 for r in replicas)


def test_score_rerank_embeddings_equal_offline(ray_server, minilm_llm, alive_replicas):
    offline = _offline_scores(minilm_llm, QUERY, DOCS)
    vectors = [o.outputs.embedding for o in minilm_llm.embed(DOCS, use_tqdm=False)]
    with ray_server.client() as c:
        for _ in range(4):  # several requests, so both replicas are likely to answer some
            r = c.post("/score", json={"model": "minilm", "text_1": QUERY, "text_2": DOCS})
            assert r.status_code == 200, r.text
            assert r.json()["model"] == "minilm"
            assert [d["score"] for d in r.json()["data"]] == pytest.approx(offline, abs=1e-5)

            r = c.post("/rerank", json={"query": QUERY, "documents": DOCS})
            assert r.status_code == 200, r.text
            results = r.json()["results"]
            assert [x["index"] for x in results] == sorted(range(len(DOCS)), key=lambda i: -offline[i])
            assert [x["relevance_score"] for x in results] == pytest.approx(sorted(offline, reverse=True), abs=1e-5)

            r = c.post("/v1/embeddings", json={"input": DOCS, "model": "minilm"})
            assert r.status_code == 200, r.text
            for got, want in zip(r.json()["data"], vectors):
                assert got["embedding"] == pytest.approx(want, abs=1e-5)


def test_api_key_enforced_through_serve(ray_server):
    with ray_server.client(key=None) as c:
        assert c.post("/score", json={"text_1": "a", "text_2": "b"}).status_code == 401
        assert c.get("/v1/models").status_code == 401
        assert c.get("/health").status_code == 200  # unguarded, as in one process
    with ray_server.client(key="sk-wrong") as c:
        assert c.post("/v1/embeddings", json={"input": "a"}).status_code == 401
    with ray_server.client() as c:
        assert c.post("/v1/embeddings", json={"input": "a"}).status_code == 200


def test_metrics_served_by_a_replica(ray_server):
    with ray_server.client() as c:
        c.post("/score", json={"text_1": "a", "text_2": "b"})
        text = c.get("/metrics").text
    assert "scorekit_requests_total" in text and "scorekit_engine_batches_total" in text


def test_200_concurrent_requests_all_correct_on_both_replicas(ray_server, minilm_llm, alive_replicas):
    docs = [f"Document number {i} about {'Paris' if i % 3 == 0 else 'bananas'}." for i in range(200)]
    offline = _offline_scores(minilm_llm, QUERY, docs)
    cpu_before = {r.pid: sum(psutil.Process(r.pid).cpu_times()[:2]) for r in alive_replicas()}

    def one(i):
        with ray_server.client() as c:
            r = c.post("/score", json={"text_1": QUERY, "text_2": docs[i]})
            return r.status_code, r.json()["data"][0]["score"] if r.status_code == 200 else r.text

    start = time.time()
    with futures.ThreadPoolExecutor(200) as pool:
        answers = list(pool.map(one, range(200)))
    assert [a[0] for a in answers] == [200] * 200, [a for a in answers if a[0] != 200][:3]
    assert [a[1] for a in answers] == pytest.approx(offline, abs=1e-5)
    cpu_used = {pid: sum(psutil.Process(pid).cpu_times()[:2]) - t for pid, t in cpu_before.items()}
    # both replicas computed: each spent a real share of the CPU (a replica left idle spends ~0)
    assert min(cpu_used.values()) > 0.1 * sum(cpu_used.values()), cpu_used
    print(f"200 concurrent /score requests in {time.time() - start:.1f} s; replica CPU seconds {cpu_used}")
