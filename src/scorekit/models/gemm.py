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


# oneDNN builds (and JIT-compiles) a kernel for every input shape it meets and keeps the last 1,024
# (ONEDNN_PRIMITIVE_CACHE_CAPACITY). A server meets a new row count with nearly every batch: with exact shapes
# a MiniLM server's RSS grew from 0.6 to 1.36 GB over five bench/serve_load.py rounds (it stays at ~0.65 GB
# with padded shapes). So a model pads the rows of its activations once, before its first layer, to one of a
# few fixed sizes (`rows_for`): multiples of 8 below 256 rows, then 16 sizes per power of two — ~130 shapes up
# to 20,000 rows, at most 7 padding rows below 256 and 1/16 above (2.3% on average over 16-20,000 rows). Padding
# inside `linear` instead would copy the input of every matmul: +10-24% per text on MiniLM (measured).
# Below 16 rows (a decoder's last positions) MKL runs: the kernel build would cost more than it saves.
_MIN_ONEDNN_ROWS = 16


def padded_rows(rows: int) -> int:
    """The fixed size that `rows` rows are padded up to (see above)."""
    step = max(8, (1 << (rows.bit_length() - 1)) // 16)
    return -(-rows // step) * step


def _rows(x: Tensor) -> int:
    """Rows of a [..., in] input as the matmul sees it (all leading dimensions flattened)."""
    return x.numel() // x.shape[-1] if x.shape[-1] else 0


def _uses_onednn(x: Tensor, rows: int) -> bool:
    return rows >= _MIN_ONEDNN_ROWS and x.device.type == "cpu" and x.dtype == torch.float32 and cpu_backend() == "onednn"


def rows_for(rows: int, like: Tensor) -> int:
    """How many rows a model should give its Linear layers for `rows` real ones (activations like `like`):
    `padded_rows(rows)` where oneDNN runs them, else `rows` itself."""
    return padded_rows(rows) if _uses_onednn(like, rows) else rows


def column_major(weight: Tensor) -> Tensor:
    """The same [out, in] weight stored transposed, so that `weight.t()` — the [in, out] operand of `x @ W^T` —
    is contiguous. Values and results are unchanged; measured with one torch thread on MiniLM: 9-10% less CPU
    per text with MKL for forwards of 1-3 short rows (a server's single-text requests, where reading the
    weights is most of the cost), and 10-35% faster oneDNN matmuls for inputs of up to ~100 rows."""
    return weight.t().contiguous().t()


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None, out: Tensor | None = None) -> Tensor:
    """`x @ weight.T + bias`, on the faster CPU backend for float32 (give it `rows_for` rows); other devices and
    dtypes go to torch's own kernels. Use the returned tensor: `out` is a buffer that MKL's path writes into,
    while oneDNN's op has no out= form and returns a new tensor (copying it into `out` would cost a pass over
    it for nothing)."""
    if _uses_onednn(x, _rows(x)):
        return _onednn(x, weight, bias)
    if out is None:
        return torch.nn.functional.linear(x, weight, bias)
    if bias is None:
        return torch.mm(x, weight.t(), out=out)
    return torch.addmm(bias, x, weight.t(), out=out)


def linear_gelu(x: Tensor, weight: Tensor, bias: Tensor | None, out: Tensor | None = None) -> Tensor:
    """`gelu(linear(x))` with the exact (erf) GELU of HF's "gelu": fused into oneDNN's matmul as a post-op (one
    pass less over a BERT layer's largest tensor), else applied in place after MKL's."""
    if _uses_onednn(x, _rows(x)):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "gelu", [], "none")
    return torch.ops.aten.gelu_(linear(x, weight, bias, out=out))


def linear_add(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor, out: Tensor | None = None) -> Tensor:
    """`linear(x) + residual`, the sum rounded in the same order as `(x @ W^T + b) + residual`: fused into
    oneDNN's matmul as a post-op, else added in place after MKL's."""
    if _uses_onednn(x, _rows(x)):
        return torch.ops.mkldnn._linear_pointwise.binary(x, residual, weight, bias, "add")
    return linear(x, weight, bias, out=out).add_(residual)
