"""Architectures we do not implement ourselves still load and score, on their `transformers` class."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, ElectraConfig

from scorekit import LLM
from scorekit.models.hf_fallback import HFEncoderBackbone

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "bananas are yellow"]


def test_electra_cross_encoder_runs_on_the_transformers_class(tmp_path, minilm_dir):
    config = ElectraConfig(vocab_size=30522, embedding_size=32, hidden_size=64, num_hidden_layers=2,
                           num_attention_heads=4, intermediate_size=128, max_position_embeddings=128, num_labels=1)
    torch.manual_seed(7)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    model.save_pretrained(str(tmp_path))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, tmp_path / name)

    llm = LLM(str(tmp_path))
    assert isinstance(llm.loaded.model.backbone, HFEncoderBackbone)
    assert llm.info.score_type == "cross-encoder"
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    with torch.no_grad():
        expected = [float(torch.sigmoid(model(**tok(QUERY, d, return_tensors="pt")).logits[0, 0])) for d in DOCS]
    assert [o.outputs.score for o in llm.score(QUERY, DOCS, use_tqdm=False)] == pytest.approx(expected, abs=1e-5)


def test_headless_decoder_embeds_with_last_token_pooling(tmp_path, minilm_dir):
    """A base-model decoder (`MistralModel`, like e5-mistral) is an embedding model: last-token pooling of
    transformers' own hidden states, loaded strictly (it has no LM head to generate from)."""
    from transformers import AutoModel, MistralConfig

    from scorekit.models.hf_fallback import HFDecoderBackbone

    config = MistralConfig(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                           num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, pad_token_id=0)
    torch.manual_seed(0)
    model = AutoModel.from_config(config).eval()
    model.save_pretrained(str(tmp_path))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, tmp_path / name)

    llm = LLM(str(tmp_path))
    assert llm.info.task == "embed" and llm.info.pooling == "LAST"
    assert isinstance(llm.loaded.model.backbone, HFDecoderBackbone)
    outputs = llm.embed(DOCS)
    for text, out in zip(DOCS, outputs):
        ids = torch.tensor([out.prompt_token_ids])
        with torch.no_grad():
            last = model(input_ids=ids).last_hidden_state[0, -1]
        expected = torch.nn.functional.normalize(last, dim=-1)
        assert torch.allclose(torch.tensor(out.outputs.embedding), expected, atol=1e-5)
