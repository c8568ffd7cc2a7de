"""roofline: the encoder forward's FLOP rate as a fraction of a plain fp32 matmul measured in the same run.

    python bench/roofline.py
Target: ≥ 0.6 of the matmul rate. FLOPs counted analytically (2 per multiply-add) for the linear layers and
attention of all-MiniLM-L6-v2 on a batch of 32 × 128 real tokens (no padding).
"""

from __future__ import annotations

import common  # noqa: F401
import torch

from common import compare, record


def encoder_flops(config, batch: int, seq: int) -> float:
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    tokens = batch * seq
    linear = 2 * tokens * (4 * h * h + 2 * h * i)  # qkv + out projection, two FFN matmuls
    attention = 2 * 2 * batch * seq * seq * h  # QK^T and AV
    return layers * (linear + attention)


def main() -> None:
    from scorekit import LLM

    llm = LLM()
    model = llm.loaded.model.backbone
    config = llm.loaded.config
    batch, seq = 32, 128
    ids = torch.randint(1000, 20000, (batch, seq))
    mask = torch.ones_like(ids)
    n = 1536  # a square fp32 matmul of similar arithmetic intensity to the model's largest GEMMs
    a, b = torch.randn(n, n), torch.randn(n, n)

    with torch.inference_mode():
        medians = compare({
            "matmul": lambda: a @ b,
            "encoder forward": lambda: model.hidden_states(ids, mask),
        }, rounds=9, warmup=2)
    matmul_rate = 2 * n ** 3 / medians["matmul"]
    model_rate = encoder_flops(config, batch, seq) / medians["encoder forward"]
    fraction = model_rate / matmul_rate
    print(f"\nroofline ({torch.get_num_threads()} threads): fp32 matmul {matmul_rate / 1e9:.1f} GFLOP/s, "
          f"encoder forward {model_rate / 1e9:.1f} GFLOP/s")
    print(f"fraction of matmul rate: {fraction:.2f}   target ≥ 0.6: {'met' if fraction >= 0.6 else 'NOT met'}")
    record("roofline", {"matmul_gflops": matmul_rate / 1e9, "model_gflops": model_rate / 1e9, "fraction": fraction,
                        "target": 0.6})


if __name__ == "__main__":
    main()
