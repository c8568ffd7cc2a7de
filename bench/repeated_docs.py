"""repeated_docs: RAG traffic where the same documents come back for many queries — the output cache against
no cache, same process, same run.

    python bench/repeated_docs.py [--queries 200] [--docs-per-query 50] [--corpus 1000]

Each query (a sentence of bench/data/sentences.txt with its words reversed, so no query is a document) is
scored against `docs-per-query` documents drawn (seeded) from a corpus of `corpus` real sentences, on the
embedded all-MiniLM-L6-v2 bi-encoder. With the cache (`score_cache_bytes`), a document seen by an earlier query
is not embedded again; without it every request embeds all its documents. The two engines alternate, query by
query, so machine drift hits both alike; the scores must agree exactly (the cache returns the stored outputs).
The cached process's RSS before and after shows the byte bound holding (the cache is given 16 MiB here).
"""

from __future__ import annotations

import argparse
import random
import time

import common
from common import record, sentences


def rss_mb() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--docs-per-query", type=int, default=50)
    parser.add_argument("--corpus", type=int, default=1000)
    parser.add_argument("--cache-mb", type=int, default=16)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args()
    applied = common.apply_runtime()

    from scorekit import LLM

    pool = sentences()
    corpus = pool[: args.corpus]
    rng = random.Random(0)
    queries = [" ".join(reversed(pool[rng.randrange(len(pool))].split())) for _ in range(args.queries)]
    requests = [(q, rng.sample(corpus, args.docs_per_query)) for q in queries]

    plain = LLM(score_cache_bytes=0)
    cached = LLM(score_cache_bytes=args.cache_mb << 20)
    for llm in (plain, cached):  # warm-up outside the timing, on texts the requests never send
        llm.score("warm up", ["a warm-up document"], use_tqdm=False)
    rss_before = rss_mb()
    seconds = {"no cache": 0.0, "cache": 0.0}
    max_diff = 0.0
    for k, (query, docs) in enumerate(requests):
        order = [("no cache", plain), ("cache", cached)] if k % 2 == 0 else [("cache", cached), ("no cache", plain)]
        scores = {}
        for name, llm in order:
            start = time.perf_counter()
            scores[name] = [o.outputs.score for o in llm.score(query, docs, use_tqdm=False)]
            seconds[name] += time.perf_counter() - start
        max_diff = max(max_diff, max(abs(a - b) for a, b in zip(scores["cache"], scores["no cache"])))
    rss_after = rss_mb()
    cache = cached.engine.cache
    pairs = args.queries * args.docs_per_query
    print(f"\nrepeated_docs: {args.queries} queries x {args.docs_per_query} documents from a {args.corpus}-sentence "
          f"corpus, all-MiniLM-L6-v2 bi-encoder, {applied['cpu_model']} ({applied['cpu_gemm']})")
    for name, s in seconds.items():
        print(f"  {name:9s} {s:8.2f} s  {pairs / s:9.1f} pairs/s")
    speedup = seconds["no cache"] / seconds["cache"]
    print(f"  cache vs no cache: {speedup:.2f}x; hits {cache.hits}, misses {cache.misses}, "
          f"{cache.bytes / 2**20:.1f} of {args.cache_mb} MiB held, {len(cache)} entries")
    print(f"  max |score difference| {max_diff:.1e} (must be 0); process RSS {rss_before:.0f} -> {rss_after:.0f} MB")
    if not args.no_record:
        record("repeated_docs", {
            "queries": args.queries, "docs_per_query": args.docs_per_query, "corpus": args.corpus,
            "seconds": seconds, "speedup": speedup, "hits": cache.hits, "misses": cache.misses,
            "cache_bytes": cache.bytes, "cache_limit_bytes": args.cache_mb << 20, "max_score_difference": max_diff,
            "rss_mb_before_after": [rss_before, rss_after]}, runtime=applied)
    if max_diff != 0.0:
        raise SystemExit("cached scores differ from fresh ones")


if __name__ == "__main__":
    main()
