"""`quantization="int8"`: int8 Linear layers on oneDNN's int8 matmul (AMX, AVX-512 VNNI or AVX2, picked at run
time by oneDNN), for scorekit's own encoder and decoder alike. User-facing page: docs/quantization.md.

What is int8 (`Int8Linear`): the weight is int8 per output channel (symmetric, one scale per row, computed once
at load); the activation gets one scale per token: each row is divided by its own max |x| before oneDNN's
dynamic quantization (which takes one asymmetric uint8 scale for the whole input, now ~[-1, 1]) and the
output row is multiplied back. The matmul runs in int8 with int32 accumulation and comes back as fp32.
Embeddings, norms, attention, the residual stream, the heads and the FFN output projections stay fp32.

Why these choices (2-core "Intel(R) Xeon(R) Processor" VM, AVX-512 VNNI + AMX-INT8, torch 2.13 CPU, oneDNN
3.12; Qwen2.5-0.5B, 50 documents after a 129-token prefix, bench/decoder_rerank.py's workload):
- Kernel. Over the four Linear shapes of Qwen2.5-0.5B, one thread, best of 5, against MKL's fp32 sgemm (our
  default): oneDNN dynamic int8 7.7x at 16 rows, 10-11x at 64-512 rows, ~4.7x at 1,024-2,048 rows; fbgemm
  dynamic int8 (torch's default x86 engine) 5.7x, 3.8x, 3.0x, 2.3x. Weight-only int8
  (`aten._weight_int8pack_mm`) and int4 (`aten._weight_int4pack_mm_for_cpu`) are reference loops in this
  build, 30-100x slower than fp32: no weight-only path, no int4. With oneDNN limited to AVX-512 VNNI
  (`ONEDNN_MAX_CPU_ISA=AVX512_CORE_VNNI`, what an AMD EPYC without AMX gets) the same int8 matmul is 6.2x
  fp32 at 16 rows and 2.7-3.4x at 256-2,048. Below VNNI it is refused (`int8_dot_product_cpu`).
- Per-token activation scales. One scale for the whole batch (what oneDNN's op does alone) put the output
  error of the FFN output projection at 11-27% (relative Frobenius norm, measured on the model's own
  activations) and of the others at 1-3%; per-token scales 4-9% and 0.5-2%. End to end, all layers int8:
  Spearman against fp32 0.29 with one scale, 0.80 per token.
- FFN output projections stay fp32 (the `down` of decoders, the `ffn_out` of encoders). Their input, the
  gated activation, has a few large values per token over a near-zero bulk, so 8 bits per token lose 4-9%
  of it in every layer; SmoothQuant-style channel scaling (calibrated on the same prompts, alpha 0.5-0.7)
  did not help (4-5% at best). Keeping them fp32 took the decoder's Spearman from 0.80 to 0.92; they are ~30%
  of a Qwen2.5 layer's matmul work.
The packed weight chooses its kernel (oneDNN's packed weights run oneDNN whatever the engine is later), so the
process-wide `torch.backends.quantized.engine` is switched only for the packing, under a lock.
"""

from __future__ import annotations

import os
import re
import threading
import warnings

import torch
from torch import Tensor, nn

from scorekit.errors import ModelLoadError

# scorekit's own names (vLLM's `quantization` values name checkpoint formats such as awq or fp8; these name what
# scorekit does to fp32 weights at load time). None or "none": fp32, the exact default.
QUANTIZATIONS = ("int8",)

# Linear layers left in fp32 under int8: the FFN output projections (ours: encoder `ffn_out`, decoder `down`;
# HF-style names for models that reach quantization through other code). See the module docstring.
FP32_UNDER_INT8 = re.compile(r"(\.ffn_out|\.down|down_proj|layer\.\d+\.output\.dense)$")
# Only the transformer layers' Linears are quantized (ours: `layers.N.`, HF: `layers.N.` / `layer.N.`): heads,
# poolers and projections after the last layer stay fp32.
_IN_A_LAYER = re.compile(r"(^|\.)layers?\.\d+\.")

_engine_lock = threading.Lock()


def check_quantization(quantization: str | None) -> str | None:
    """The canonical value (None for fp32); an unknown one is a ModelLoadError listing the known ones."""
    if quantization in (None, "none"):
        return None
    if quantization not in QUANTIZATIONS:
        raise ModelLoadError(f"Unknown quantization {quantization!r}: use one of {', '.join(QUANTIZATIONS)} or none "
                             "(scorekit's own values: it quantizes fp32 weights at load time)")
    return quantization


def onednn_int8_available() -> bool:
    return "onednn" in torch.backends.quantized.supported_engines


# oneDNN ISAs (ONEDNN_MAX_CPU_ISA values) that have an int8 dot-product instruction.
_VNNI_ISAS = ("AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "AVX512_CORE_FP16",
              "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512", "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16",
              "AVX10_2_512", "AVX10_2_512_AMX_2", "DEFAULT", "ALL")


def int8_dot_product_cpu() -> tuple[bool, str]:
    """(usable, why): does this CPU have VNNI (AVX-512 VNNI, AVX-VNNI or AMX-INT8), as oneDNN will use it?

    Without VNNI oneDNN's int8 kernels multiply uint8 by int8 with `vpmaddubsw`, whose int16 pair sums
    saturate: capped at AVX2 (`ONEDNN_MAX_CPU_ISA=AVX2`) our Int8Linear's error on Gaussian data went from 0.013
    to 0.034, so int8 is refused there rather than served lossier than measured."""
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA", "").strip().upper()
    if cap and cap not in _VNNI_ISAS:
        return False, f"ONEDNN_MAX_CPU_ISA={cap} keeps oneDNN below VNNI"
    try:
        with open("/proc/cpuinfo") as info:
            flags = next((line.split(":", 1)[1].split() for line in info if line.startswith("flags")), [])
    except OSError:
        return False, "cannot read the CPU's flags (/proc/cpuinfo)"
    found = [f for f in ("amx_int8", "avx512_vnni", "avx_vnni") if f in flags]
    if not found:
        return False, "the CPU has no VNNI (avx512_vnni, avx_vnni or amx_int8 in /proc/cpuinfo)"
    return True, ", ".join(found)


def int8_weight(weight: Tensor) -> tuple[Tensor, Tensor]:
    """(int8 [out, in], fp32 scales [out]): symmetric per-output-channel quantization, round to nearest."""
    w = weight.detach().float()
    scale = w.abs().amax(dim=1).clamp_min(1e-12) / 127.0
    q = torch.round(w / scale[:, None]).clamp_(-127, 127).to(torch.int8)
    return q, scale


class Int8Linear(nn.Module):
    """`x W^T + b` with W int8 per output channel and x int8 per token (per row), on oneDNN's int8 matmul."""

    def __init__(self, weight: Tensor, bias: Tensor | None = None):
        super().__init__()
        q, scale = int8_weight(weight)
        self.out_features, self.in_features = weight.shape
        self.bias = bias.detach().float().contiguous() if bias is not None else None
        zero = torch.zeros(q.shape[0], dtype=torch.long)
        with warnings.catch_warnings():  # torch deprecates quantized tensors in favour of torchao (not installed)
            warnings.simplefilter("ignore")
            qweight = torch._make_per_channel_quantized_tensor(q, scale.double(), zero, 0)
            with _engine_lock:
                previous = torch.backends.quantized.engine
                torch.backends.quantized.engine = "onednn"
                try:
                    # No bias in the packed weight: it is added after the per-token rescale.
                    self._packed = torch.ops.quantized.linear_prepack(qweight, None)
                finally:
                    torch.backends.quantized.engine = previous

    def forward(self, x: Tensor) -> Tensor:
        shape = x.shape
        x = x.reshape(-1, shape[-1])
        if x.dtype != torch.float32:
            x = x.float()
        # One pass for the row maxima (no |x| temporary), one for the division; zero rows stay zero.
        row_max = torch.linalg.vector_norm(x, float("inf"), dim=-1, keepdim=True).clamp_min_(1e-30)
        # reduce_range=False: the full uint8 range (7-bit activations are an fbgemm workaround for old CPUs).
        out = torch.ops.quantized.linear_dynamic(x / row_max, self._packed, False)
        out.mul_(row_max)
        if self.bias is not None:
            out.add_(self.bias)
        return out.view(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, "
                "int8 weights per channel, activations per token, oneDNN")


def quantize_backbone(backbone: nn.Module, quantization: str | None, device: torch.device) -> nn.Module:
    """Replace every Linear of the transformer layers below `backbone` (torch's `nn.Linear` or our decoder's
    `decoder_layers.Linear`), except the FFN output projections (`FP32_UNDER_INT8`), by an `Int8Linear`, in
    place; returns `backbone`.
    None leaves the model untouched: the fp32 path stays exactly what it was."""
    quantization = check_quantization(quantization)
    if quantization is None:
        return backbone
    if device.type != "cpu":
        raise ModelLoadError(f"quantization='int8' runs on the CPU only (device is {device.type})")
    if not onednn_int8_available():
        raise ModelLoadError("quantization='int8' needs torch's oneDNN quantized engine, which this torch build "
                             f"lacks (it has: {', '.join(torch.backends.quantized.supported_engines)})")
    usable, why = int8_dot_product_cpu()
    if not usable:
        raise ModelLoadError(f"quantization='int8' needs a CPU with VNNI int8 dot products: {why} "
                             "(docs/quantization.md)")
    from scorekit.models.decoder_layers import Linear

    targets = [(name, module) for name, module in backbone.named_modules()
               if isinstance(module, (nn.Linear, Linear)) and _IN_A_LAYER.search(name)
               and not FP32_UNDER_INT8.search(name)]
    if not targets:
        raise ModelLoadError("quantization='int8': this model has no Linear layers to quantize")
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = backbone.get_submodule(parent_name) if parent_name else backbone
        try:
            replacement = Int8Linear(module.weight, module.bias)
        except RuntimeError as exc:  # oneDNN refused the packing (no int8 kernel for this CPU)
            raise ModelLoadError(f"quantization='int8': oneDNN cannot run int8 on this CPU ({exc})") from exc
        setattr(parent, child, replacement)
    return backbone
