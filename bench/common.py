"""Shared benchmark helpers: alternating rounds, medians, a printed table, and a JSON record for the README plot.

These machines are noisy: every comparison runs the baseline and the candidate in the same process,
alternating, several rounds, and reports the median of each and their ratio — never one absolute time.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATA = Path(__file__).parent / "data"
RESULTS = Path(__file__).parent / "results"


def sentences() -> list[str]:
    return (DATA / "sentences.txt").read_text().splitlines()


def documents(tokenizer, n: int, low: int, high: int, seed: int = 0) -> list[str]:
    """n passages of real sentences, each cut to a random length in [low, high] content tokens."""
    rng = random.Random(seed)
    pool = sentences()
    docs = []
    for _ in range(n):
        target, text = rng.randint(low, high), ""
        while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < target:
            text += " " + rng.choice(pool)
        docs.append(tokenizer.decode(tokenizer(text, add_special_tokens=False)["input_ids"][:target]))
    return docs


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def compare(candidates: dict[str, Callable[[], object]], rounds: int = 5, warmup: int = 1) -> dict[str, float]:
    """Median seconds per candidate; candidates alternate within every round so drift hits all alike."""
    for _ in range(warmup):
        for fn in candidates.values():
            fn()
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for r in range(rounds):
        names = list(candidates) if r % 2 == 0 else list(reversed(candidates))
        for name in names:
            times[name].append(timed(candidates[name]))
    return {name: statistics.median(t) for name, t in times.items()}


def print_table(title: str, medians: dict[str, float], baseline: str, work: float, unit: str) -> None:
    print(f"\n{title}")
    print(f"{'':28s} {'median s':>10s} {unit + '/s':>14s} {'vs ' + baseline:>14s}")
    for name, seconds in medians.items():
        print(f"{name:28s} {seconds:10.3f} {work / seconds:14.1f} {medians[baseline] / seconds:13.2f}x")


def apply_runtime() -> dict:
    """Opt in to scorekit's process-wide settings (scorekit/runtime.py) as `scorekit serve` does, before any model
    is built, and print what is in force: the record of a run must say which matmul and CPU it measured."""
    from scorekit import runtime

    applied = runtime.apply()
    print(f"runtime: {applied['cpu_model'] or 'CPU model unknown'} ({applied['cpu_vendor'] or 'vendor unknown'}); "
          f"float32 CPU Linear on {applied['cpu_gemm']} ({applied['cpu_gemm_reason']}); malloc mmap threshold "
          f"{applied['malloc_mmap_threshold']}, trim threshold {applied['malloc_trim_threshold']}; "
          f"{applied['torch_threads']} torch threads")
    return applied


def record(bench: str, payload: dict, runtime: dict | None = None) -> None:
    """Write bench/results/<bench>.json; `runtime` is what `apply_runtime()` returned in the measuring process."""
    RESULTS.mkdir(exist_ok=True)
    if runtime is not None:
        payload = {**payload, "runtime": runtime}
    (RESULTS / f"{bench}.json").write_text(json.dumps(payload, indent=2) + "\n")
