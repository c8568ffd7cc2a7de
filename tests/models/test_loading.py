"""Model resolution and loading: default, folder, GGUF file, hub id from the local HF cache, clear errors."""

from __future__ import annotations

import shutil

import pytest

from scorekit import LLM
from scorekit.errors import ModelLoadError
from scorekit.models.resolve import resolve_model


def test_default_model_needs_no_path(minilm_llm):
    assert minilm_llm.loaded.location.name == "sentence-transformers/all-MiniLM-L6-v2"
    assert minilm_llm.info.task == "embed" and minilm_llm.info.pooling == "MEAN"
    assert minilm_llm.info.max_model_len == 256  # sentence-transformers max_seq_length caps the config's 512


def test_hub_id_resolves_through_the_local_hf_cache(tmp_path, monkeypatch, minilm_dir):
    snapshot = tmp_path / "hub" / "models--acme--mini" / "snapshots" / "0123456789abcdef"
    shutil.copytree(minilm_dir, snapshot)
    (tmp_path / "hub" / "models--acme--mini" / "refs").mkdir()
    (tmp_path / "hub" / "models--acme--mini" / "refs" / "main").write_text("0123456789abcdef")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    assert resolve_model("acme/mini").folder == snapshot
    llm = LLM("acme/mini")
    assert llm.score("a", "a", use_tqdm=False)[0].outputs.score == pytest.approx(1.0, abs=1e-5)


def test_missing_model_is_one_clear_error():
    with pytest.raises(ModelLoadError, match="Could not find model 'nobody/no-such-model' offline"):
        LLM("nobody/no-such-model")


def test_folder_without_config_is_refused(tmp_path):
    with pytest.raises(ModelLoadError, match="has no config.json"):
        resolve_model(str(tmp_path))


def test_gguf_file_resolves(smollm2_path):
    location = resolve_model(str(smollm2_path))
    assert location.gguf_file == smollm2_path.name


def test_max_model_len_can_be_lowered_not_raised(minilm_dir):
    assert LLM(str(minilm_dir), max_model_len=64).info.max_model_len == 64
    with pytest.raises(ModelLoadError, match="larger than the model's limit of 256"):
        LLM(str(minilm_dir), max_model_len=1000)


def test_generate_runner_refuses_an_encoder(minilm_dir):
    with pytest.raises(ModelLoadError, match="not a causal language model"):
        LLM(str(minilm_dir), runner="generate")
