"""Long documents scored whole (scoring/chunking.py): windows at token boundaries with the overlap asked for,
each scored exactly as that window alone, aggregated; short documents unchanged; max_chunks_per_doc bounds the
work and says so."""

from __future__ import annotations

import pytest

from scorekit.scoring.chunking import ChunkParams, token_windows

QUERY = "What is the capital of France?"
LONG = ("The harbour is quiet in winter and the boats stay in. " * 40 + "The capital of France is Paris. "
        + "Bananas grow in warm places near the sea. " * 40)


def _windows(llm, doc, params, query=QUERY):
    from scorekit.scoring.scorer import ScoreParams

    scorer = llm.scorer()
    budget = scorer._document_budget(query, ScoreParams(chunking=params), scorer.check_score_api())
    offsets = llm.get_tokenizer()(doc, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    return token_windows(offsets, len(doc), budget, params.chunk_overlap_tokens, params.max_chunks_per_doc), offsets, budget


@pytest.mark.parametrize("how", ["max", "mean", "first"])
def test_chunked_score_equals_the_windows_scored_by_hand(minilm_llm, how):
    params = ChunkParams(max_chunks_per_doc=16, chunk_overlap_tokens=20, chunk_aggregation=how)
    windows, offsets, budget = _windows(minilm_llm, LONG, params)
    assert len(windows.spans) > 2 and windows.total == len(windows.spans)
    by_hand = [o.outputs.score for o in minilm_llm.score(QUERY, [LONG[s:e] for s, e in windows.spans], use_tqdm=False)]
    want = {"max": max(by_hand), "mean": sum(by_hand) / len(by_hand), "first": by_hand[0]}[how]
    got = minilm_llm.rerank(QUERY, [LONG, "bananas"], max_chunks_per_doc=16, chunk_overlap_tokens=20,
                            chunk_aggregation=how, use_tqdm=False)
    long_result = next(r for r in got if r.index == 0)
    assert long_result.relevance_score == pytest.approx(want, abs=1e-5)
    assert long_result.chunks == len(windows.spans)
    if how == "max":
        best = max(range(len(by_hand)), key=lambda i: by_hand[i])
        assert long_result.best_chunk == windows.spans[best] and "Paris" in LONG[slice(*long_result.best_chunk)]


def test_windows_sit_on_token_boundaries_with_the_overlap(minilm_llm):
    params = ChunkParams(max_chunks_per_doc=16, chunk_overlap_tokens=20)
    windows, offsets, budget = _windows(minilm_llm, LONG, params)
    starts = [next(i for i, o in enumerate(offsets) if o[0] == s) for s, _ in windows.spans]
    ends = [next(i for i, o in enumerate(offsets) if o[1] == e) + 1 for _, e in windows.spans]
    assert all(b - a == budget for a, b in zip(starts[:-1], ends[:-1]))  # full windows of the budget
    assert all(starts[k + 1] == ends[k] - 20 for k in range(len(starts) - 1))  # overlapping by 20 tokens
    assert ends[-1] == len(offsets)  # the last window reaches the end


def test_a_short_document_scores_exactly_as_without_chunking(minilm_llm):
    plain = minilm_llm.score(QUERY, "Paris is the capital of France.", use_tqdm=False)[0].outputs.score
    chunked = minilm_llm.rerank(QUERY, ["Paris is the capital of France."], max_chunks_per_doc=8, use_tqdm=False)[0]
    assert chunked.relevance_score == plain and chunked.chunks == 1


def test_max_chunks_bounds_the_work_and_says_so(http):
    r = http.post("/rerank", json={"query": QUERY, "documents": [LONG, "short"], "max_chunks_per_doc": 2})
    assert r.status_code == 200
    long_result = next(x for x in r.json()["results"] if x["index"] == 0)
    assert long_result["chunks"] == 2 and long_result["chunks_truncated"] is True
    assert set(long_result["best_chunk"]) == {"start", "end"}
    short = next(x for x in r.json()["results"] if x["index"] == 1)
    assert short["chunks"] == 1 and "chunks_truncated" not in short


def test_chunking_and_a_document_token_cap_do_not_mix(http):
    r = http.post("/rerank", json={"query": QUERY, "documents": [LONG], "max_chunks_per_doc": 4,
                                   "max_tokens_per_doc": 10})
    assert r.status_code == 400 and r.json()["error"]["param"] == "max_chunks_per_doc"


def test_without_chunking_a_long_document_is_still_refused(http):
    r = http.post("/rerank", json={"query": QUERY, "documents": [LONG]})
    assert r.status_code == 400 and "Please reduce the length" in r.json()["error"]["message"]


def test_a_converted_decoder_reranker_scores_windows_as_by_hand(tiny_llama):
    """The same on a causal LM converted to a yes/no reranker with a score template: every window repeats the
    template and query, and the windows share that prefix in the engine."""
    from scorekit import LLM

    folder, _, _ = tiny_llama
    llm = LLM(str(folder), max_model_len=160, chat_template="qwen3_reranker",
              hf_overrides={"architectures": ["LlamaForSequenceClassification"], "classifier_from_token": ["no", "yes"],
                            "method": "from_2_way_softmax"})
    doc = "The harbour is quiet in winter. " * 30 + "The capital of France is Paris. " + "Bees make honey. " * 30
    params = ChunkParams(max_chunks_per_doc=32, chunk_overlap_tokens=8)
    windows, _, _ = _windows(llm, doc, params, query="capital of France?")
    assert len(windows.spans) >= 3
    by_hand = [o.outputs.score for o in llm.score("capital of France?", [doc[s:e] for s, e in windows.spans],
                                                  use_tqdm=False)]
    got = llm.rerank("capital of France?", [doc], max_chunks_per_doc=32, chunk_overlap_tokens=8, use_tqdm=False)[0]
    assert got.relevance_score == pytest.approx(max(by_hand), abs=1e-5) and got.chunks == len(windows.spans)
