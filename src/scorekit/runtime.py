"""Process-wide runtime settings: glibc's mmap threshold, torch's intra-op thread count, the CPU matmul.

Each of these changes the whole process, including code that is not scorekit's, so none is applied by
importing scorekit or building an `LLM`: `scorekit serve` applies them, a library user opts in with
`runtime.apply()`, and benchmarks record what `apply` returned. docs/runtime.md is the user-facing page.

The one exception is `set_model_thread_torch_threads`, which the engine's own model threads call to size
their intra-op parallelism; it undoes what `torch.set_num_threads` would otherwise leak to other threads.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from dataclasses import asdict, dataclass
from typing import Callable, Literal, TypeVar

import torch

from scorekit.models import gemm

log = logging.getLogger(__name__)
T = TypeVar("T")

M_MMAP_THRESHOLD = -3  # from glibc's malloc.h
MAX_MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: mallopt refuses larger values
MALLOC_ENV = "MALLOC_MMAP_THRESHOLD_"  # glibc's own tunable, read at process start


@dataclass(frozen=True)
class RuntimeSettings:
    """What `apply` sets. None means: leave that part of the process as it is."""

    # glibc serves large blocks with mmap and returns them on free — but after the first such free it raises
    # its threshold to that block's size (up to 32 MiB), so later activations of that size come from the heap,
    # where fragmentation keeps them: a 1 × 2,000 × 512-token rerank on MiniLM peaked 1.21 GB above the loaded
    # model and kept 1.04 GB after it finished. A fixed 1 MiB threshold keeps every large tensor on mmap:
    # measured peak 0.58 GB, 0.28 GB kept (the tokenised request). Small tensors (short sentences) stay on the
    # heap, so small batches pay no extra page faults. It costs other code in the process: sentence-transformers'
    # CrossEncoder ran ~15% slower in the same process (bench/rerank.py, Intel).
    malloc_mmap_threshold: int | None = 1 << 20
    torch_threads: int | None = None  # torch.set_num_threads for the process; None: left as it is (torch's default)
    cpu_gemm: Literal["auto", "mkl", "onednn"] = "auto"  # models/gemm.py; "auto": SCOREKIT_CPU_GEMM, else the rule

    def __post_init__(self) -> None:
        if self.malloc_mmap_threshold is not None and not 0 < self.malloc_mmap_threshold <= MAX_MMAP_THRESHOLD:
            raise ValueError(f"malloc_mmap_threshold={self.malloc_mmap_threshold}: glibc takes 1 to "
                             f"{MAX_MMAP_THRESHOLD} bytes (or None to leave it alone)")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch_threads={self.torch_threads}: must be at least 1 (or None for torch's default)")
        if self.cpu_gemm not in ("auto", *gemm.BACKENDS):
            raise ValueError(f"cpu_gemm={self.cpu_gemm!r}: expected one of auto, mkl, onednn")


_lock = threading.Lock()
_mmap_threshold: int | None = None  # what this module fixed glibc's threshold to; glibc cannot go back
_last: dict | None = None


def apply(settings: RuntimeSettings | None = None) -> dict:
    """Apply `settings` (default: `RuntimeSettings()`) to this process and return what is in force, as plain
    values (for benchmark records). Idempotent and thread-safe; logs one INFO line when anything changed.
    Call it early, before starting threads: a thread that already ran torch code keeps its thread count."""
    global _last
    settings = settings or RuntimeSettings()
    with _lock:
        threshold, malloc_why = _set_mmap_threshold(settings.malloc_mmap_threshold)
        if settings.torch_threads is not None:
            torch.set_num_threads(settings.torch_threads)  # this thread, and every thread that starts later
        threads_why = "set" if settings.torch_threads is not None else "left as it was"
        backend, gemm_why = gemm.set_cpu_backend(settings.cpu_gemm)
        vendor, model = gemm.cpu_identity()
        result = {"settings": asdict(settings), "malloc_mmap_threshold": threshold, "malloc": malloc_why,
                  "torch_threads": torch.get_num_threads(), "torch_threads_source": threads_why,
                  "cpu_gemm": backend, "cpu_gemm_reason": gemm_why, "cpu_vendor": vendor, "cpu_model": model}
        if result != _last:
            log.info("scorekit runtime: malloc mmap threshold %s (%s); torch threads %d (%s); float32 CPU Linear "
                     "on %s (%s)", "glibc's" if threshold is None else f"{threshold} bytes", malloc_why,
                     result["torch_threads"], threads_why, backend, gemm_why)
        _last = result
        return dict(result)


def _set_mmap_threshold(threshold: int | None) -> tuple[int | None, str]:
    """(the threshold scorekit fixed, or None; why). Called under _lock."""
    global _mmap_threshold
    if threshold is None:
        if _mmap_threshold is not None:
            return _mmap_threshold, "fixed earlier in this process; glibc cannot return to its sliding threshold"
        return None, "left to glibc"
    if MALLOC_ENV in os.environ:
        return None, f"{MALLOC_ENV}={os.environ[MALLOC_ENV]} chosen by the operator, left to glibc"
    if _mmap_threshold == threshold:
        return threshold, "keeps freed large activations out of the heap"
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return None, "not glibc: no mallopt"
    if mallopt(M_MMAP_THRESHOLD, threshold) != 1:
        raise RuntimeError(f"glibc refused mallopt(M_MMAP_THRESHOLD, {threshold})")
    _mmap_threshold = threshold
    return threshold, "keeps freed large activations out of the heap"


def _glibc_mallopt():
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)  # the C library this process already runs on, without a search
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and others have no M_MMAP_THRESHOLD of glibc's kind
        return None
    mallopt = libc.mallopt
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return mallopt


def set_model_thread_torch_threads(n: int) -> None:
    """Give the calling thread (one of the engine's model threads) `n` intra-op threads, and nothing else.

    What `torch.set_num_threads(n)` changes (aten/src/ATen/ParallelOpenMP.cpp, an OpenMP build like the CPU
    wheels; ATen/Parallel.h for the lazy initialisation):
    - thread-local: `omp_set_num_threads(n)`, the OpenMP nthreads-var ICV of the calling thread — what
      `torch.get_num_threads()` reads and what torch's own parallel loops use there; and
      `mkl_set_num_threads_local(n)`, MKL's setting for calls from the calling thread;
    - process-wide: the `std::atomic num_threads` that every thread which has not yet run a parallel op adopts
      at its first one (`lazy_init_num_threads` → `init_num_threads` → `set_num_threads(num_threads)`):
      measured, a model thread's `set_num_threads(1)` gave 1 thread to every thread started afterwards, and to
      a main thread that had not computed yet; `mkl_set_dynamic(false)`; the size of caffe2's pthreadpool
      (QNNPACK/XNNPACK ops); and it clears ideep's cache of oneDNN convolution primitives.

    So this function first initialises the calling thread (`torch.get_num_threads()`, which runs the lazy
    initialisation, so the later process-wide value cannot overwrite ours), sets `n`, then restores the
    process-wide count from a short-lived helper thread to what a fresh thread saw before. Left changed:
    MKL dynamic is off (as after any `torch.set_num_threads`) and the convolution cache is empty. A thread that
    starts its first torch op in the microseconds between the two calls may still adopt `n`."""
    if n < 1:
        raise ValueError(f"torch threads must be at least 1, not {n}")
    with _lock:
        before = _in_fresh_thread(torch.get_num_threads)
        torch.get_num_threads()
        torch.set_num_threads(n)
        _in_fresh_thread(lambda: torch.set_num_threads(before))


def _in_fresh_thread(fn: Callable[[], T]) -> T:
    out: list = []
    thread = threading.Thread(target=lambda: out.append(fn()), name="scorekit-torch-threads")
    thread.start()
    thread.join()
    return out[0]
