"""Models of the ported vLLM tests that no PyPI package carries (docs MODELS: no trained cross-encoder is packaged):
built here from a transformers config, with MiniLM's real tokenizer, and saved as an ordinary HF folder."""

from __future__ import annotations

import contextlib
import shutil

import pytest
import torch

from scorekit import LLM
from scorekit.config import ServerConfig
from scorekit.server.app import build_app

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


@contextlib.contextmanager
def served_as(live_server, llm, name: str):
    """An HTTP client to a live server of `llm` under the model name the ported vLLM test uses."""
    with live_server(build_app(llm, ServerConfig(served_model_names=(name,)))) as live, live.client() as client:
        yield client


@contextlib.contextmanager
def served_config(live_server, config, name: str):
    """`served_as` for a model the test loads itself (from a ModelConfig), stopped afterwards."""
    llm = LLM.from_configs(config)
    try:
        with served_as(live_server, llm, name) as client:
            yield client
    finally:
        llm.engine.scheduler.stop()


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


@pytest.fixture(scope="session")
def tiny_llama_classifier(tmp_path_factory, smollm2_path):
    """A LlamaForSequenceClassification with two labels named as vLLM's classify model (Qwen2.5-1.5B-apeach)
    names them, with SmolLM2's real tokenizer and chat template."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    from scorekit.models.loader import load_tokenizer
    from scorekit.models.resolve import resolve_model

    folder = tmp_path_factory.mktemp("tiny-llama-classifier")
    tokenizer = load_tokenizer(resolve_model(str(smollm2_path)))
    torch.manual_seed(5)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                         bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id, num_labels=2, initializer_range=0.2,
                         id2label={0: "Default", 1: "Spoiled"}, label2id={"Default": 0, "Spoiled": 1})
    LlamaForSequenceClassification(config).eval().save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder
