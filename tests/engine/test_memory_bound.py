"""Bounded memory: a 512-token rerank request of hundreds of documents stays far under 1.5 GB of peak RSS
above the loaded model even when the batch settings ask for every row in one batch.

Runs bench/memory.py (a fresh child process per setting, peak RSS from the kernel) on a tiny random BERT
cross-encoder with 12 heads and 512 positions: its weights are small, but its attention scores are as big as
MiniLM's, so without the engine's byte cap the huge-budget setting would need ~5 GB for 400 documents.
The full 2,000-document MiniLM run is the slow-marked test below (and `python bench/memory.py`).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

BENCH = Path(__file__).resolve().parents[2] / "bench" / "memory.py"


def _run_memory_bench(*args: str) -> str:
    done = subprocess.run([sys.executable, str(BENCH), "--no-record", *args], capture_output=True, text=True,
                          timeout=1800, check=False)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def tiny_cross_encoder(tmp_path_factory, minilm_dir):
    folder = tmp_path_factory.mktemp("tiny-ce")
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=48, num_hidden_layers=2, num_attention_heads=12,
                        intermediate_size=96, max_position_embeddings=512, num_labels=1)
    BertForSequenceClassification(config).save_pretrained(str(folder))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, folder / name)
    return folder


def test_peak_rss_bounded_whatever_the_batch_settings(tiny_cross_encoder):
    out = _run_memory_bench("--model", str(tiny_cross_encoder), "--docs", "400", "--doc-tokens", "512")
    assert "huge budget" in out and "met" in out
    assert "NOT met" not in out


@pytest.mark.slow
def test_two_thousand_512_token_documents_on_minilm():
    out = _run_memory_bench()
    assert "NOT met" not in out
