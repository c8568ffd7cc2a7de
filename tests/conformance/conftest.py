"""Models of the ported vLLM tests that no PyPI package carries (docs MODELS: no trained cross-encoder is packaged):
built here from a transformers config, with MiniLM's real tokenizer, and saved as an ordinary HF folder."""

from __future__ import annotations

import shutil

import pytest
import torch

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def save_bert(folder, model_cls, minilm_dir, seed: int, **config):
    from transformers import BertConfig

    torch.manual_seed(seed)
    bert = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      intermediate_size=128, max_position_embeddings=512,
                      initializer_range=0.2, **config)  # wider than 0.02: scores that differ visibly
    model_cls(bert).eval().save_pretrained(str(folder))
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_dir / name, folder / name)
    return folder


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory, minilm_dir):
    """A BertForSequenceClassification with one label (a cross-encoder, as vLLM's bge-reranker-base)."""
    from transformers import BertForSequenceClassification

    return save_bert(tmp_path_factory.mktemp("tiny-cross-encoder"), BertForSequenceClassification, minilm_dir,
                     seed=11, num_labels=1)
