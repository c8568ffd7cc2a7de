"""vLLM's PoolingRequestOutput.num_cached_tokens on LLM.embed / classify / encode: per output, the prompt tokens
the engine did not compute for it (docs/fields.md, "Offline outputs"). Here: a repeat of a prompt in the same
call counts whole, a first occurrence counts nothing, and an output-cache hit counts whole."""

from __future__ import annotations

from scorekit import LLM


def test_repeats_in_one_call_count_whole(minilm):
    out = minilm.embed(["the same sentence", "another one", "the same sentence"], use_tqdm=False)
    assert [o.num_cached_tokens for o in out] == [0, 0, len(out[2].prompt_token_ids)]


def test_output_cache_hits_count_whole(minilm_dir):
    llm = LLM(str(minilm_dir), score_cache_bytes=1 << 20)
    first = llm.encode(["cached once"], use_tqdm=False)[0]
    again = llm.encode(["cached once"], use_tqdm=False)[0]
    assert first.num_cached_tokens == 0 and again.num_cached_tokens == len(again.prompt_token_ids)
    llm.engine.scheduler.stop()
