"""memory: peak RSS of one 1 query × 2,000 documents × 512-token rerank request, above the loaded model.

Each setting runs in a fresh child process (a process's peak RSS only goes up, so settings must not share
one), which loads the model, warms up, resets the kernel's peak-RSS mark (/proc/self/clear_refs), scores
the whole request in one call and reads the new peak (VmHWM). The default model is the 512-token MiniLM
cross-encoder of bench/rerank.py. The engine caps each batch by estimated activation bytes, so the peak
should not depend on --max-num-batched-tokens / --max-num-seqs: the second setting sets them huge.
    python bench/memory.py [--docs 2000] [--doc-tokens 512]
Target: peak ≤ 1.5 GB above the loaded model, for every setting. Exit status 1 if not met. It also prints what
the process holds once the engine has gone idle after the request (the heap's free pages given back).
"""

from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time

import common  # noqa: F401

from common import RESULTS, apply_runtime, documents, record

# (name, --max-num-batched-tokens, --max-num-seqs): the defaults, and settings that ask for every row at once.
SETTINGS = [("default budget", 16384, 256), ("huge budget", 100_000_000, 100_000)]
LIMIT_GB = 1.5


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(model: str, docs: int, doc_tokens: int, max_tokens: int, max_seqs: int, task: str) -> dict:
    """In this process: load, warm up, reset the peak, run the request, report the peak above the model."""
    applied = apply_runtime()  # the heap policy the server runs with (scorekit/runtime.py)
    from scorekit import LLM

    llm = LLM(model, max_num_batched_tokens=max_tokens, max_num_seqs=max_seqs, score_cache_bytes=0)
    texts = documents(llm.get_tokenizer(), n=docs, low=doc_tokens, high=doc_tokens)
    query = "How do I read a file line by line without loading it into memory?"
    run = {"score": lambda d: llm.score(query, d, use_tqdm=False, truncate_prompt_tokens=-1),
           "embed": lambda d: llm.embed(d, use_tqdm=False, truncate_prompt_tokens=-1)}[task]
    run(texts[:4])  # warm-up: lazily built kernels and buffers belong to the loaded model, not the request
    gc.collect()
    loaded = _status_bytes("VmRSS")
    with open("/proc/self/clear_refs", "w") as clear:
        clear.write("5")  # reset VmHWM (peak RSS) to the current RSS
    start = time.perf_counter()
    outputs = run(texts)
    seconds = time.perf_counter() - start
    peak = _status_bytes("VmHWM")
    assert len(outputs) == docs
    del outputs
    deadline = time.monotonic() + 10
    while llm.engine.scheduler.busy and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # the engine releases the heap's free pages when it goes idle (runtime.release_free_memory)
    idle = _status_bytes("VmRSS")
    return {"loaded_rss_gb": loaded / 1e9, "peak_above_model_gb": (peak - loaded) / 1e9,
            "idle_above_model_gb": (idle - loaded) / 1e9, "seconds": seconds,
            "batches": llm.engine.stats.batches, "prompt_tokens": llm.engine.stats.real_tokens, "runtime": applied}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", help="a model folder (default: the MiniLM cross-encoder of bench/rerank.py)")
    parser.add_argument("--task", choices=["score", "embed"], default="score")
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--doc-tokens", type=int, default=512)
    parser.add_argument("--limit-gb", type=float, default=LIMIT_GB)
    parser.add_argument("--no-record", action="store_true", help="do not write bench/results/memory.json")
    parser.add_argument("--child", nargs=2, type=int, metavar=("MAX_TOKENS", "MAX_SEQS"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.model is None:
        from rerank import build_cross_encoder

        args.model = str(build_cross_encoder(RESULTS / "minilm-cross-encoder"))
    if args.child:
        print(json.dumps(measure(args.model, args.docs, args.doc_tokens, *args.child, args.task)))
        return

    print(f"\nmemory: 1 query x {args.docs} documents x {args.doc_tokens} tokens, {args.task}, {args.model}")
    print(f"{'setting':16s} {'budget':>11s} {'seqs':>8s} {'model RSS GB':>13s} {'peak above GB':>14s} "
          f"{'idle above GB':>14s} {'batches':>8s} {'seconds':>8s}")
    rows, met = [], True
    for name, max_tokens, max_seqs in SETTINGS:
        child = subprocess.run(
            [sys.executable, __file__, "--model", args.model, "--task", args.task, "--docs", str(args.docs),
             "--doc-tokens", str(args.doc_tokens), "--child", str(max_tokens), str(max_seqs)],
            capture_output=True, text=True, check=False)
        if child.returncode != 0:
            print(child.stderr[-3000:], file=sys.stderr)
            raise SystemExit(f"the {name!r} run failed (exit {child.returncode})")
        result = json.loads(child.stdout.strip().splitlines()[-1])
        runtime = result.pop("runtime")  # the same in every child: one machine, one rule
        rows.append({"setting": name, "max_num_batched_tokens": max_tokens, "max_num_seqs": max_seqs, **result})
        met &= result["peak_above_model_gb"] <= args.limit_gb
        print(f"{name:16s} {max_tokens:11d} {max_seqs:8d} {result['loaded_rss_gb']:13.2f} "
              f"{result['peak_above_model_gb']:14.2f} {result['idle_above_model_gb']:14.2f} {result['batches']:8d} "
              f"{result['seconds']:8.1f}")
    worst = max(r["peak_above_model_gb"] for r in rows)
    print(f"target peak ≤ {args.limit_gb} GB above the loaded model: {'met' if met else 'NOT met'} (worst {worst:.2f} GB)")
    if not args.no_record:
        record("memory", {"docs": args.docs, "doc_tokens": args.doc_tokens, "task": args.task, "rows": rows,
                          "limit_gb": args.limit_gb, "worst_gb": worst}, runtime=runtime)
    raise SystemExit(0 if met else 1)


if __name__ == "__main__":
    main()
