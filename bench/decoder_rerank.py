"""decoder_rerank: Qwen2.5-0.5B as a yes/no reranker — a ~150-token template+query and 50 documents of
40–120 tokens. scorekit vs a plain batched `transformers` forward that reads the last position's logits,
and vs scorekit with prefix sharing switched off.

    python bench/decoder_rerank.py [--rounds 3]
Targets: ≥ 3x transformers, ≥ 1.5x scorekit without prefix sharing.
"""

from __future__ import annotations

import argparse

import common  # noqa: F401
import torch

from common import apply_runtime, compare, documents, print_table, record

OVERRIDES = {"architectures": ["Qwen2ForSequenceClassification"], "classifier_from_token": ["no", "yes"],
             "method": "from_2_way_softmax"}
INSTRUCTION = ("Given a question about the Python standard library, judge whether the passage documents the "
               "function, class or behaviour the question asks about. Passages that merely mention related "
               "modules, or describe a different function with a similar name, are not relevant. Judge the "
               "passage on its own content, not on its wording.")
QUERY = "How can I read a large file line by line without loading the whole file into memory at once?"


def transformers_baseline(model, tokenizer, prompts, yes, no, batch_size=8):
    """What a user would write without scorekit: batched (left-padded) forward, logits of the last position."""
    tokenizer.padding_side = "left"
    scores = []
    with torch.inference_mode():
        for i in range(0, len(prompts), batch_size):
            enc = tokenizer(prompts[i:i + batch_size], return_tensors="pt", padding=True, add_special_tokens=False)
            logits = model(**enc).logits[:, -1, :]
            scores += torch.softmax(logits[:, [no, yes]].float(), dim=-1)[:, 1].tolist()
    return scores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    applied = apply_runtime()
    from transformers import AutoModelForCausalLM

    from scorekit import LLM
    from scorekit.models.packaged import qwen25_gguf

    path = qwen25_gguf()
    shared = LLM(str(path), hf_overrides=OVERRIDES, chat_template="qwen3_reranker", score_cache_bytes=0)
    unshared = LLM(str(path), hf_overrides=OVERRIDES, chat_template="qwen3_reranker", enable_prefix_caching=False,
                   score_cache_bytes=0)
    tokenizer = shared.get_tokenizer()
    hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])

    docs = documents(tokenizer, n=50, low=40, high=120)
    kwargs = {"chat_template_kwargs": {"instruction": INSTRUCTION}}
    from scorekit import PoolingParams

    params = PoolingParams(extra_kwargs=kwargs)
    outputs = shared.score(QUERY, docs, use_tqdm=False, pooling_params=params)
    prompts = [tokenizer.decode(o.prompt_token_ids) for o in outputs]
    prefix = len(outputs[0].prompt_token_ids) - len(tokenizer(docs[0], add_special_tokens=False)["input_ids"])
    baseline_scores = transformers_baseline(hf, tokenizer, prompts, yes, no)
    max_diff = max(abs(o.outputs.score - b) for o, b in zip(outputs, baseline_scores))

    medians = compare({
        "transformers batched b8": lambda: transformers_baseline(hf, tokenizer, prompts, yes, no),
        "scorekit, no prefix sharing": lambda: unshared.score(QUERY, docs, use_tqdm=False, pooling_params=params),
        "scorekit": lambda: shared.score(QUERY, docs, use_tqdm=False, pooling_params=params),
    }, rounds=args.rounds)
    print_table(f"decoder_rerank: Qwen2.5-0.5B yes/no, ~{prefix}-token template+query, {len(docs)} docs of 40-120 tokens",
                medians, "transformers batched b8", len(docs), "doc")
    vs_hf = medians["transformers batched b8"] / medians["scorekit"]
    vs_unshared = medians["scorekit, no prefix sharing"] / medians["scorekit"]
    print(f"max |Δ| vs transformers: {max_diff:.2e}")
    print(f"target ≥ 3x transformers: {'met' if vs_hf >= 3 else 'NOT met'} ({vs_hf:.2f}x); "
          f"target ≥ 1.5x without sharing: {'met' if vs_unshared >= 1.5 else 'NOT met'} ({vs_unshared:.2f}x)")
    record("decoder_rerank", {"medians_s": medians, "ratio_vs_transformers": vs_hf, "ratio_vs_no_sharing": vs_unshared,
                              "max_abs_diff": max_diff, "prefix_tokens": prefix, "targets": [3.0, 1.5]},
           runtime=applied)


if __name__ == "__main__":
    main()
