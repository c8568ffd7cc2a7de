"""Draw bench/results/*.json as one bar chart of speed-ups against each benchmark's baseline.

    python bench/plot.py   →  bench/results/speedups.png (embedded in the README)
"""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from common import RESULTS  # noqa: E402

# (result file, label, ratio key, target)
BARS = [
    ("embed", "embed vs sentence-transformers", "ratio", 1.3),
    ("rerank", "rerank vs ST CrossEncoder", "ratio", 1.3),
    ("decoder_rerank", "decoder rerank vs transformers", "ratio_vs_transformers", 3.0),
    ("decoder_rerank", "decoder rerank vs no prefix sharing", "ratio_vs_no_sharing", 1.5),
    ("serve_load", "server vs in-process (c=8)", "scorekit_vs_in_process_at_c8", 0.8),
    ("serve_load", "server vs infinity-emb (c=8)", "scorekit_vs_infinity_at_c8", 3.0),
    ("roofline", "encoder FLOP rate / matmul", "fraction", 0.6),
]


def main() -> None:
    labels, values, targets = [], [], []
    for name, label, key, target in BARS:
        path = RESULTS / f"{name}.json"
        if not path.exists():
            continue
        value = json.loads(path.read_text()).get(key)
        if value is None:
            continue
        labels.append(label)
        values.append(value)
        targets.append(target)
    fig, ax = plt.subplots(figsize=(8, 0.6 * len(labels) + 1.2))
    colors = ["tab:green" if v >= t else "tab:orange" for v, t in zip(values, targets)]
    bars = ax.barh(labels, values, color=colors)
    ax.scatter(targets, range(len(labels)), marker="|", s=400, color="black", label="target", zorder=3)
    for bar, value in zip(bars, values):
        ax.text(bar.get_width(), bar.get_y() + bar.get_height() / 2, f" {value:.2f}x", va="center")
    ax.invert_yaxis()
    ax.set_xlabel("ratio (higher is better); black mark = target")
    ax.set_title("scorekit on a 2-core CPU (medians; baselines in the same run)")
    ax.legend(loc="lower right")
    fig.tight_layout()
    out = RESULTS / "speedups.png"
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
