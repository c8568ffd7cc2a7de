"""The output cache (engine/cache.py): repeated prompts answered from it, bit-identical; any change that
changes the engine's input or task misses; the byte bound holds; hits and misses reach /metrics."""

from __future__ import annotations

import pytest
import torch

from scorekit import LLM, PoolingParams
from scorekit.config import ServerConfig
from scorekit.engine.cache import OutputCache, entry_bytes
from scorekit.engine.prompt import Prompt
from scorekit.engine.task import Task, TaskKind
from scorekit.server.app import build_app

DOCS = [f"document {i} about rivers, harbours and the {w} of the old town" for i, w in
        enumerate("walls bridges markets towers gardens".split())]


@pytest.fixture(scope="module")
def cached(minilm_dir):
    return LLM(str(minilm_dir), score_cache_bytes=64 << 20)


def test_a_repeated_request_is_answered_from_the_cache_bit_identically(cached):
    first = [o.outputs.score for o in cached.score("which town has walls?", DOCS, use_tqdm=False)]
    hits, batches = cached.engine.cache.hits, cached.engine.stats.batches
    again = [o.outputs.score for o in cached.score("which town has walls?", DOCS, use_tqdm=False)]
    assert again == first  # the same floats, not merely close
    assert cached.engine.cache.hits - hits == len(DOCS) + 1 and cached.engine.stats.batches == batches
    # Another query over the same documents: only the query is new work.
    misses = cached.engine.cache.misses
    cached.score("which town has gardens?", DOCS, use_tqdm=False)
    assert cached.engine.cache.misses - misses == 1


def test_what_changes_the_result_misses(cached):
    texts = ["a sentence only this test sends", "and a second one"]  # (the scoring test cached raw DOCS vectors)
    cached.embed(texts, use_tqdm=False)
    for options in ({"truncate_prompt_tokens": 4}, {"pooling_params": PoolingParams(use_activation=False)}):
        misses = cached.engine.cache.misses
        out = cached.embed(texts, use_tqdm=False, **options)
        assert cached.engine.cache.misses - misses == 2
        fresh = LLM(str(cached.loaded.location.folder), score_cache_bytes=0).embed(texts, use_tqdm=False, **options)
        for a, b in zip(out, fresh):
            assert torch.allclose(torch.tensor(a.outputs.embedding), torch.tensor(b.outputs.embedding), atol=1e-6)


def test_the_byte_bound_holds_under_a_larger_workload(minilm_dir):
    small = LLM(str(minilm_dir), score_cache_bytes=64 * 1024)
    texts = [f"sentence number {i} of a workload larger than the cache" for i in range(400)]
    small.embed(texts, use_tqdm=False)
    cache = small.engine.cache
    assert 0 < cache.bytes <= 64 * 1024 and 0 < len(cache) < 400
    # The most recent prompts are the ones kept.
    latest = [f"five late sentences, number {i}" for i in range(5)]
    small.embed(latest, use_tqdm=False)
    hits = cache.hits
    small.embed(latest, use_tqdm=False)
    assert cache.hits - hits == 5 and cache.bytes <= 64 * 1024


def test_lru_order_and_oversized_entries():
    cache = OutputCache(max_bytes=3 * entry_bytes(Prompt((1,)), torch.zeros(4)))
    task = Task(TaskKind.EMBED)
    prompts = [Prompt((i,)) for i in range(4)]
    cache.put(task, prompts[:3], [torch.full((4,), float(i)) for i in range(3)])
    cache.get(task, prompts[:1])  # 0 is now the most recent
    cache.put(task, prompts[3:], [torch.zeros(4)])
    assert [v is not None for v in cache.get(task, prompts)] == [True, False, True, True]
    cache.put(task, [Prompt((9,))], [torch.zeros(10_000)])  # larger than the whole cache: not kept
    assert cache.get(task, [Prompt((9,))]) == [None] and cache.bytes <= cache.max_bytes
    assert cache.get(Task(TaskKind.EMBED, normalize=True), prompts[:1]) == [None]  # another task: another key


def test_disabled_cache_keeps_nothing(minilm_llm):
    minilm_llm.embed(DOCS, use_tqdm=False)
    assert not minilm_llm.engine.cache.enabled and len(minilm_llm.engine.cache) == 0


def test_metrics_report_hits_misses_and_bytes(live_server, cached):
    with live_server(build_app(cached, ServerConfig())) as live, live.client() as c:
        for _ in range(2):
            assert c.post("/v1/embeddings", json={"input": "a text for the metrics"}).status_code == 200
        text = c.get("/metrics").text
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
              if line.startswith("scorekit_score_cache")}
    assert values["scorekit_score_cache_hits_total"] >= 1 and values["scorekit_score_cache_misses_total"] >= 1
    assert values["scorekit_score_cache_bytes"] > 0
