"""The fp32 matrix multiply behind every Linear of our own models on a CPU: MKL's sgemm or oneDNN's, whichever
this CPU runs faster.

torch sends a float32 `addmm` to MKL. On AMD CPUs MKL takes a slower code path: on the 2-core AMD EPYC
(Zen 5, AVX-512) of our benchmarks its sgemm ran at ~100 GFLOP/s per core, while oneDNN (also inside every
torch CPU build, and used by torch's own compiler for Linear layers) ran the same shapes 2.1-2.8x faster,
from 30-token to 1,000-token inputs, for MiniLM and Qwen2.5-0.5B shapes alike. On Intel CPUs the two are
close. So the choice is made by measuring both once per process, on one representative shape.

Both are true fp32: against a float64 reference their errors are of the same order (oneDNN ~1.5x MKL's,
~1e-6 relative), far below the 1e-5 our scores are checked to. `SCOREKIT_CPU_GEMM=mkl|onednn` forces one
(tests use it to compare them); anything else, or unset, measures.
"""

from __future__ import annotations

import functools
import logging
import os
import time

import torch
from torch import Tensor

log = logging.getLogger(__name__)

_FORCE_ENV = "SCOREKIT_CPU_GEMM"
# Prefer oneDNN only when it is clearly faster: near a tie, MKL (torch's own default) stays.
_MIN_SPEEDUP = 1.15


def _onednn(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def _best_time(fn, rounds: int = 12) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


@functools.cache
def cpu_backend() -> str:
    """"onednn" or "mkl": the backend float32 Linear layers use on the CPU in this process (decided once)."""
    forced = os.environ.get(_FORCE_ENV, "").strip().lower()
    if forced in ("mkl", "onednn"):
        if forced == "onednn" and not _onednn_available():
            log.warning("%s=onednn, but this torch build has no oneDNN linear; using MKL", _FORCE_ENV)
            return "mkl"
        return forced
    if not _onednn_available():
        return "mkl"
    # A short-row shape of the FFN of a small encoder: what both serving and batch scoring run most.
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(64, 384, generator=generator)
    weight = torch.randn(1536, 384, generator=generator).t().contiguous().t()  # our column-major layout
    bias = torch.randn(1536, generator=generator)
    try:
        with torch.inference_mode():
            _onednn(x, weight, bias)
            torch.addmm(bias, x, weight.t())
            onednn = _best_time(lambda: _onednn(x, weight, bias))
            mkl = _best_time(lambda: torch.addmm(bias, x, weight.t()))
    except RuntimeError as exc:  # a build whose oneDNN op refuses these inputs
        log.warning("oneDNN linear failed (%s); using MKL", exc)
        return "mkl"
    choice = "onednn" if mkl > _MIN_SPEEDUP * onednn else "mkl"
    log.info("float32 Linear on CPU: %s (MKL %.0f us, oneDNN %.0f us on 64x384x1536)", choice, 1e6 * mkl, 1e6 * onednn)
    return choice


def column_major(weight: Tensor) -> Tensor:
    """The same [out, in] weight stored transposed, so that `weight.t()` — the [in, out] operand of `x @ W^T` —
    is contiguous. Values and results are unchanged; measured with one torch thread on MiniLM: 9-10% less CPU
    per text with MKL for forwards of 1-3 short rows (a server's single-text requests, where reading the
    weights is most of the cost), and 10-35% faster oneDNN matmuls for inputs of up to ~100 rows."""
    return weight.t().contiguous().t()


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, out: Tensor | None = None) -> Tensor:
    """`x @ weight.T + bias`, on the faster CPU backend for float32; other devices and dtypes go to torch's own
    kernels. Use the returned tensor: `out` is a buffer that MKL's path writes into, while oneDNN's op has no
    out= form and returns a new tensor (copying it into `out` would cost a pass over it for nothing)."""
    if x.device.type == "cpu" and x.dtype == torch.float32 and cpu_backend() == "onednn":
        return _onednn(x, weight, bias)
    if out is None:
        return torch.nn.functional.linear(x, weight, bias)
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)
