"""Bi-encoder scores on the real all-MiniLM-L6-v2 equal sentence-transformers encode + cosine."""

from __future__ import annotations

import pytest
import torch

QUERIES = ["What is the capital of France?", "How do bees make honey?"]
DOCS = [
    "Paris is the capital and largest city of France.",
    "Bees turn nectar into honey by regurgitation and evaporation inside the hive.",
    "The quick brown fox jumps over the lazy dog, again and again, in a much longer sentence than the others.",
]
TOL = 1e-5


@pytest.fixture(scope="module")
def st_model(minilm_dir):
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(minilm_dir), device="cpu")


def _reference(st_model, queries, docs):
    q = st_model.encode(queries, convert_to_tensor=True, batch_size=1)
    d = st_model.encode(docs, convert_to_tensor=True, batch_size=1)
    return torch.nn.functional.cosine_similarity(q, d, dim=-1).tolist()


def test_one_to_one(minilm_llm, st_model):
    out = minilm_llm.score(QUERIES[0], DOCS[0], use_tqdm=False)
    assert len(out) == 1
    assert out[0].outputs.score == pytest.approx(_reference(st_model, QUERIES[:1], DOCS[:1])[0], abs=TOL)


def test_one_to_many(minilm_llm, st_model):
    scores = [o.outputs.score for o in minilm_llm.score(QUERIES[0], DOCS, use_tqdm=False)]
    expected = _reference(st_model, QUERIES[:1] * len(DOCS), DOCS)
    assert scores == pytest.approx(expected, abs=TOL)
    assert scores[0] > 0.5 > scores[2]  # the Paris document is the relevant one


def test_many_to_many(minilm_llm, st_model):
    scores = [o.outputs.score for o in minilm_llm.score(QUERIES, DOCS[:2], use_tqdm=False)]
    assert scores == pytest.approx(_reference(st_model, QUERIES, DOCS[:2]), abs=TOL)


def test_one_to_many_encodes_query_once(minilm_llm):
    scorer = minilm_llm.scorer()
    sequences = minilm_llm.engine.stats.sequences
    result = minilm_llm.engine.submit(scorer.score(QUERIES[0], DOCS)).result()
    assert minilm_llm.engine.stats.sequences - sequences == 1 + len(DOCS)  # the query ran once
    q_len = len(minilm_llm.get_tokenizer()(QUERIES[0])["input_ids"])
    d_len = sum(len(minilm_llm.get_tokenizer()(d)["input_ids"]) for d in DOCS)
    # ...but usage counts it per pair, with a separator, as vLLM reports it
    assert result.prompt_tokens == len(DOCS) * (q_len + 1) + d_len


def test_embed_matches_sentence_transformers(minilm_llm, st_model):
    vectors = torch.tensor([o.outputs.embedding for o in minilm_llm.embed(DOCS, use_tqdm=False)])
    expected = st_model.encode(DOCS, convert_to_tensor=True, normalize_embeddings=True)
    assert torch.allclose(vectors, expected, atol=TOL)


def test_batch_composition_does_not_change_scores(minilm_llm):
    alone = minilm_llm.score(QUERIES[0], DOCS[0], use_tqdm=False)[0].outputs.score
    mixed_docs = [DOCS[2] * 3, DOCS[1], DOCS[0], "short", DOCS[2]]
    in_batch = minilm_llm.score(QUERIES[0], mixed_docs, use_tqdm=False)[2].outputs.score
    assert in_batch == pytest.approx(alone, abs=TOL)
