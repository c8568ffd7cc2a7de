"""roofline: the encoder forward's FLOP rate as a fraction of a plain fp32 matmul measured in the same run.

    python bench/roofline.py
Target: ≥ 0.6 of the matmul rate. FLOPs counted analytically (2 per multiply-add) for the linear layers and
attention of all-MiniLM-L6-v2 on a batch of 32 × 128 real tokens (no padding). The matmul is timed on both
fp32 backends that torch carries, MKL (`a @ b`) and oneDNN (what models/gemm.py picks on AMD CPUs, 2x faster
there), and the faster is the roof: the encoder is never measured against a slower matmul than it runs on.
"""

from __future__ import annotations

import common  # noqa: F401
import torch

from common import apply_runtime, compare, record


def encoder_flops(config, batch: int, seq: int) -> float:
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = batch * seq
    linear = 2 * tokens * (4 * h * h + 2 * h * i)  # qkv + out projection, two FFN matmuls
    attention = 2 * 2 * batch * seq * seq * h  # QK^T and AV
    return layers * (linear + attention)


def main() -> None:
    applied = apply_runtime()
    from scorekit import LLM
    from scorekit.models import gemm

    llm = LLM(score_cache_bytes=0)
    model = llm.loaded.model.backbone
    config = llm.loaded.config
    batch, seq = 32, 128
    ids = torch.randint(1000, 20000, (batch, seq))
    mask = torch.ones_like(ids)
    n = 1536  # a square fp32 matmul of similar arithmetic intensity to the model's largest GEMMs
    a, b = torch.randn(n, n), torch.randn(n, n)

    weight = b.t().contiguous()  # oneDNN's Linear computes x @ weight.T
    candidates = {"matmul MKL": lambda: a @ b, "encoder forward": lambda: model.hidden_states(ids, mask)}
    if gemm._onednn_available():
        candidates["matmul oneDNN"] = lambda: gemm._onednn(a, weight, None)
    with torch.inference_mode():
        medians = compare(candidates, rounds=9, warmup=2)
    rates = {name: 2 * n ** 3 / seconds for name, seconds in medians.items() if name.startswith("matmul")}
    roof = max(rates, key=rates.get)
    matmul_rate = rates[roof]
    model_rate = encoder_flops(config, batch, seq) / medians["encoder forward"]
    fraction = model_rate / matmul_rate
    print(f"\nroofline ({torch.get_num_threads()} threads): "
          + ", ".join(f"fp32 {name} {rate / 1e9:.1f} GFLOP/s" for name, rate in rates.items())
          + f"; encoder forward {model_rate / 1e9:.1f} GFLOP/s (its Linear layers on {gemm.cpu_backend()})")
    print(f"fraction of the faster matmul ({roof}): {fraction:.2f}   target ≥ 0.6: "
          f"{'met' if fraction >= 0.6 else 'NOT met'}")
    record("roofline", {"matmul_gflops": matmul_rate / 1e9, "matmul_backend": roof,
                        "matmul_gflops_by_backend": {k: v / 1e9 for k, v in rates.items()},
                        "encoder_linear_backend": gemm.cpu_backend(),
                        "model_gflops": model_rate / 1e9, "fraction": fraction, "target": 0.6}, runtime=applied)


if __name__ == "__main__":
    main()
