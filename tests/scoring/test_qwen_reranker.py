"""A real reranker made from Qwen2.5-0.5B-Instruct (yes/no label rows of its LM head, SPEC §6) ranks the
relevant document first on the repo's relevance fixture, and equals generative scoring on the same prompt."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scorekit import LLM

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "relevance.json").read_text())["cases"]
OVERRIDES = {"architectures": ["Qwen2ForSequenceClassification"], "classifier_from_token": ["no", "yes"],
             "method": "from_2_way_softmax"}


@pytest.fixture(scope="module")
def qwen_path():
    from scorekit.models.packaged import qwen25_gguf

    return qwen25_gguf()


@pytest.fixture(scope="module")
def qwen_reranker(qwen_path):
    return LLM(str(qwen_path), hf_overrides=OVERRIDES, chat_template="qwen3_reranker")


@pytest.mark.parametrize("case", FIXTURE, ids=[c["query"] for c in FIXTURE])
def test_relevant_document_ranks_first(qwen_reranker, case):
    documents = case["irrelevant"] + [case["relevant"]]
    ranked = qwen_reranker.rerank(case["query"], documents, use_tqdm=False)
    assert ranked[0].document == case["relevant"], [(r.document[:30], round(r.relevance_score, 3)) for r in ranked]


@pytest.mark.slow
def test_classifier_equals_generative_scoring(qwen_reranker, qwen_path):
    generator = LLM(str(qwen_path), runner="generate")
    tok = qwen_reranker.get_tokenizer()
    yes, no = tok.convert_tokens_to_ids(["yes", "no"])
    case = FIXTURE[0]
    for out in qwen_reranker.score(case["query"], [case["relevant"], case["irrelevant"][0]], use_tqdm=False):
        ids = out.prompt_token_ids
        expected = generator.generative_score(ids[:-1], [ids[-1:]], [yes, no], use_tqdm=False)[0].outputs.score
        assert out.outputs.score == pytest.approx(expected, abs=1e-5)
