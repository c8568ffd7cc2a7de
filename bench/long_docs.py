"""long_docs: long documents scored whole (max_chunks_per_doc) — against a naive loop that scores every window
in a call of its own (same windows, same run), and against truncation on a labelled fixture.

    python bench/long_docs.py [--docs 50] [--min-tokens 2000] [--max-tokens 8000]

Documents: real sentences (bench/data/sentences.txt) drawn with a fixed seed up to a random length of
`min-tokens`–`max-tokens` tokens; document i of the first twelve hides fact i of bench/data/long_docs_facts.json
past its first 300 tokens (where a 256-token model cut by truncation never looks). Model: the embedded
all-MiniLM-L6-v2 bi-encoder — windows of 250 tokens; each document's score is its best window's cosine.

1. Speed: one query against all documents, chunked in one call, vs the naive loop over every window.
2. Recall@1 over the twelve fact queries, each against all documents: truncation vs chunking. With the output
   cache on, every document window is embedded once for all twelve queries (a bi-encoder embeds documents
   without the query), as a RAG server would see them.
"""

from __future__ import annotations

import argparse
import json
import random
import time

import common
from common import DATA, record, sentences


def build_documents(tokenizer, n: int, low: int, high: int, facts: list[str]) -> list[str]:
    rng = random.Random(0)
    pool = sentences()
    docs = []
    for i in range(n):
        target, parts, tokens = rng.randint(low, high), [], 0
        while tokens < target:
            sentence = rng.choice(pool)
            parts.append(sentence)
            tokens += len(tokenizer(sentence, add_special_tokens=False)["input_ids"])
        if i < len(facts):  # past the first 300 tokens, somewhere in the document's body
            prefix, at = 0, 0
            while prefix < 300 and at < len(parts):
                prefix += len(tokenizer(parts[at], add_special_tokens=False)["input_ids"])
                at += 1
            parts.insert(rng.randint(at, max(at, len(parts) - 1)), facts[i])
        docs.append(" ".join(parts))
    return docs


def recall_at_1(llm, cases, docs, **options) -> float:
    hits = 0
    for i, case in enumerate(cases):
        ranked = llm.rerank(case["query"], docs, use_tqdm=False, **options)
        hits += ranked[0].index == i
    return hits / len(cases)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--docs", type=int, default=50)
    parser.add_argument("--min-tokens", type=int, default=2000)
    parser.add_argument("--max-tokens", type=int, default=8000)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    applied = common.apply_runtime()

    from scorekit import LLM
    from scorekit.scoring.chunking import ChunkParams, token_windows
    from scorekit.scoring.scorer import ScoreParams

    cases = json.loads((DATA / "long_docs_facts.json").read_text())["cases"]
    plain = LLM(score_cache_bytes=0)
    tokenizer = plain.get_tokenizer()
    docs = build_documents(tokenizer, args.docs, args.min_tokens, args.max_tokens, [c["fact"] for c in cases])
    total_tokens = sum(len(tokenizer(d, add_special_tokens=False)["input_ids"]) for d in docs)
    chunks = 64  # enough windows for 8,000 tokens in 250-token windows with a 32-token overlap
    query = cases[0]["query"]

    # 1. speed: chunked in one call vs a call per window (the same windows, built the way the scorer builds them)
    scorer = plain.scorer()
    params = ScoreParams(chunking=ChunkParams(max_chunks_per_doc=chunks))
    budget = scorer._document_budget(query, params, scorer.check_score_api())
    windows = []
    for doc in docs:
        offsets = tokenizer(doc, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
        windows.append([doc[s:e] for s, e in token_windows(offsets, len(doc), budget, 32, chunks).spans])
    plain.rerank(query, docs[:2], max_chunks_per_doc=chunks, use_tqdm=False)  # warm-up: threads, first shapes
    start = time.perf_counter()
    chunked = plain.rerank(query, docs, max_chunks_per_doc=chunks, use_tqdm=False)
    chunked_s = time.perf_counter() - start
    start = time.perf_counter()
    naive = [max(plain.score(query, w, use_tqdm=False)[0].outputs.score for w in [[x] for x in ws]) for ws in windows]
    naive_s = time.perf_counter() - start
    by_index = {r.index: r.relevance_score for r in chunked}
    max_diff = max(abs(by_index[i] - naive[i]) for i in range(len(docs)))
    n_windows = sum(len(w) for w in windows)

    # 2. recall@1: truncation vs chunking, on an engine with the output cache (documents embedded once)
    cached = LLM(score_cache_bytes=512 << 20)
    truncated = recall_at_1(cached, cases, docs, tokenization_kwargs={"truncate_prompt_tokens": -1})
    start = time.perf_counter()
    whole = recall_at_1(cached, cases, docs, max_chunks_per_doc=chunks)
    recall_s = time.perf_counter() - start

    print(f"\nlong_docs: {len(docs)} documents, {total_tokens} tokens ({n_windows} windows of <= {budget} tokens), "
          f"all-MiniLM-L6-v2, {applied['cpu_model']} ({applied['cpu_gemm']})")
    print(f"  chunked, one call     {chunked_s:8.2f} s")
    print(f"  a call per window     {naive_s:8.2f} s   -> chunked is {naive_s / chunked_s:.2f}x faster; "
          f"max |score difference| {max_diff:.1e}")
    print(f"  recall@1 over {len(cases)} fact queries: truncation {truncated:.2f}, chunked {whole:.2f} "
          f"({recall_s:.1f} s for the {len(cases)} chunked reranks with the output cache)")
    if not args.no_record:
        record("long_docs", {"docs": len(docs), "tokens": total_tokens, "windows": n_windows, "window_tokens": budget,
                             "chunked_s": chunked_s, "naive_s": naive_s, "speedup": naive_s / chunked_s,
                             "max_score_difference": max_diff, "recall_at_1_truncated": truncated,
                             "recall_at_1_chunked": whole, "fact_queries": len(cases)}, runtime=applied)


if __name__ == "__main__":
    main()
