"""vLLM command lines parse as written: every flag in dash and underscore spellings, building the same configs."""

from __future__ import annotations

import json

import pytest

from scorekit.cli import _configs, _server_config, build_parser

OVERRIDES = {"architectures": ["Qwen3ForSequenceClassification"], "classifier_from_token": ["no", "yes"],
             "is_original_qwen3_reranker": True}


@pytest.mark.parametrize("style", ["-", "_"])
def test_a_vllm_reranker_recipe_parses_in_both_spellings(style):
    def flag(name):
        return "--" + name.replace("_", style)

    args = build_parser().parse_args([
        "serve", "Qwen/Qwen3-Reranker-0.6B", flag("hf_overrides"), json.dumps(OVERRIDES), flag("chat_template"),
        "qwen3_reranker", flag("max_model_len"), "4096", flag("served_model_name"), "reranker", flag("convert"),
        "classify", flag("pooler_config"), '{"pooling_type": "LAST"}', flag("trust_remote_code"),
        flag("enable_offline_docs"), flag("max_num_seqs"), "64", flag("enable_prefix_caching"),
        flag("max_request_bytes"), "1000", flag("api_key"), "k"])
    model, engine = _configs(args)
    server = _server_config(args, args.api_key)
    assert model.model == "Qwen/Qwen3-Reranker-0.6B" and model.hf_overrides == OVERRIDES
    assert model.chat_template == "qwen3_reranker" and model.max_model_len == 4096 and model.convert == "classify"
    assert model.pooler_config == {"pooling_type": "LAST"} and model.trust_remote_code
    assert engine.max_num_seqs == 64 and engine.enable_prefix_caching
    assert server.served_model_names == ("reranker",) and server.max_request_bytes == 1000 and server.api_keys == ("k",)


def test_defaults_come_from_the_configs():
    from scorekit.config import EngineConfig, ModelConfig, ServerConfig

    args = build_parser().parse_args(["serve"])
    model, engine = _configs(args)
    assert model == ModelConfig() and engine == EngineConfig()
    assert _server_config(args, []) == ServerConfig()
