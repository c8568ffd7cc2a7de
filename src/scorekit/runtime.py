"""Process-wide runtime settings: glibc's mmap and trim thresholds, torch's intra-op thread count, the CPU matmul.

Each of these changes the whole process, including code that is not scorekit's, so none is applied by
importing scorekit or building an `LLM`: `scorekit serve` applies them, a library user opts in with
`runtime.apply()`, and benchmarks record what `apply` returned. docs/runtime.md is the user-facing page.

The engine itself calls two functions here: `set_model_thread_torch_threads`, to size its model threads'
intra-op parallelism (it undoes what `torch.set_num_threads` would otherwise leak to other threads), and
`release_free_memory` when it goes idle, which does nothing unless `apply` told glibc to keep freed memory.
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

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3  # from glibc's malloc.h
MAX_MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit: mallopt refuses larger values
MALLOC_ENVS = {M_MMAP_THRESHOLD: "MALLOC_MMAP_THRESHOLD_", M_TRIM_THRESHOLD: "MALLOC_TRIM_THRESHOLD_"}  # glibc's own
RELEASE_AFTER_GROWTH = 64 << 20  # release_free_memory: RSS growth since the last release that makes one worth it


@dataclass(frozen=True)
class RuntimeSettings:
    """What `apply` sets. None means: leave that part of the process as it is."""

    # The heap keeps freed activations while the engine works, and the engine gives them back when it goes idle
    # (`release_free_memory`). Blocks up to 32 MiB come from glibc's heap and stay there when freed, so the next
    # forward reuses warm pages: served with mmap instead (the old 1 MiB threshold), every new tensor was
    # page-faulted and zeroed afresh by the kernel — oneDNN's Linear returns a new tensor per call, 474 MiB of
    # fresh pages per MiniLM forward of 32 x 128 tokens — and the same forward ran 1.24x slower (AMD EPYC
    # Zen 4, bench/page_faults.py). The price is RSS while busy: a 1 x 2,000 x 512-token MiniLM rerank peaked
    # 0.73-0.83 GB above the loaded model instead of 0.40-0.58 (bench/memory.py; the target is 1.5); once the
    # engine idled it held 0.06-0.07 GB.
    malloc_mmap_threshold: int | None = MAX_MMAP_THRESHOLD
    # Free memory glibc may keep at the top of a heap before it gives it back on its own (M_TRIM_THRESHOLD): high,
    # so that a forward's freed activations are not returned between two layers; the engine's idle release
    # returns them instead. Set, it also turns that release on.
    malloc_trim_threshold: int | None = 1 << 30
    torch_threads: int | None = None  # torch.set_num_threads for the process; None: left as it is (torch's default)
    cpu_gemm: Literal["auto", "mkl", "onednn"] = "auto"  # models/gemm.py; "auto": SCOREKIT_CPU_GEMM, else the rule

    def __post_init__(self) -> None:
        if self.malloc_mmap_threshold is not None and not 0 < self.malloc_mmap_threshold <= MAX_MMAP_THRESHOLD:
            raise ValueError(f"malloc_mmap_threshold={self.malloc_mmap_threshold}: glibc takes 1 to "
                             f"{MAX_MMAP_THRESHOLD} bytes (or None to leave it alone)")
        if self.malloc_trim_threshold is not None and not 0 <= self.malloc_trim_threshold < 1 << 31:
            raise ValueError(f"malloc_trim_threshold={self.malloc_trim_threshold}: glibc's mallopt takes 0 to "
                             f"{(1 << 31) - 1} bytes (or None to leave it alone)")
        if self.torch_threads is not None and self.torch_threads < 1:
            raise ValueError(f"torch_threads={self.torch_threads}: must be at least 1 (or None for torch's default)")
        if self.cpu_gemm not in ("auto", *gemm.BACKENDS):
            raise ValueError(f"cpu_gemm={self.cpu_gemm!r}: expected one of auto, mkl, onednn")


_lock = threading.Lock()
_malloc: dict[int, int] = {}  # what this module fixed glibc's parameters to; glibc cannot go back
_released_rss = 0  # RSS right after the last release_free_memory
_last: dict | None = None


def apply(settings: RuntimeSettings | None = None) -> dict:
    """Apply `settings` (default: `RuntimeSettings()`) to this process and return what is in force, as plain
    values (for benchmark records). Idempotent and thread-safe; logs one INFO line when anything changed.
    Call it early, before starting threads: a thread that already ran torch code keeps its own thread count."""
    global _last
    settings = settings or RuntimeSettings()
    with _lock:
        threshold, mmap_why = _set_malloc(M_MMAP_THRESHOLD, settings.malloc_mmap_threshold)
        trim, trim_why = _set_malloc(M_TRIM_THRESHOLD, settings.malloc_trim_threshold)
        if settings.torch_threads is not None:
            torch.set_num_threads(settings.torch_threads)  # this thread, and every thread that starts later
        threads_why = "set" if settings.torch_threads is not None else "left as it was"
        backend, gemm_why = gemm.set_cpu_backend(settings.cpu_gemm)
        vendor, model = gemm.cpu_identity()
        result = {"settings": asdict(settings), "malloc_mmap_threshold": threshold, "malloc": mmap_why,
                  "malloc_trim_threshold": trim, "malloc_trim": trim_why,
                  "torch_threads": torch.get_num_threads(), "torch_threads_source": threads_why,
                  "cpu_gemm": backend, "cpu_gemm_reason": gemm_why, "cpu_vendor": vendor, "cpu_model": model}
        if result != _last:
            log.info("scorekit runtime: malloc mmap threshold %s (%s), trim threshold %s (%s); torch threads %d "
                     "(%s); float32 CPU Linear on %s (%s)", _bytes(threshold), mmap_why, _bytes(trim), trim_why,
                     result["torch_threads"], threads_why, backend, gemm_why)
        _last = result
        return dict(result)


def release_free_memory() -> int | None:
    """Give the heap's free pages back to the OS (glibc's `malloc_trim(0)`, every arena) when `apply` set a trim
    threshold, so glibc keeps them otherwise. The engine calls this when its last busy model thread goes idle.

    Only when RSS has grown by RELEASE_AFTER_GROWTH since the last release: a server answering one short request
    at a time then keeps its few warm pages instead of faulting them in again for every request, and a heap whose
    free chunks are already released is not walked again for nothing. Returns the bytes RSS fell by, or None
    when it did not run."""
    global _released_rss
    if M_TRIM_THRESHOLD not in _malloc:
        return None
    with _lock:
        rss = _rss_bytes()
        if rss < _released_rss + RELEASE_AFTER_GROWTH:
            return None
        _glibc().malloc_trim(0)
        _released_rss = _rss_bytes()
        return rss - _released_rss


def _rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _bytes(value: int | None) -> str:
    return "glibc's" if value is None else f"{value} bytes"


def _set_malloc(param: int, value: int | None) -> tuple[int | None, str]:
    """(the value scorekit fixed `param` to, or None; why). Called under _lock."""
    if value is None:
        if param in _malloc:
            return _malloc[param], "fixed earlier in this process; glibc cannot return to its sliding thresholds"
        return None, "left to glibc"
    env = MALLOC_ENVS[param]
    if env in os.environ:
        return None, f"{env}={os.environ[env]} chosen by the operator, left to glibc"
    why = ("keeps freed activations in the heap for the next forward" if param == M_MMAP_THRESHOLD else
           "the engine gives free memory back when it goes idle")
    if _malloc.get(param) == value:
        return value, why
    mallopt = _glibc_mallopt()
    if mallopt is None:
        return None, "not glibc: no mallopt"
    if mallopt(param, value) != 1:
        raise RuntimeError(f"glibc refused mallopt({param}, {value})")
    _malloc[param] = value
    return value, why


def _glibc() -> ctypes.CDLL | None:
    """The glibc this process already runs on (without a search), or None on another C library."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(None)
    if not hasattr(libc, "gnu_get_libc_version"):  # musl and others have no M_MMAP_THRESHOLD of glibc's kind
        return None
    return libc


def _glibc_mallopt():
    libc = _glibc()
    if libc is None:
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
