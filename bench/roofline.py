"""roofline: the encoder forward's FLOP rate as a fraction of a plain fp32 matmul measured in the same run.

    python bench/roofline.py
Target: ≥ 0.75 of the faster fp32 matmul rate (issue #15). FLOPs counted analytically (2 per multiply-add) for the linear layers and
attention of all-MiniLM-L6-v2 on a batch of 32 × 128 real tokens (no padding). The matmul is timed on both
fp32 backends that torch carries, MKL (`a @ b`) and oneDNN (what models/gemm.py picks on AMD CPUs, 2x faster
there), and the faster is the roof: the encoder is never measured against a slower matmul than it runs on.
The opt-in bf16 encoder (`dtype="bfloat16"`) is timed too, against a bf16 matmul, for the record.
"""

from __future__ import annotations

import os

import common  # noqa: F401
import torch

from common import apply_runtime, compare, record


def encoder_flops(config, batch: int, seq: int) -> float:
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = batch * seq
    linear = 2 * tokens * (4 * h * h + 2 * h * i)  # qkv + out projection, two FFN matmuls
    attention = 2 * 2 * batch * seq * seq * h  # QK^T and AV
    return layers * (linear + attention)


def matmul_rates(n: int = 1536, rounds: int = 9) -> dict[str, float]:
    """FLOP/s of a square [n, n] matmul on each matmul torch carries: fp32 on MKL (`a @ b`) and oneDNN, and bf16
    (oneDNN's bf16 kernels: AMX/AVX512-BF16 where the CPU has them), alternating rounds, medians. The fp32 roof
    of a run is the faster fp32 one."""
    from scorekit.models import gemm

    a, b = torch.randn(n, n), torch.randn(n, n)
    weight = b.t().contiguous()  # oneDNN's Linear computes x @ weight.T
    a16, b16 = a.bfloat16(), b.bfloat16()
    candidates = {"matmul MKL": lambda: a @ b, "matmul bf16": lambda: a16 @ b16}
    if gemm._onednn_available():
        candidates["matmul oneDNN"] = lambda: gemm._onednn(a, weight, None)
    with torch.inference_mode():
        medians = compare(candidates, rounds=rounds, warmup=2)
    return {name: 2 * n ** 3 / seconds for name, seconds in medians.items()}


TARGET = 0.75  # issue #15


def main() -> None:
    applied = apply_runtime()
    from scorekit import LLM
    from scorekit.models import gemm

    llm = LLM(score_cache_bytes=0)
    model = llm.loaded.model.backbone
    bf16 = LLM(dtype="bfloat16", score_cache_bytes=0).loaded.model.backbone  # the opt-in path, for the record
    config = llm.loaded.config
    batch, seq = 32, 128
    ids = torch.randint(1000, 20000, (batch, seq))
    mask = torch.ones_like(ids)
    n = 1536  # a square matmul of similar arithmetic intensity to the model's largest GEMMs
    a, b = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a.bfloat16(), b.bfloat16()

    weight = b.t().contiguous()  # oneDNN's Linear computes x @ weight.T
    candidates = {"matmul MKL": lambda: a @ b, "encoder forward": lambda: model.hidden_states(ids, mask),
                  "matmul bf16": lambda: a16 @ b16, "encoder forward bf16": lambda: bf16.hidden_states(ids, mask)}
    if gemm._onednn_available():
        candidates["matmul oneDNN"] = lambda: gemm._onednn(a, weight, None)
    with torch.inference_mode():
        medians = compare(candidates, rounds=9, warmup=2)
    rates = {name: 2 * n ** 3 / seconds for name, seconds in medians.items() if name.startswith("matmul")}
    fp32_rates = {k: v for k, v in rates.items() if k != "matmul bf16"}
    roof = max(fp32_rates, key=fp32_rates.get)
    matmul_rate = rates[roof]
    flops = encoder_flops(config, batch, seq)
    model_rate = flops / medians["encoder forward"]
    fraction = model_rate / matmul_rate
    bf16_rate = flops / medians["encoder forward bf16"]
    print(f"\nroofline ({torch.get_num_threads()} threads): "
          + ", ".join(f"{name} {rate / 1e9:.1f} GFLOP/s" for name, rate in rates.items())
          + f"; encoder forward {model_rate / 1e9:.1f} GFLOP/s (its Linear layers on {gemm.cpu_backend()})")
    print(f"fraction of the faster fp32 matmul ({roof}): {fraction:.3f}   target ≥ {TARGET}: "
          f"{'met' if fraction >= TARGET else 'NOT met'}")
    print(f"opt-in bf16 encoder forward {bf16_rate / 1e9:.1f} GFLOP/s = {bf16_rate / rates['matmul bf16']:.3f} of the "
          f"bf16 matmul, {bf16_rate / model_rate:.2f}x the fp32 forward")
    record("roofline", {"matmul_gflops": matmul_rate / 1e9, "matmul_backend": roof,
                        "matmul_gflops_by_backend": {k: v / 1e9 for k, v in rates.items()},
                        "encoder_linear_backend": gemm.cpu_backend(),
                        "model_gflops": model_rate / 1e9, "fraction": fraction, "target": TARGET,
                        "bf16_model_gflops": bf16_rate / 1e9,
                        "bf16_fraction_of_bf16_matmul": bf16_rate / rates["matmul bf16"],
                        "load_average_1min": os.getloadavg()[0]}, runtime=applied)


if __name__ == "__main__":
    main()
