"""Loading never leaves a randomly initialised weight nor drops a tensor silently (docs/models.md): on our own
encoder and decoder code and on the transformers fallback alike, a checkpoint with a missing or an
unexpected weight is a ModelLoadError that names it. Also the typed backbone contract (models/backbone.py).
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from scorekit import LLM
from scorekit.errors import ModelLoadError
from scorekit.models.backbone import DecoderBackbone, EncoderBackbone
from scorekit.models.decoder import DecoderModel
from scorekit.models.encoder import EncoderModel
from scorekit.models.hf_fallback import HFDecoderBackbone, HFEncoderBackbone

_SMALL = dict(vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
              max_position_embeddings=64)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")


def _save(model, folder, minilm_dir):
    model.save_pretrained(str(folder))
    for name in _TOKENIZER_FILES:
        shutil.copy(minilm_dir / name, folder / name)
    return folder


def _edit_weights(folder, drop=None, add=None):
    path = folder / "model.safetensors"
    state = load_file(str(path))
    if drop is not None:
        del state[drop]
    state.update(add or {})
    save_file(state, str(path), metadata={"format": "pt"})


def _gemma(minilm_dir, folder, architectures=None):
    config = transformers.GemmaConfig(**_SMALL, num_key_value_heads=1, head_dim=8, pad_token_id=0)
    torch.manual_seed(0)
    _save(transformers.AutoModelForCausalLM.from_config(config), folder, minilm_dir)
    if architectures:  # save_pretrained writes the saved class's name: name another one afterwards
        saved = json.loads((folder / "config.json").read_text())
        (folder / "config.json").write_text(json.dumps({**saved, "architectures": architectures}))
    return folder


@pytest.mark.parametrize("edit", ["drop", "add"])
def test_fallback_refuses_a_missing_or_unexpected_weight(tmp_path, minilm_dir, edit):
    folder = _gemma(minilm_dir, tmp_path)
    assert isinstance(LLM(str(folder), runner="generate").loaded.model.backbone, HFDecoderBackbone)
    key = "model.layers.1.mlp.up_proj.weight" if edit == "drop" else "model.layers.1.mlp.extra.weight"
    _edit_weights(folder, drop=key if edit == "drop" else None, add={key: torch.zeros(3)} if edit == "add" else None)
    word = "missing" if edit == "drop" else "does not use"
    with pytest.raises(ModelLoadError, match=rf"{word}.*{key.replace('.', '[.]')}"):
        LLM(str(folder), runner="generate")


def test_sequence_classifier_without_its_score_head_is_refused(tmp_path, minilm_dir):
    """The issue's case without the conversion keys: the config names GemmaForSequenceClassification but
    the weights are a causal LM's, so `score.weight` would be random (two loads gave 0.508 and 0.480)."""
    folder = _gemma(minilm_dir, tmp_path, architectures=["GemmaForSequenceClassification"])
    with pytest.raises(ModelLoadError, match=r"missing 1 weight.*'score\.weight'"):
        LLM(str(folder))


def test_logits_the_fallback_cannot_reproduce_are_refused(tmp_path, minilm_dir):
    """Cohere multiplies its logits by `logit_scale`; label-token scores read as hidden @ W_lm would be wrong,
    so the load-time probe (HFDecoderBackbone.check_logits) refuses the model rather than guess."""
    config = transformers.CohereConfig(**_SMALL, num_key_value_heads=2, logit_scale=0.25, pad_token_id=0)
    torch.manual_seed(0)
    folder = _save(transformers.AutoModelForCausalLM.from_config(config), tmp_path, minilm_dir)
    with pytest.raises(ModelLoadError, match="logits are not hidden_states @ lm_head"):
        LLM(str(folder), runner="generate")


def test_own_encoder_refuses_an_unexpected_weight_through_the_loader(tmp_path, minilm_dir):
    torch.manual_seed(0)
    folder = _save(transformers.BertModel(transformers.BertConfig(**_SMALL)), tmp_path, minilm_dir)
    llm = LLM(str(folder))
    assert isinstance(llm.loaded.model.backbone, EncoderModel)
    _edit_weights(folder, add={"encoder.layer.1.output.adapter.weight": torch.zeros(3)})
    with pytest.raises(ModelLoadError, match=r"does not use: 'encoder\.layer\.1\.output\.adapter\.weight'"):
        LLM(str(folder))


def test_own_decoder_refuses_a_missing_weight_through_the_loader(tmp_path, minilm_dir):
    config = transformers.LlamaConfig(**_SMALL, num_key_value_heads=2, pad_token_id=0)
    torch.manual_seed(0)
    folder = _save(transformers.AutoModelForCausalLM.from_config(config), tmp_path, minilm_dir)
    assert isinstance(LLM(str(folder), runner="generate").loaded.model.backbone, DecoderModel)
    _edit_weights(folder, drop="model.norm.weight")
    with pytest.raises(ModelLoadError, match=r"missing weight 'model\.norm\.weight'"):
        LLM(str(folder), runner="generate")


def test_encoder_classify_without_a_head_is_refused_at_load(minilm_dir):
    with pytest.raises(ModelLoadError, match="no sequence-classification head"):
        LLM(str(minilm_dir), task="classify")


def test_backbones_implement_the_typed_contract(minilm_llm, tmp_path, minilm_dir):
    model = minilm_llm.loaded.model
    assert isinstance(model.backbone, EncoderBackbone) and not isinstance(model.backbone, DecoderBackbone)
    assert model.packs_padding is True and model.vocab_size == 30522 and model.supports_prefix is False

    fallback = LLM(str(_gemma(minilm_dir, tmp_path)), runner="generate").loaded.model
    assert isinstance(fallback.backbone, DecoderBackbone)
    assert fallback.packs_padding is False and fallback.vocab_size == 30522 and fallback.supports_prefix is False
    assert issubclass(HFEncoderBackbone, EncoderBackbone) and issubclass(DecoderModel, DecoderBackbone)

    class Incomplete(EncoderBackbone):  # forgets classify_tokens and the properties
        def hidden_states(self, input_ids, attention_mask, token_type_ids):
            return input_ids

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()


def test_generative_scoring_on_a_classifier_checkpoint_is_refused_at_load(tmp_path, minilm_dir):
    config = transformers.LlamaConfig(**_SMALL, num_key_value_heads=2, pad_token_id=0, tie_word_embeddings=False,
                                      num_labels=1)
    torch.manual_seed(0)
    folder = _save(transformers.LlamaForSequenceClassification(config), tmp_path, minilm_dir)
    assert LLM(str(folder)).info.score_type == "cross-encoder"
    with pytest.raises(ModelLoadError, match="no language-model head"):
        LLM(str(folder), runner="generate")
