"""The opt-in bfloat16 encoder (`LLM(dtype="bfloat16")`, `scorekit serve --dtype bfloat16`) against the exact fp32
default on the same weights: it must stay within the bounds docs/models.md states, and its outputs come back as
float32 like every other path. The fp32 default is what the other encoder tests check against transformers."""

from __future__ import annotations

import pytest
import torch

from scorekit import LLM

SENTENCES = [
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch of the old house.",
    "Hi",
    "Scoring text pairs with transformer models on a small CPU.",
    "Paris is the capital and most populous city of France.",
    "Bananas are yellow when they are ripe, and green before.",
    "The stock market fell sharply on Monday after the central bank raised interest rates again.",
    "How do I reset my password if I no longer have access to the email address on my account?",
]
# Stated in docs/models.md: 1 - cosine(bf16 vector, fp32 vector) ≤ 1e-3 per text, cosine scores within 1e-2.
MAX_VECTOR_DEVIATION = 1e-3
MAX_SCORE_DEVIATION = 1e-2


@pytest.fixture(scope="module")
def pair():
    return LLM(score_cache_bytes=0), LLM(dtype="bfloat16", score_cache_bytes=0)


def test_bf16_embeddings_within_bound_of_fp32(pair):
    fp32, bf16 = pair
    assert bf16.loaded.model.dtype == torch.bfloat16
    exact = torch.tensor([o.outputs.embedding for o in fp32.embed(SENTENCES, use_tqdm=False)])
    fast_out = bf16.embed(SENTENCES, use_tqdm=False)
    fast = torch.tensor([o.outputs.embedding for o in fast_out])
    assert fast.dtype == torch.float32 and fast.shape == exact.shape
    deviation = 1 - torch.nn.functional.cosine_similarity(fast, exact, dim=-1)
    assert float(deviation.max()) <= MAX_VECTOR_DEVIATION
    assert float(deviation.max()) > 0  # it really ran in bf16: fp32 would give the same vectors
    scores = (fast @ fast.T - exact @ exact.T).abs().max()
    assert float(scores) <= MAX_SCORE_DEVIATION


def test_bf16_scores_and_ranking_follow_fp32(pair):
    fp32, bf16 = pair
    query, docs = SENTENCES[4], SENTENCES[:4] + SENTENCES[5:]
    exact = [o.outputs.score for o in fp32.score(query, docs, use_tqdm=False)]
    fast = [o.outputs.score for o in bf16.score(query, docs, use_tqdm=False)]
    assert max(abs(a - b) for a, b in zip(exact, fast)) <= MAX_SCORE_DEVIATION
    assert [r.index for r in fp32.rerank(query, docs)][:3] == [r.index for r in bf16.rerank(query, docs)][:3]
