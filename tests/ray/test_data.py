"""score_dataset / embed_dataset: 300 rows on 2 actors equal LLM.score / LLM.embed in this process, and the
columns go through Ray Data's own JSONL and Parquet readers and writers."""

from __future__ import annotations

import json

import pytest

import ray

from scorekit.ray import embed_dataset, score_dataset

TOPICS = ["Paris is the capital of France.", "Bananas are yellow and sweet.", "The Rhine flows through Germany.",
          "Cats purr when they are content.", "Python is a programming language."]


def _rows(n=300):
    queries = ["capital of France?", "what colour are bananas", "rivers of Europe", "why do cats purr"]
    return [{"id": i, "query": queries[i % 4], "document": f"{TOPICS[i % 5]} (note {i})"} for i in range(n)]


def test_score_dataset_equals_offline_through_jsonl(ray_address, minilm_llm, tmp_path, actor_cpus):
    rows = _rows()
    src = tmp_path / "pairs.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    ds = score_dataset(ray.data.read_json(str(src)), num_actors=2, batch_size=64, actor_cpus=actor_cpus)
    ds.write_json(str(tmp_path / "scored"))
    got = {r["id"]: r for r in ray.data.read_json(str(tmp_path / "scored")).take_all()}

    offline = minilm_llm.score([r["query"] for r in rows], [r["document"] for r in rows], use_tqdm=False)
    assert sorted(got) == list(range(300))
    for r, o in zip(rows, offline):
        assert got[r["id"]]["document"] == r["document"]
        assert got[r["id"]]["score"] == pytest.approx(o.outputs.score, abs=1e-5)


def test_embed_dataset_equals_offline_through_parquet(ray_address, minilm_llm, tmp_path, actor_cpus):
    rows = [{"id": r["id"], "text": r["document"]} for r in _rows()]
    ray.data.from_items(rows).write_parquet(str(tmp_path / "texts"))
    ds = embed_dataset(ray.data.read_parquet(str(tmp_path / "texts")), text_column="text", num_actors=2,
                       batch_size=64, actor_cpus=actor_cpus)
    ds.write_parquet(str(tmp_path / "embedded"))
    got = {r["id"]: r["embedding"] for r in ray.data.read_parquet(str(tmp_path / "embedded")).take_all()}

    offline = minilm_llm.embed([r["text"] for r in rows], use_tqdm=False)
    assert sorted(got) == list(range(300))
    for r, o in zip(rows, offline):
        assert len(got[r["id"]]) == 384
        assert list(got[r["id"]]) == pytest.approx(o.outputs.embedding, abs=1e-5)


def test_unknown_option_refused_before_anything_runs(ray_address):
    with pytest.raises(TypeError, match="max_num_seq"):
        score_dataset(ray.data.from_items(_rows(3)), max_num_seq=8)
