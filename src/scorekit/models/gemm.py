"""The fp32 matrix multiply behind every Linear of our own models on a CPU: MKL's sgemm or oneDNN's, chosen by a
fixed rule on the CPU's vendor, so that every run on one machine computes with the same kernels.

torch sends a float32 `addmm` to MKL. On AMD CPUs MKL takes a slower code path: on the 2-core AMD EPYC
of our benchmarks (AVX-512; Zen 4 and, by an earlier note, Zen 5) its sgemm ran at ~100 GFLOP/s per core, while oneDNN (also inside every
torch CPU build, and used by torch's own compiler for Linear layers) ran the same shapes 2.1-2.8x faster,
from 30-token to 1,000-token inputs, for MiniLM and Qwen2.5-0.5B shapes alike. On Intel CPUs MKL is the
faster: on a 2-core "Intel(R) Xeon(R) Processor" VM (AVX-512, torch 2.13, MKL 2024.2, oneDNN 3.12), over
MiniLM's four Linear shapes (384->1152, 384->384, 384->1536, 1536->384) at 16, 64, 256, 1,024 and 4,096 rows,
the summed best-of-15 times gave MKL 1.08-1.10x oneDNN's speed with one torch thread (five runs; what each of
the encoder's two model threads runs on two cores), oneDNN 1.3-2x slower at 16 rows and never more than 4%
faster at any shape. With two torch threads MKL was 1.10x on a quiet machine; while other work held the second
core those timings scattered (0.75-1.05x) either way. Hence the rule: AMD -> oneDNN, everything else -> MKL
(torch's own default; on builds without MKL, torch's own BLAS), and MKL wherever torch has no oneDNN linear.

The choice used to be made by timing both on the first Linear call, which made two runs of one machine differ
near a tie; `measure_cpu_backends()` keeps that timing for benchmarks. Overrides, strongest first:
`set_cpu_backend("mkl"|"onednn")` (what `scorekit.runtime.apply` does with `RuntimeSettings.cpu_gemm`), then the
`SCOREKIT_CPU_GEMM=mkl|onednn` environment variable (`auto` or unset: the rule; anything else is an error). The
choice and its reason are logged once, at INFO.

Both are true fp32: against a float64 reference their errors are of the same order (oneDNN ~1.5x MKL's,
~1e-6 relative), far below the 1e-5 our scores are checked to.
"""

from __future__ import annotations

import logging
import os
import platform
import threading
import time

import torch
from torch import Tensor

log = logging.getLogger(__name__)

BACKENDS = ("mkl", "onednn")
ENV = "SCOREKIT_CPU_GEMM"
# Vendor strings as /proc/cpuinfo's vendor_id gives them; only vendors we measured have a rule of their own.
_RULE = {"AuthenticAMD": "onednn", "GenuineIntel": "mkl"}

_lock = threading.Lock()
_choice: tuple[str, str] | None = None  # (backend, why), decided once unless set_cpu_backend changes it


def _onednn(x: Tensor, weight: Tensor, bias: Tensor | None) -> Tensor:
    return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")


def _onednn_available() -> bool:
    return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")


def cpu_identity() -> tuple[str, str]:
    """(vendor, model name) of this machine's CPU: /proc/cpuinfo's vendor_id and model name on Linux, else what
    `platform` knows ("" where nothing says)."""
    fields: dict[str, str] = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, sep, value = line.partition(":")
                if not sep:
                    if fields:
                        break  # the first processor's block is enough: all cores of a machine are alike
                    continue
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return fields.get("vendor_id", ""), fields.get("model name", "") or platform.processor()


def decide_cpu_backend() -> tuple[str, str]:
    """(backend, why) from the SCOREKIT_CPU_GEMM override, else the vendor rule. Changes nothing."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced not in ("", "auto", *BACKENDS):
        raise ValueError(f"{ENV}={os.environ[ENV]!r}: expected one of auto, mkl, onednn")
    if forced in BACKENDS:
        return _checked(forced, f"{ENV}={forced}")
    vendor, model = cpu_identity()
    if not _onednn_available():
        return "mkl", "this torch build has no oneDNN linear"
    return _RULE.get(vendor, "mkl"), f"rule for {vendor or 'an unknown vendor'} CPU ({model or 'model unknown'})"


def _checked(name: str, why: str) -> tuple[str, str]:
    if name == "onednn" and not _onednn_available():
        raise ValueError(f"{why}: this torch build has no oneDNN linear (torch.ops.mkldnn._linear_pointwise)")
    return name, why


def cpu_backend() -> str:
    """"onednn" or "mkl": the backend float32 Linear layers use on the CPU in this process (decided once)."""
    choice = _choice  # read without the lock: this runs before every Linear
    return choice[0] if choice is not None else set_cpu_backend(None)[0]


def set_cpu_backend(name: str | None) -> tuple[str, str]:
    """Fix the backend: "mkl" or "onednn" forces it; "auto" decides anew (environment, then rule); None decides
    only if nothing did yet. Returns (backend, why) and logs the choice when it changes."""
    global _choice
    if name not in (None, "auto", *BACKENDS):
        raise ValueError(f"cpu_gemm={name!r}: expected one of auto, mkl, onednn")
    with _lock:
        if name is None and _choice is not None:
            return _choice
        choice = _checked(name, "set explicitly") if name in BACKENDS else decide_cpu_backend()
        if choice[0] != (_choice or ("",))[0]:
            log.info("float32 Linear on CPU: %s (%s)", *choice)
        _choice = choice
        return choice


def _best_time(fn, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def measure_cpu_backends(rows: int = 64, inp: int = 384, out: int = 1536, rounds: int = 12) -> dict[str, float]:
    """Best-of-`rounds` seconds of one [rows, inp] x [inp, out] fp32 Linear on each available backend, in our
    column-major weight layout (default: a short-row MiniLM FFN shape). For benchmarks: it decides nothing."""
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(rows, inp, generator=generator)
    weight = column_major(torch.randn(out, inp, generator=generator))
    bias = torch.randn(out, generator=generator)
    candidates = {"mkl": lambda: torch.addmm(bias, x, weight.t())}
    if _onednn_available():
        candidates["onednn"] = lambda: _onednn(x, weight, bias)
    with torch.inference_mode():
        for fn in candidates.values():
            fn()  # oneDNN builds its kernel for the shape on the first call
        return {name: _best_time(fn, rounds) for name, fn in candidates.items()}


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


def check_cpu_bfloat16() -> None:
    """bfloat16 is an opt-in (`dtype="bfloat16"`, never the CPU default): on a CPU with AMX-BF16 or AVX512-BF16,
    torch sends bf16 matmuls to oneDNN's bf16 kernels, and MiniLM embedded 2,000 sentences 2.4x faster than in
    fp32 on the Intel Xeon of our benchmarks (bench/embed.py prints the deviation: 1 - cosine to the fp32 vector
    ~1e-4). Without those instructions bf16 is emulated and slower than fp32: say so once, at load."""
    supported = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
    if supported is None or not supported():
        log.warning("dtype bfloat16 on a CPU without native bf16 matmuls (AMX-BF16 / AVX512-BF16): expect it to "
                    "be slower than float32, which is also exact")
