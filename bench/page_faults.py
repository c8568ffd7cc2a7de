"""page_faults: what serving activations with mmap would cost the encoder forward in fresh pages.

    python bench/page_faults.py
scorekit's runtime (runtime.py) keeps freed activations in glibc's heap while the engine works (32 MiB mmap
threshold, 1 GiB trim threshold) and gives them back when it goes idle. Until 2026-12 it served every tensor
above 1 MiB with mmap instead, so that a large request's activations went back to the OS at once. The price of
that: oneDNN's Linear returns a new tensor each call, and each new mmap'd tensor is page-faulted and zeroed by
the kernel afresh. This times MiniLM's forward on 32 x 128 tokens (the roofline shape) both ways, alternating
rounds in one process (mallopt can move both thresholds either way once glibc's sliding threshold is off), and
counts minor page faults per forward.
"""

from __future__ import annotations

import ctypes
import os
import resource
import statistics
import time

import common  # noqa: F401
import torch

from common import apply_runtime, record

from scorekit.runtime import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, RuntimeSettings

DEFAULT = RuntimeSettings()
POLICIES = {"1 MiB mmap threshold (old)": {M_MMAP_THRESHOLD: 1 << 20, M_TRIM_THRESHOLD: 128 << 10},
            "heap kept while busy (default)": {M_MMAP_THRESHOLD: DEFAULT.malloc_mmap_threshold,
                                               M_TRIM_THRESHOLD: DEFAULT.malloc_trim_threshold}}


def main(rounds: int = 7) -> None:
    applied = apply_runtime()
    from scorekit import LLM

    model = LLM(score_cache_bytes=0).loaded.model.backbone
    ids = torch.randint(1000, 20000, (32, 128))
    mask = torch.ones_like(ids)
    libc = ctypes.CDLL("libc.so.6")
    times: dict[str, list[float]] = {name: [] for name in POLICIES}
    faults: dict[str, list[int]] = {name: [] for name in POLICIES}
    with torch.inference_mode():
        for r in range(rounds + 1):
            for name in (list(POLICIES) if r % 2 == 0 else list(reversed(POLICIES))):
                for param, value in POLICIES[name].items():
                    libc.mallopt(param, value)
                libc.malloc_trim(0)  # each policy starts from the same returned heap
                model.hidden_states(ids, mask)  # the first forward under a policy fills its heap
                before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
                start = time.perf_counter()
                model.hidden_states(ids, mask)
                if r:  # round 0 warms up
                    times[name].append(time.perf_counter() - start)
                    faults[name].append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    result = {name: {"median_s": statistics.median(times[name]), "faults_per_forward": statistics.median(faults[name])}
              for name in POLICIES}
    for name, r in result.items():
        print(f"{name:32s} {r['median_s']:.4f} s per forward, {r['faults_per_forward']:.0f} minor faults "
              f"({r['faults_per_forward'] * 4096 / 2**20:.0f} MiB of fresh pages)")
    old, kept = (result[name]["median_s"] for name in POLICIES)
    print(f"forward speed-up of the default over the 1 MiB threshold: {old / kept:.2f}x")
    record("page_faults", {"mmap_threshold": result["1 MiB mmap threshold (old)"],
                           "heap_kept": result["heap kept while busy (default)"], "speedup": old / kept,
                           "rounds": rounds, "load_average_1min": os.getloadavg()[0]}, runtime=applied)


if __name__ == "__main__":
    main()
