"""vLLM's model options: --pooler-config, --convert, --trust-remote-code, and hub resolution through
huggingface_hub (download_dir, revision) — each honoured, checked against transformers, or refused by name."""

from __future__ import annotations

import shutil

import pytest
import torch
import torch.nn.functional as F
from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer, BertConfig

from scorekit import LLM
from scorekit.errors import ModelLoadError
from scorekit.models.resolve import resolve_model

TEXTS = ["the river runs through the old city", "bees make honey"]


def _transformers_hidden(folder, texts):
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder)).eval()
    out = []
    for text in texts:
        enc = tok(text, return_tensors="pt")
        with torch.no_grad():
            out.append(model(**enc).last_hidden_state[0])
    return out


def test_pooler_config_pooling_type_and_normalize(minilm_dir):
    cls = LLM(str(minilm_dir), pooler_config={"pooling_type": "CLS", "normalize": False})
    assert cls.info.pooling == "CLS"
    got = [torch.tensor(o.outputs.embedding) for o in cls.embed(TEXTS, use_tqdm=False)]
    want = [h[0] for h in _transformers_hidden(minilm_dir, TEXTS)]  # the CLS position, not normalised
    for g, w in zip(got, want):
        assert torch.allclose(g, w, atol=1e-5)
    from scorekit import PoolingParams

    unit = cls.embed(TEXTS[:1], pooling_params=PoolingParams(use_activation=True), use_tqdm=False)[0]
    assert torch.allclose(torch.tensor(unit.outputs.embedding), F.normalize(want[0], dim=-1), atol=1e-5)


@pytest.mark.parametrize("config, message", [
    ({"pooling_type": "STEP"}, "pooling_type"), ({"dimensions": 64}, "dimensions"),
    ({"enable_chunked_processing": True}, "enable_chunked_processing"), ({"logit_sigma": 0}, "logit_sigma"),
    ({"task": "classify"}, "sequence-classification head")])
def test_pooler_config_refuses_what_it_cannot_honour(minilm_dir, config, message):
    with pytest.raises(ModelLoadError, match=message):
        LLM(str(minilm_dir), pooler_config=config)


def test_pooler_config_logit_calibration(tmp_path, minilm_dir):
    torch.manual_seed(7)
    config = BertConfig(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=128, max_position_embeddings=128, num_labels=1)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    model.save_pretrained(str(tmp_path))
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_dir / f, tmp_path / f)
    plain = LLM(str(tmp_path))
    calibrated = LLM(str(tmp_path), pooler_config={"logit_mean": 0.5, "logit_sigma": 2.0})
    tok = AutoTokenizer.from_pretrained(str(tmp_path))
    with torch.no_grad():
        logit = float(model(**tok("q", TEXTS[0], return_tensors="pt")).logits[0, 0])
    assert plain.score("q", TEXTS[0], use_tqdm=False)[0].outputs.score == pytest.approx(torch.sigmoid(torch.tensor(logit)).item(), abs=1e-5)
    want = torch.sigmoid(torch.tensor((logit - 0.5) / 2.0)).item()
    assert calibrated.score("q", TEXTS[0], use_tqdm=False)[0].outputs.score == pytest.approx(want, abs=1e-5)


def test_convert_embed_serves_a_causal_lm_as_an_embedding_model(tiny_llama):
    folder, model, tokenizer = tiny_llama
    assert LLM(str(folder)).info.task == "generate"
    llm = LLM(str(folder), convert="embed")
    assert llm.info.task == "embed" and llm.info.pooling == "LAST"
    got = [torch.tensor(o.outputs.embedding) for o in llm.embed(TEXTS, use_tqdm=False)]
    for text, g in zip(TEXTS, got):
        enc = tokenizer(text, return_tensors="pt")
        with torch.no_grad():
            last = model.model(**enc).last_hidden_state[0, -1]
        assert torch.allclose(g, F.normalize(last, dim=-1), atol=1e-5)


def test_convert_none_and_classify_rules(tiny_llama):
    folder, _, _ = tiny_llama
    overrides = {"architectures": ["LlamaForSequenceClassification"], "classifier_from_token": ["no", "yes"],
                 "method": "from_2_way_softmax"}
    with pytest.raises(ModelLoadError, match="convert='none'"):
        LLM(str(folder), convert="none", hf_overrides=overrides)
    assert LLM(str(folder), convert="classify", hf_overrides=overrides).info.task == "classify"
    with pytest.raises(ValueError, match="convert must be"):
        LLM(str(folder), convert="reward")


def test_trust_remote_code_reaches_transformers(minilm_dir, monkeypatch):
    from transformers import AutoConfig

    seen = []
    original = AutoConfig.from_pretrained.__func__

    def recording(cls, *args, **kwargs):
        seen.append(kwargs.get("trust_remote_code"))
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(AutoConfig, "from_pretrained", classmethod(recording))
    LLM(str(minilm_dir), trust_remote_code=True)
    assert seen and seen[-1] is True


def test_hub_ids_resolve_through_huggingface_hub_with_download_dir_and_revision(tmp_path, minilm_dir):
    repo = tmp_path / "models--acme--mini"
    for rev in ("aaaa1111", "bbbb2222"):
        shutil.copytree(minilm_dir, repo / "snapshots" / rev)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("aaaa1111")
    (repo / "refs" / "v2").write_text("bbbb2222")
    assert resolve_model("acme/mini", download_dir=str(tmp_path)).folder.name == "aaaa1111"
    assert resolve_model("acme/mini", revision="v2", download_dir=str(tmp_path)).folder.name == "bbbb2222"
    with pytest.raises(ModelLoadError, match="Could not find model 'acme/other' offline"):
        resolve_model("acme/other", download_dir=str(tmp_path))
