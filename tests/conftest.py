"""Shared fixtures: real packaged models, loaded once per test session (loading is the slow part)."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # no test may reach a model hub
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def minilm_dir():
    from scorekit.models.packaged import default_model_dir

    return default_model_dir()


@pytest.fixture(scope="session")
def minilm_llm():
    from scorekit import LLM

    return LLM()


@pytest.fixture(scope="session")
def smollm2_path():
    from scorekit.models.packaged import smollm2_gguf

    return smollm2_gguf()


@pytest.fixture(scope="session")
def smollm2_llm(smollm2_path):
    from scorekit import LLM

    return LLM(str(smollm2_path), runner="generate")


@pytest.fixture(scope="session")
def smollm2_hf(smollm2_path):
    """transformers' own SmolLM2 on the same GGUF weights: the independent reference."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(smollm2_path.parent), gguf_file=smollm2_path.name, dtype=torch.float32)
    return model.eval()
