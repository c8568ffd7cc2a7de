"""Prefix sharing on a real decoder (SmolLM2) leaves scores unchanged and really skips the shared tokens."""

from __future__ import annotations

import pytest

from scorekit import LLM

TEMPLATE = ("You are a careful relevance judge. Read the question and the document, then answer yes if the "
            "document answers the question and no otherwise.\nQuestion: Which river flows through Paris?\nDocument:")
ITEMS = [" The Seine flows through Paris.", " Bananas are yellow.", " Paris is on the Seine, a river of France." * 3,
         " no", " The Thames flows through London, not Paris."]


@pytest.fixture(scope="module")
def without_sharing(smollm2_path):
    return LLM(str(smollm2_path), runner="generate", enable_prefix_caching=False)


@pytest.mark.parametrize("apply_softmax", [True, False])
def test_generative_scores_unchanged(smollm2_llm, without_sharing, apply_softmax):
    tok = smollm2_llm.get_tokenizer()
    labels = [tok.encode(" yes", add_special_tokens=False)[0], tok.encode(" no", add_special_tokens=False)[0]]
    hits_before = smollm2_llm.engine.stats.prefix_hit_tokens
    shared = [o.outputs.score for o in smollm2_llm.generative_score(TEMPLATE, ITEMS, labels, apply_softmax=apply_softmax, use_tqdm=False)]
    plain = [o.outputs.score for o in without_sharing.generative_score(TEMPLATE, ITEMS, labels, apply_softmax=apply_softmax, use_tqdm=False)]
    assert shared == pytest.approx(plain, abs=1e-5)
    prefix_tokens = len(tok(TEMPLATE)["input_ids"])
    assert smollm2_llm.engine.stats.prefix_hit_tokens - hits_before >= prefix_tokens * (len(ITEMS) - 1) - len(ITEMS)
    assert without_sharing.engine.stats.prefix_hit_tokens == 0
