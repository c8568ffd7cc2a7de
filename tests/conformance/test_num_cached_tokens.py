"""vLLM's PoolingRequestOutput.num_cached_tokens (and RequestOutput's, for generative scoring): per output, the
prompt tokens the engine did not compute for it (docs/fields.md, "Offline outputs"). Here: a repeat of a prompt
in the same call counts whole, a first occurrence counts nothing, an output-cache hit counts whole, and each
member of a shared-prefix group after the first counts the shared prefix. Score outputs of a bi-encoder or late
interaction add the query's count to the document's, as vLLM's pair outputs add both sides."""

from __future__ import annotations

import pytest

from scorekit import LLM
from scorekit.engine.prefix import common_prefix_len

# Long enough (≥ min_prefix_tokens = 16 tokens) for the shared template + query to be computed once.
INSTRUCTION = ("You are a careful relevance judge. Read the question and the document, then answer yes if the "
               "document answers the question and no otherwise.")
QUERY = "Which river flows through Paris?"
DOCS = ["The Seine flows through Paris.", "Bananas are yellow.", "The Thames flows through London.",
        "Paris is on the Seine, a river of France."]
TEMPLATE = ("{{ instruction }}\nQuestion: {{ (messages | selectattr('role', 'eq', 'query') | first).content }}\n"
            "Document: {{ (messages | selectattr('role', 'eq', 'document') | first).content }}\nRelevant:")
RERANKER = {"architectures": ["LlamaForSequenceClassification"], "classifier_from_token": ["no", "yes"],
            "method": "from_2_way_softmax"}


def test_repeats_in_one_call_count_whole(minilm):
    out = minilm.embed(["the same sentence", "another one", "the same sentence"], use_tqdm=False)
    assert [o.num_cached_tokens for o in out] == [0, 0, len(out[2].prompt_token_ids)]


def test_output_cache_hits_count_whole(minilm_dir):
    llm = LLM(str(minilm_dir), score_cache_bytes=1 << 20)
    first = llm.encode(["cached once"], use_tqdm=False)[0]
    again = llm.encode(["cached once"], use_tqdm=False)[0]
    assert first.num_cached_tokens == 0 and again.num_cached_tokens == len(again.prompt_token_ids)
    llm.engine.scheduler.stop()


def _expected_prefix_counts(prompts: list[list[int]]) -> list[int]:
    """What a shared prefix spares each prompt, computed from the prompts alone: every prompt shares the same
    template + query start; the one that sorts first runs it, each other one reuses it."""
    shared = min(common_prefix_len(prompts[0], p) for p in prompts[1:])
    shared = min([shared] + [len(p) - 1 for p in prompts])
    first = min(range(len(prompts)), key=lambda i: tuple(prompts[i]))
    return [0 if i == first else shared for i in range(len(prompts))]


@pytest.fixture(scope="module")
def decoder_rerankers(tiny_llama):
    folder = tiny_llama[0]
    shared = LLM(str(folder), hf_overrides=RERANKER, chat_template=TEMPLATE)
    plain = LLM(str(folder), hf_overrides=RERANKER, chat_template=TEMPLATE, enable_prefix_caching=False,
                score_cache_bytes=0)
    yield shared, plain
    shared.engine.scheduler.stop()
    plain.engine.scheduler.stop()


def test_decoder_reranker_counts_the_shared_template_and_query(decoder_rerankers):
    shared, plain = decoder_rerankers
    kwargs = {"chat_template_kwargs": {"instruction": INSTRUCTION}}
    from scorekit.outputs import PoolingParams

    params = PoolingParams(extra_kwargs=kwargs)
    out = shared.score(QUERY, DOCS, pooling_params=params, use_tqdm=False)
    prompts = [o.prompt_token_ids for o in out]
    expected = _expected_prefix_counts(prompts)
    assert expected.count(0) == 1 and min(expected[i] for i in range(len(DOCS)) if expected[i]) >= 16
    assert [o.num_cached_tokens for o in out] == expected
    # Without prefix sharing nothing is reused, and the scores are the same (the K/V reuse is exact).
    alone = plain.score(QUERY, DOCS, pooling_params=params, use_tqdm=False)
    assert [o.num_cached_tokens for o in alone] == [0] * len(DOCS)
    assert [o.outputs.score for o in out] == pytest.approx([o.outputs.score for o in alone], abs=1e-5)
    # rerank reports each document's pair count, whatever its rank: the same prompts again are output-cache
    # hits now, reused whole.
    ranked = shared.rerank(QUERY, DOCS, instruction=INSTRUCTION, use_tqdm=False)
    assert {r.index: r.num_cached_tokens for r in ranked} == {i: len(p) for i, p in enumerate(prompts)}


def test_decoder_reranker_repeated_document_counts_whole(decoder_rerankers):
    _, plain = decoder_rerankers
    params_docs = [DOCS[0], DOCS[1], DOCS[0]]
    from scorekit.outputs import PoolingParams

    out = plain.score(QUERY, params_docs, use_tqdm=False,
                       pooling_params=PoolingParams(extra_kwargs={"chat_template_kwargs": {"instruction": INSTRUCTION}}))
    counts = [o.num_cached_tokens for o in out]
    # Without prefix sharing or an output cache, only the repeat reuses something: the first copy's output, whole.
    assert counts == [0, 0, len(out[2].prompt_token_ids)]


def test_generative_scoring_counts_the_shared_query(tiny_llama):
    folder, _, tokenizer = tiny_llama
    llm = LLM(str(folder), runner="generate")
    try:
        labels = [tokenizer.encode(" yes", add_special_tokens=False)[0], tokenizer.encode(" no", add_special_tokens=False)[0]]
        query = f"{INSTRUCTION}\nQuestion: {QUERY}\nDocument:"
        out = llm.generative_score(query, [" " + d for d in DOCS], labels, use_tqdm=False)
        prompts = [o.prompt_token_ids for o in out]
        q_ids = tokenizer(query)["input_ids"]
        assert all(p[: len(q_ids)] == q_ids for p in prompts)  # the prompts that ran: query + item
        assert [o.num_cached_tokens for o in out] == _expected_prefix_counts(prompts)
        assert sum(o.num_cached_tokens for o in out) >= len(q_ids) * (len(DOCS) - 1)
    finally:
        llm.engine.scheduler.stop()


def test_bi_encoder_pairs_add_query_and_document(minilm):
    out = minilm.score("what is a cat", ["a cat is an animal", "a dog", "a cat is an animal"], use_tqdm=False)
    doc_tokens = len(minilm.get_tokenizer()("a cat is an animal")["input_ids"])
    # The 1:N query runs once and counts 0 in every pair; the repeated document counts whole.
    assert [o.num_cached_tokens for o in out] == [0, 0, doc_tokens]
    # N:N with a repeated query: the second pair's query is a repeat (its whole length) and so is its document.
    twice = minilm.score(["q one", "q one"], ["doc a", "doc a"], use_tqdm=False)
    q_len, d_len = (len(minilm.get_tokenizer()(t)["input_ids"]) for t in ("q one", "doc a"))
    assert [o.num_cached_tokens for o in twice] == [0, q_len + d_len]


def test_late_interaction_pairs_add_query_and_document(minilm_dir):
    llm = LLM(str(minilm_dir), task="token_embed")
    try:
        out = llm.score("what is a cat", ["a cat", "a dog", "a cat"], use_tqdm=False)
        doc_tokens = len(llm.get_tokenizer()("a cat")["input_ids"])
        assert [o.num_cached_tokens for o in out] == [0, 0, doc_tokens]
    finally:
        llm.engine.scheduler.stop()
