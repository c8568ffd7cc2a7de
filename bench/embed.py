"""embed: 1,000 real sentences on all-MiniLM-L6-v2 — scorekit offline vs sentence-transformers encode(batch 32).

    python bench/embed.py [--rounds 5]
Target: ≥ 1.3x sentence-transformers. Also checks that both give the same vectors. The ONNX Runtime column
(bench/ort_peer.py: the model exported here, fp32, full graph optimisation) is checked to give the same vectors
within 1e-4 before it is timed; it is skipped, saying so, when onnxruntime is not installed (the `bench` extra).
"""

from __future__ import annotations

import argparse
import importlib.util

import common  # noqa: F401  (sets up the path and offline mode)
import torch

from common import apply_runtime, compare, print_table, record, sentences


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    applied = apply_runtime()

    from sentence_transformers import SentenceTransformer

    from scorekit import LLM
    from scorekit.models.packaged import default_model_dir

    texts = sentences()
    llm = LLM(score_cache_bytes=0)  # every round computes: the output cache would answer repeats
    st = SentenceTransformer(str(default_model_dir()), device="cpu")

    ours = torch.tensor([o.outputs.embedding for o in llm.embed(texts, use_tqdm=False)])
    ref = st.encode(texts, batch_size=32, convert_to_tensor=True, normalize_embeddings=True)
    max_diff = float((ours - ref).abs().max())

    ort_model, ort_diff = None, None
    if importlib.util.find_spec("onnxruntime") is not None:
        import ort_peer

        ort_model = ort_peer.embedder(default_model_dir(), torch.get_num_threads())
        ort_diff = float((torch.from_numpy(ort_model(texts)) - ref.cpu()).abs().max())
        if ort_diff > 1e-4:
            raise SystemExit(f"ONNX Runtime's vectors differ from sentence-transformers' by {ort_diff:.2e} > 1e-4")
    else:
        print("onnxruntime not installed (pip install -e '.[bench]'): no ONNX Runtime column")

    llm_int8 = LLM(quantization="int8", score_cache_bytes=0)
    ours_int8 = torch.tensor([o.outputs.embedding for o in llm_int8.embed(texts, use_tqdm=False)])
    int8_cosine_dev = float((1 - torch.nn.functional.cosine_similarity(ours_int8, ours, dim=-1)).max())
    pairs_fp32 = ours[:500] @ ours[500:].T  # 250,000 sentence-pair scores
    int8_score_dev = float((ours_int8[:500] @ ours_int8[500:].T - pairs_fp32).abs().max())

    candidates = {
        "sentence-transformers b32": lambda: st.encode(texts, batch_size=32),
        "scorekit": lambda: llm.embed(texts, use_tqdm=False),
        "scorekit int8": lambda: llm_int8.embed(texts, use_tqdm=False),
    }
    if ort_model is not None:
        candidates["onnxruntime fp32 b32"] = lambda: ort_model(texts)
    medians = compare(candidates, rounds=args.rounds)
    print_table(f"embed: {len(texts)} sentences, all-MiniLM-L6-v2, {torch.get_num_threads()} threads",
                medians, "sentence-transformers b32", len(texts), "sent")
    stats = llm.engine.stats
    ratio = medians["sentence-transformers b32"] / medians["scorekit"]
    print(f"max |Δ| vs sentence-transformers: {max_diff:.2e}   padding fraction: {stats.padding_fraction:.1%}")
    vs_ort = medians["onnxruntime fp32 b32"] / medians["scorekit"] if ort_model is not None else None
    if ort_model is not None:
        print(f"vs ONNX Runtime fp32: {vs_ort:.2f}x (its max |Δ| vs sentence-transformers {ort_diff:.2e})")
    print(f"int8: max cosine score deviation over 250,000 pairs {int8_score_dev:.4f}; "
          f"min cosine(int8 vector, fp32 vector) {1 - int8_cosine_dev:.5f}")
    print(f"target ≥ 1.3x: {'met' if ratio >= 1.3 else 'NOT met'} ({ratio:.2f}x)")
    record("embed", {"medians_s": medians, "ratio": ratio, "max_abs_diff": max_diff, "target": 1.3,
                     "vs_onnxruntime": vs_ort, "onnxruntime_max_abs_diff": ort_diff,
                     "int8_max_score_deviation": int8_score_dev, "int8_min_vector_cosine": 1 - int8_cosine_dev},
           runtime=applied)


if __name__ == "__main__":
    main()
