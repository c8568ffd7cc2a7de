"""rerank: 1 query × 200 documents of 30–400 tokens on a BERT cross-encoder — scorekit vs
sentence-transformers CrossEncoder.predict (batch 32).

The cross-encoder is all-MiniLM-L6-v2's encoder with a seeded random classification head (no trained
cross-encoder ships on PyPI); the speed question does not depend on the head's training.
    python bench/rerank.py [--rounds 5]
Target: ≥ 1.3x. The ONNX Runtime column (bench/ort_peer.py: the cross-encoder exported here, fp32, full graph
optimisation) is checked to give the same scores within 1e-4 before it is timed; skipped, saying so, without
onnxruntime (the `bench` extra).
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil

import common  # noqa: F401
import torch

from common import RESULTS, apply_runtime, compare, documents, print_table, record


def build_cross_encoder(folder):
    from transformers import BertForSequenceClassification

    from scorekit.models.packaged import default_model_dir

    if (folder / "config.json").exists():
        return folder
    src = default_model_dir()
    torch.manual_seed(0)
    model = BertForSequenceClassification.from_pretrained(str(src), num_labels=1)  # encoder weights kept
    model.save_pretrained(str(folder))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(src / name, folder / name)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    applied = apply_runtime()  # its 1 MiB mmap threshold slows ST in this process too (~15% on Intel)
    from sentence_transformers import CrossEncoder

    from scorekit import LLM

    folder = build_cross_encoder(RESULTS / "minilm-cross-encoder")
    llm = LLM(str(folder), score_cache_bytes=0)  # every round computes
    query = "How do I read a file line by line without loading it into memory?"
    docs = documents(llm.get_tokenizer(), n=200, low=30, high=400)
    ce = CrossEncoder(str(folder), device="cpu")
    pairs = [(query, d) for d in docs]

    ours = torch.tensor([o.outputs.score for o in llm.score(query, docs, use_tqdm=False)])
    ref = torch.tensor(ce.predict(pairs, batch_size=32))
    max_diff = float((ours - ref).abs().max())

    candidates = {
        "ST CrossEncoder b32": lambda: ce.predict(pairs, batch_size=32),
        "scorekit": lambda: llm.score(query, docs, use_tqdm=False),
    }
    ort_diff = None
    if importlib.util.find_spec("onnxruntime") is not None:
        import ort_peer

        ort_model = ort_peer.cross_encoder(folder, torch.get_num_threads())
        ort_diff = float((torch.from_numpy(ort_model(pairs)) - ref).abs().max())
        if ort_diff > 1e-4:
            raise SystemExit(f"ONNX Runtime's scores differ from sentence-transformers' by {ort_diff:.2e} > 1e-4")
        candidates["onnxruntime fp32 b32"] = lambda: ort_model(pairs)
    else:
        print("onnxruntime not installed (pip install -e '.[bench]'): no ONNX Runtime column")
    medians = compare(candidates, rounds=args.rounds)
    tokens = llm.engine.submit(llm.scorer().score(query, docs)).result().prompt_tokens
    print_table(f"rerank: 1 query x {len(docs)} docs (30-400 tokens, {tokens} tokens in all), MiniLM cross-encoder",
                medians, "ST CrossEncoder b32", len(docs), "doc")
    ratio = medians["ST CrossEncoder b32"] / medians["scorekit"]
    print(f"max |Δ| vs sentence-transformers: {max_diff:.2e}   padding fraction: {llm.engine.stats.padding_fraction:.1%}")
    vs_ort = medians["onnxruntime fp32 b32"] / medians["scorekit"] if ort_diff is not None else None
    if vs_ort is not None:
        print(f"vs ONNX Runtime fp32: {vs_ort:.2f}x (its max |Δ| vs sentence-transformers {ort_diff:.2e})")
    print(f"target ≥ 1.3x: {'met' if ratio >= 1.3 else 'NOT met'} ({ratio:.2f}x)")
    record("rerank", {"medians_s": medians, "ratio": ratio, "max_abs_diff": max_diff, "target": 1.3,
                      "vs_onnxruntime": vs_ort, "onnxruntime_max_abs_diff": ort_diff},
           runtime=applied)


if __name__ == "__main__":
    main()
