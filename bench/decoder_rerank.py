"""decoder_rerank: Qwen2.5-0.5B as a yes/no reranker — a ~150-token template+query and 50 documents of
40–120 tokens. scorekit fp32 vs a plain batched `transformers` forward that reads the last position's logits,
vs scorekit with prefix sharing switched off, vs scorekit's opt-in quantizations (models/quantize.py), vs scorekit in
bfloat16 (`dtype="bfloat16"`, every layer's weights and activations in bf16, label logits in fp32), and vs
llama.cpp (llama-cpp-python, the `llamacpp` extra) on the same GGUF file.

    python bench/decoder_rerank.py [--rounds 3] [--no-transformers] [--no-llamacpp] [--only bf16,int8]
`--only` keeps scorekit fp32 and llama.cpp and only the listed other columns (names: bf16, int8, no-sharing,
transformers), for a run that has to fit in a few minutes.
Targets: ≥ 3x transformers, ≥ 1.5x scorekit without prefix sharing, ≥ 1.5x llama.cpp in fp32, ≥ 4x llama.cpp
quantized at Spearman ≥ 0.99 against scorekit's fp32 scores.

llama.cpp gets exactly scorekit's token ids, computes the shared prefix once (its KV cache is kept and only the
document's part is dropped between documents, `Llama.eval` from position P) and reads the last position's
logits of "no" and "yes"; it scores one document at a time, as its Python API does, on 2 threads. Its weights
stay in the GGUF's own Q4_K/Q6_K blocks (scorekit dequantizes them to fp32), so its scores differ a little.
llama.cpp runs with its "extra buffer types" off (`use_extra_bufts=False`): on CPUs with AMX its AMX repacking
of Q4_K weights segfaults in `ggml_backend_amx_mul_mat` on the first forward (llama.cpp issue #20824, seen
here with llama-cpp-python 0.3.36), so it computes with its plain Q4_K x Q8_K CPU dot products.
Every candidate's scores are compared with scorekit fp32's: max |Δ| and Spearman's rank correlation.
The fp32 FLOP rate counts the useful work only (every real token of every prompt once, the prefix once:
Linear layers and attention, analytically) over the median time, against a square fp32 MKL matmul timed in
the same run (the roof).
"""

from __future__ import annotations

import argparse
import os
import statistics

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
FP32 = "scorekit fp32"
BF16 = "scorekit bf16"
OPTIONAL = ("bf16", "int8", "no-sharing", "transformers")


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


def shared_prefix(token_lists: list[list[int]]) -> int:
    first = token_lists[0]
    n = min(len(t) for t in token_lists)
    for i in range(n):
        if any(t[i] != first[i] for t in token_lists):
            return i
    return n


def llamacpp_scores(llama, token_lists, prefix, yes, no):
    """P(yes | {no, yes}) at each prompt's last position; the prefix's KV entries are computed once and kept."""
    import numpy as np

    llama.reset()
    llama.eval(token_lists[0][:prefix])
    scores = []
    for ids in token_lists:
        llama.n_tokens = prefix  # eval drops the KV cache from here on, keeping the prefix
        llama.eval(ids[prefix:])
        logits = np.ctypeslib.as_array(llama._ctx.get_logits(), shape=(llama.n_vocab(),))  # the one output row
        pair = torch.tensor([float(logits[no]), float(logits[yes])])
        scores.append(torch.softmax(pair, dim=0)[1].item())
    return scores


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rho: Pearson's correlation of the ranks (ties share their mean rank)."""
    def ranks(x):
        order = sorted(range(len(x)), key=x.__getitem__)
        r = [0.0] * len(x)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and x[order[j + 1]] == x[order[i]]:
                j += 1
            for k in range(i, j + 1):
                r[order[k]] = (i + j) / 2
            i = j + 1
        return r
    return statistics.correlation(ranks(a), ranks(b))


def useful_flops(config, token_lists, prefix) -> float:
    """2 FLOPs per multiply-add of the Linear layers and attention (QK^T, AV) of every real token once, the
    shared prefix once; the two label rows of the head are negligible and not counted."""
    h, inter, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    heads = config.num_attention_heads
    head_dim = h // heads
    kv = config.num_key_value_heads * head_dim
    per_token = 2 * layers * (h * (h + 2 * kv) + h * h + 3 * h * inter)
    positions = list(range(prefix)) + [p for ids in token_lists for p in range(prefix, len(ids))]
    attention = sum(2 * 2 * layers * heads * head_dim * (p + 1) for p in positions)
    return per_token * len(positions) + attention


def matmul_roof(n: int = 1536) -> float:
    """FLOP/s of a square fp32 matmul on the fp32 backend in force (models/gemm.py: MKL or oneDNN) and this
    process's threads (median of 9, after 2 warm-ups)."""
    from scorekit.models import gemm

    a, b = torch.randn(n, n), gemm.column_major(torch.randn(n, n))
    with torch.inference_mode():
        seconds = compare({"matmul": lambda: gemm.linear(a, b)}, rounds=9, warmup=2)["matmul"]
    return 2 * n ** 3 / seconds


def load_llamacpp(llama_cpp, path):
    """llama_cpp.Llama on `path` with extra buffer types off (see the module docstring): Llama() builds its model
    params from `llama_model_default_params()`, which is wrapped for the duration of the constructor only."""
    import llama_cpp.llama as llama_module

    original = llama_module.llama_cpp.llama_model_default_params

    def params():
        p = original()
        p.use_extra_bufts = False
        return p

    llama_module.llama_cpp.llama_model_default_params = params
    try:
        return llama_cpp.Llama(str(path), n_ctx=1024, n_batch=512, n_threads=2, n_threads_batch=2,
                               logits_all=False, verbose=False)
    finally:
        llama_module.llama_cpp.llama_model_default_params = original


# torch profiler op names -> where the time of a forward goes
_PROFILE_GROUPS = {
    "int8 matmul (oneDNN)": ("quantized::linear_dynamic",),
    "fp32 matmul": ("aten::mm", "aten::addmm", "mkldnn::_linear_pointwise"),
    "attention (SDPA)": ("aten::_scaled_dot_product_flash_attention_for_cpu", "aten::_scaled_dot_product_attention_math"),
    "per-token scales (norm, divide, rescale)": ("aten::linalg_vector_norm", "aten::div", "aten::mul_", "aten::add_"),
}


def profile_forwards(llm, run) -> dict[str, float]:
    """Seconds per op group over the backbone forwards of one `run()`, replayed on this thread under torch's
    profiler (the engine's model threads are not profiled)."""
    from torch.profiler import ProfilerActivity, profile

    backbone = llm.loaded.model.backbone
    calls, original = [], backbone.hidden_states_after_prefix

    def recording(prefix, ids, mask=None):
        calls.append((prefix, ids, mask))
        return original(prefix, ids, mask)

    backbone.hidden_states_after_prefix = recording
    try:
        run()
    finally:
        del backbone.hidden_states_after_prefix
    with torch.inference_mode(), profile(activities=[ProfilerActivity.CPU]) as prof:
        for prefix, ids, mask in calls:
            backbone.hidden_states_after_prefix(prefix, ids, mask)
    groups = {name: 0.0 for name in _PROFILE_GROUPS}
    total = 0.0
    for event in prof.key_averages():
        seconds = event.self_cpu_time_total / 1e6
        total += seconds
        for name, ops in _PROFILE_GROUPS.items():
            if event.key in ops:
                groups[name] += seconds
    groups["everything else (norms, RoPE, SiLU, adds, copies)"] = total - sum(groups.values())
    groups["total"] = total
    return groups


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-transformers", action="store_true", help="skip the slow transformers baseline")
    parser.add_argument("--no-llamacpp", action="store_true", help="skip llama.cpp even if llama_cpp imports")
    parser.add_argument("--no-profile", action="store_true", help="skip the per-op profile of fp32 and int8")
    parser.add_argument("--only", default=None,
                        help=f"comma-separated columns to run besides fp32 and llama.cpp, from {','.join(OPTIONAL)}")
    args = parser.parse_args()
    only = set(OPTIONAL) if args.only is None else {c.strip() for c in args.only.split(",") if c.strip()}
    if only - set(OPTIONAL):
        parser.error(f"--only: unknown columns {sorted(only - set(OPTIONAL))} (known: {', '.join(OPTIONAL)})")
    if "transformers" not in only:
        args.no_transformers = True
    applied = apply_runtime()
    from scorekit import LLM, PoolingParams
    from scorekit.models.packaged import qwen25_gguf
    from scorekit.models.quantize import QUANTIZATIONS

    path = qwen25_gguf()
    common_kwargs = {"hf_overrides": OVERRIDES, "chat_template": "qwen3_reranker", "score_cache_bytes": 0}
    models = {FP32: LLM(str(path), **common_kwargs)}
    if "no-sharing" in only:
        models["scorekit, no prefix sharing"] = LLM(str(path), enable_prefix_caching=False, **common_kwargs)
    quantizations = [q for q in QUANTIZATIONS if q in only]
    for q in quantizations:
        models[f"scorekit {q}"] = LLM(str(path), quantization=q, **common_kwargs)
    if "bf16" in only:
        models[BF16] = LLM(str(path), dtype="bfloat16", **common_kwargs)
    tokenizer = models[FP32].get_tokenizer()
    yes, no = tokenizer.convert_tokens_to_ids(["yes", "no"])
    docs = documents(tokenizer, n=50, low=40, high=120)
    params = PoolingParams(extra_kwargs={"chat_template_kwargs": {"instruction": INSTRUCTION}})

    candidates, scores = {}, {}
    for name, llm in models.items():
        run = (lambda llm=llm: [o.outputs.score for o in llm.score(QUERY, docs, use_tqdm=False,
                                                                     pooling_params=params)])
        candidates[name] = run
        scores[name] = run()
    outputs = models[FP32].score(QUERY, docs, use_tqdm=False, pooling_params=params)
    token_lists = [list(o.prompt_token_ids) for o in outputs]
    prefix = shared_prefix(token_lists)

    if not args.no_transformers:
        from transformers import AutoModelForCausalLM

        hf = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
        prompts = [tokenizer.decode(ids) for ids in token_lists]
        candidates["transformers batched b8"] = lambda: transformers_baseline(hf, tokenizer, prompts, yes, no)
        scores["transformers batched b8"] = candidates["transformers batched b8"]()
    llamacpp_version = None
    if not args.no_llamacpp:
        try:
            import llama_cpp
        except ImportError:
            print("llama.cpp skipped: pip install 'scorekit[llamacpp]' (builds llama-cpp-python from source)")
        else:
            llamacpp_version = llama_cpp.__version__
            llama = load_llamacpp(llama_cpp, path)
            candidates["llama.cpp"] = lambda: llamacpp_scores(llama, token_lists, prefix, yes, no)
            scores["llama.cpp"] = candidates["llama.cpp"]()

    load_before = list(os.getloadavg())
    medians = compare(candidates, rounds=args.rounds)
    roof = matmul_roof()
    flops = useful_flops(models[FP32].loaded.config, token_lists, prefix)
    fp32_rate = flops / medians[FP32]

    print_table(f"decoder_rerank: Qwen2.5-0.5B yes/no, {prefix}-token shared prefix, {len(docs)} docs of 40-120 tokens",
                medians, FP32, len(docs), "doc")
    deviation = {name: {"spearman": spearman(scores[FP32], s),
                        "max_abs_diff": max(abs(a - b) for a, b in zip(scores[FP32], s))}
                 for name, s in scores.items() if name != FP32}
    for name, d in deviation.items():
        print(f"{name:28s} vs {FP32}: Spearman {d['spearman']:.4f}, max |Δ| {d['max_abs_diff']:.2e}")
    print(f"{FP32}: {fp32_rate / 1e9:.1f} useful GFLOP/s = {fp32_rate / roof:.2f} of the fp32 matmul roof "
          f"({applied['cpu_gemm']}, {roof / 1e9:.1f} GFLOP/s, {torch.get_num_threads()} threads); llama.cpp computes "
          "the same tokens")

    ratios = {f"{name} vs {base}": medians[base] / medians[name]
              for base in ("transformers batched b8", "scorekit, no prefix sharing", "llama.cpp") if base in medians
              for name in medians if name.startswith("scorekit ") and name != base and
              (base != "scorekit, no prefix sharing" or name == FP32)}
    for label, ratio in ratios.items():
        print(f"{label}: {ratio:.2f}x")
    for name in models:
        if name != FP32:
            ratios[f"{name} vs {FP32}"] = medians[FP32] / medians[name]
    if BF16 in medians:
        print(f"{BF16} vs {FP32}: {ratios[f'{BF16} vs {FP32}']:.2f}x")
    reduced = [f"scorekit {q}" for q in quantizations] + ([BF16] if BF16 in medians else [])
    verdicts = {}
    if "llama.cpp" in medians:
        verdicts["fp32 >= 1.5x llama.cpp"] = ratios[f"{FP32} vs llama.cpp"] >= 1.5
        for name in reduced:
            short = name.removeprefix("scorekit ")
            verdicts[f"{short} >= 4x llama.cpp"] = ratios[f"{name} vs llama.cpp"] >= 4.0
            verdicts[f"{short} Spearman >= 0.99 vs fp32"] = deviation[name]["spearman"] >= 0.99
    if "transformers batched b8" in medians:
        verdicts["fp32 >= 3x transformers"] = ratios[f"{FP32} vs transformers batched b8"] >= 3.0
    if "scorekit, no prefix sharing" in medians:
        verdicts["fp32 >= 1.5x no prefix sharing"] = ratios[f"{FP32} vs scorekit, no prefix sharing"] >= 1.5
    for label, ok in verdicts.items():
        print(f"target {label}: {'met' if ok else 'NOT met'}")

    profiles = {}
    if not args.no_profile:
        for name in (FP32, *reduced):
            profiles[name] = profile_forwards(models[name], candidates[name])
        print("\nwhere a run's forwards spend their time (torch profiler, replayed on one thread, seconds):")
        for group in profiles[FP32]:
            print(f"  {group:52s} " + "  ".join(f"{name} {p[group]:7.2f}" for name, p in profiles.items()))
    record("decoder_rerank", {"medians_s": medians, "ratios": ratios, "deviation_vs_fp32": deviation,
                              "prefix_tokens": prefix, "documents": len(docs),
                              "fp32_useful_gflops": fp32_rate / 1e9, "matmul_roof_gflops": roof / 1e9,
                              "fp32_fraction_of_roof": fp32_rate / roof, "llama_cpp_python": llamacpp_version,
                              "llama_cpp_settings": "use_extra_bufts=False (AMX repack segfaults: llama.cpp #20824), "
                                                    "n_threads=2, n_batch=512, KV prefix kept",
                              "verdicts": verdicts, "profile_s": profiles,
                              "columns_run": sorted(only),
                              "bf16": "dtype='bfloat16': weights, residual stream, attention in bf16 (norms and RoPE "
                                      "computed in fp32 and rounded, as transformers does), label logits in fp32",
                              "targets": {"vs transformers": 3.0, "vs no sharing": 1.5, "fp32 vs llama.cpp": 1.5,
                                          "quantized vs llama.cpp": 4.0, "quantized spearman": 0.99,
                              "bf16 spearman": 0.99},
                              "machine": "shared 2-core VM: other helpers' jobs may have run (load average in runtime)"},
           runtime={**applied, "load_average_before_timing": load_before, "load_average": list(os.getloadavg())})


if __name__ == "__main__":
    main()
