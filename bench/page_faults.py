"""page_faults: what the 1 MiB mmap threshold (scorekit.runtime) costs the encoder forward in fresh pages.

    python bench/page_faults.py
The runtime serves every tensor above 1 MiB with mmap, so that a large request's activations go back to the OS
when it ends (RSS bounded; see runtime.py). The price: oneDNN's Linear returns a new tensor each call, and each
new mmap'd tensor is page-faulted and zeroed by the kernel afresh. This times MiniLM's forward on 32 x 128
tokens (the roofline shape) with that threshold, then with glibc keeping freed blocks in its heap (32 MiB
threshold, no trim) in the same process, and counts minor page faults per forward. glibc cannot go back to the
first setting once the second is set, so the two are measured one after the other, not alternated: read the
fault counts first, the times second. For investigation only: it changes no default.
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

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3


def measure(forward, rounds: int = 7) -> dict[str, float]:
    for _ in range(2):
        forward()
    times, faults = [], []
    for _ in range(rounds):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start = time.perf_counter()
        forward()
        times.append(time.perf_counter() - start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    return {"median_s": statistics.median(times), "faults_per_forward": statistics.median(faults)}


def main() -> None:
    applied = apply_runtime()
    from scorekit import LLM

    model = LLM(score_cache_bytes=0).loaded.model.backbone
    ids = torch.randint(1000, 20000, (32, 128))
    mask = torch.ones_like(ids)
    libc = ctypes.CDLL("libc.so.6")
    with torch.inference_mode():
        mmap = measure(lambda: model.hidden_states(ids, mask))
        libc.mallopt(M_TRIM_THRESHOLD, 1 << 30)
        libc.mallopt(M_MMAP_THRESHOLD, 32 << 20)
        heap = measure(lambda: model.hidden_states(ids, mask))
    for name, r in (("1 MiB mmap threshold (default)", mmap), ("heap kept (32 MiB, no trim)", heap)):
        print(f"{name:32s} {r['median_s']:.4f} s per forward, {r['faults_per_forward']:.0f} minor faults "
              f"({r['faults_per_forward'] * 4096 / 2**20:.0f} MiB of fresh pages)")
    print(f"forward speed-up without the fresh pages: {mmap['median_s'] / heap['median_s']:.2f}x")
    record("page_faults", {"mmap_threshold": mmap, "heap_kept": heap,
                           "speedup": mmap["median_s"] / heap["median_s"],
                           "load_average_1min": os.getloadavg()[0]}, runtime=applied)


if __name__ == "__main__":
    main()
