"""A sentence-transformers Dense module beside the encoder is applied as sentence-transformers applies it
(Linear, then its activation: Tanh by default), and one we cannot honour is refused at load; the same for
the Pooling mode."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import transformers
from sentence_transformers import SentenceTransformer
from sentence_transformers.sentence_transformer.modules import Dense, Pooling, Transformer

from scorekit import LLM
from scorekit.errors import ModelLoadError

TEXTS = ["paris is the capital of france", "bananas are yellow", "a"]


def _st_folder(tmp_path, minilm_dir, activation):
    base = tmp_path / "base"
    torch.manual_seed(0)
    transformers.BertModel(transformers.BertConfig(
        vocab_size=30522, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        max_position_embeddings=64)).save_pretrained(str(base))
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_dir / name, base / name)
    torch.manual_seed(1)
    dense = Dense(32, 8, activation_function=activation)
    with torch.no_grad():
        dense.linear.weight.mul_(20)  # large enough that tanh bends the values: an Identity would be caught
    st = SentenceTransformer(modules=[Transformer(str(base)), Pooling(32, "mean"), dense], device="cpu")
    st.save(str(tmp_path / "st"))
    return st, tmp_path / "st"


@pytest.mark.parametrize("activation", [torch.nn.Tanh(), torch.nn.Identity()], ids=["tanh", "identity"])
def test_dense_matches_sentence_transformers(tmp_path, minilm_dir, activation):
    st, folder = _st_folder(tmp_path, minilm_dir, activation)
    want = st.encode(TEXTS, convert_to_tensor=True, normalize_embeddings=False)
    got = torch.stack([torch.tensor(o.outputs.embedding) for o in LLM(str(folder)).embed(TEXTS)])
    # LLM.embed normalises (vLLM's default): compare directions, and the tanh saturation shows in them.
    assert torch.allclose(got, torch.nn.functional.normalize(want, dim=-1), atol=1e-5)
    if isinstance(activation, torch.nn.Tanh):
        assert want.abs().max() > 0.5


def test_unsupported_dense_is_refused(tmp_path, minilm_dir):
    _, folder = _st_folder(tmp_path, minilm_dir, torch.nn.Tanh())
    dense_config = next(folder.glob("*Dense/config.json"))
    config = json.loads(dense_config.read_text())
    dense_config.write_text(json.dumps({**config, "activation_function": "torch.nn.modules.activation.GELU"}))
    with pytest.raises(ModelLoadError, match="'GELU' is not supported"):
        LLM(str(folder))
    dense_config.write_text(json.dumps({**config, "use_residual": True}))
    with pytest.raises(ModelLoadError, match="use_residual"):
        LLM(str(folder))


def test_pooling_mode_string_of_sentence_transformers_6(tmp_path, minilm_dir):
    """sentence-transformers >= 6 writes `"pooling_mode": "mean"` (the test above pools by it); a mode
    scorekit does not compute is refused, not replaced by CLS."""
    _, folder = _st_folder(tmp_path, minilm_dir, torch.nn.Identity())
    pooling = next(folder.glob("*Pooling/config.json"))
    pooling.write_text(json.dumps({**json.loads(pooling.read_text()), "pooling_mode": "max"}))
    with pytest.raises(ModelLoadError, match="pooling_mode 'max' is not supported"):
        LLM(str(folder))
