"""Our EncoderModel against transformers on the same weights: real MiniLM and tiny random BERT/RoBERTa/XLM-R."""

from __future__ import annotations

import json

import pytest
import torch
import transformers

from scorekit.errors import ModelLoadError
from scorekit.models.encoder import EncoderModel
from scorekit.models.packaged import default_model_dir
from scorekit.models.weights import load_folder_state_dict

SENTENCES = [
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog while the farmer watches from the porch of the old house.",
    "Hi",
    "Scoring text pairs with transformer models on a small CPU.",
]


# ---- real all-MiniLM-L6-v2 (BertModel checkpoint: no "bert." prefix, no head) -----------------------------


@pytest.fixture(scope="module")
def minilm():
    folder = default_model_dir()
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    reference = transformers.BertModel.from_pretrained(folder, dtype=torch.float32).eval()
    ours = EncoderModel.from_config_and_state_dict(reference.config, load_folder_state_dict(folder))
    return folder, tokenizer, reference, ours


def test_minilm_hidden_states_match_transformers(minilm):
    _, tokenizer, reference, ours = minilm
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    mask = batch["attention_mask"].bool()
    assert not mask.all(), "the batch must contain padding to test masking"
    with torch.inference_mode():
        expected = reference(**batch).last_hidden_state
        got = ours.hidden_states(batch["input_ids"], batch["attention_mask"], batch["token_type_ids"])
    assert got.shape == expected.shape == (len(SENTENCES), mask.shape[1], ours.hidden_size)
    diff = (got - expected)[mask].abs().max().item()
    print(f"MiniLM max abs diff: {diff:.2e}")
    assert diff <= 1e-4
    # token_type_ids=None must mean all zeros.
    with torch.inference_mode():
        default_types = ours.hidden_states(batch["input_ids"], batch["attention_mask"])
    assert torch.equal(default_types[mask], got[mask])
    assert not ours.has_classifier
    with pytest.raises(RuntimeError, match="no sequence-classification head"):
        ours.classify(got)


def test_minilm_batch_invariance(minilm):
    _, tokenizer, _, ours = minilm
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.inference_mode():
        together = ours.hidden_states(batch["input_ids"], batch["attention_mask"])
        for i, sentence in enumerate(SENTENCES):
            single = tokenizer([sentence], return_tensors="pt")
            alone = ours.hidden_states(single["input_ids"], single["attention_mask"])[0]
            n = alone.shape[0]
            assert batch["attention_mask"][i, n:].sum() == 0 and batch["attention_mask"][i, :n].all()
            assert (together[i, :n] - alone).abs().max().item() <= 1e-5


def test_minilm_bfloat16_is_close(minilm):
    folder, tokenizer, reference, ours = minilm
    bf16 = EncoderModel.from_config_and_state_dict(reference.config, load_folder_state_dict(folder), torch.bfloat16)
    assert bf16.word_embeddings.weight.dtype == torch.bfloat16
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    mask = batch["attention_mask"].bool()
    with torch.inference_mode():
        full = ours.hidden_states(batch["input_ids"], batch["attention_mask"])[mask]
        half = bf16.hidden_states(batch["input_ids"], batch["attention_mask"])[mask].float()
    assert torch.nn.functional.cosine_similarity(full, half, dim=-1).min().item() > 0.99


# ---- tiny random sequence classifiers ---------------------------------------------------------------------

_COMMON = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=3, num_attention_heads=4,
               intermediate_size=128, num_labels=1)
FAMILIES = {
    "bert": (transformers.BertConfig, transformers.BertForSequenceClassification,
             dict(max_position_embeddings=64, type_vocab_size=2, pad_token_id=0)),
    "roberta": (transformers.RobertaConfig, transformers.RobertaForSequenceClassification,
                dict(max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2)),
    # A different activation exercises the ACT2FN plumbing.
    "xlm-roberta": (transformers.XLMRobertaConfig, transformers.XLMRobertaForSequenceClassification,
                    dict(max_position_embeddings=66, type_vocab_size=1, pad_token_id=1, bos_token_id=0,
                         eos_token_id=2, hidden_act="gelu_new")),
}


def make_tiny(family: str):
    config_cls, model_cls, extra = FAMILIES[family]
    torch.manual_seed(0)
    model = model_cls(config_cls(**_COMMON, **extra)).eval()
    # HF initialises LayerNorms to (1, 0) and biases to 0, which would hide swapped or dropped weights.
    with torch.no_grad():
        for name, param in model.named_parameters():
            param.normal_(mean=1.0 if name.endswith("LayerNorm.weight") else 0.0, std=0.1)
    return model


# Rows of uneven lengths, one of a single token.
TINY_LENGTHS = (17, 5, 11, 1)


def assert_matches(reference, ours, input_ids, attention_mask, token_type_ids):
    with torch.inference_mode():
        out = reference(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids,
                        output_hidden_states=True)
        hidden = ours.hidden_states(input_ids, attention_mask, token_type_ids)
        logits = ours.classify(hidden)
    mask = attention_mask.bool()
    hidden_diff = (hidden - out.hidden_states[-1])[mask].abs().max().item()
    logit_diff = (logits - out.logits).abs().max().item()
    assert logits.shape == out.logits.shape == (input_ids.shape[0], 1)
    assert out.logits.std().item() > 0.05, "logits too uniform for the comparison to mean anything"
    assert hidden_diff <= 1e-4 and logit_diff <= 1e-5, (hidden_diff, logit_diff)
    return hidden_diff, logit_diff


@pytest.mark.parametrize("family", list(FAMILIES))
def test_tiny_classifier_matches_transformers(family, tmp_path, right_padded):
    make_tiny(family).save_pretrained(tmp_path)
    # Eager attention: an independent reference path rather than the same SDPA kernel we call.
    reference = transformers.AutoModelForSequenceClassification.from_pretrained(
        tmp_path, attn_implementation="eager").eval()
    state_dict = load_folder_state_dict(tmp_path)
    assert any(k.startswith(("bert.", "roberta.")) for k in state_dict), "expected prefixed keys"
    ours = EncoderModel.from_config_and_state_dict(reference.config, state_dict)
    assert ours.has_classifier and ours.num_labels == 1 and ours.hidden_size == 64
    assert not any(p.requires_grad for p in ours.parameters())

    input_ids, attention_mask, token_type_ids = right_padded(reference.config, TINY_LENGTHS, seed=1)
    hidden_diff, logit_diff = assert_matches(reference, ours, input_ids, attention_mask, token_type_ids)
    print(f"{family}: hidden {hidden_diff:.2e} logits {logit_diff:.2e}")

    # Batch invariance, including RoBERTa's padding-aware position ids.
    with torch.inference_mode():
        together = ours.classify(ours.hidden_states(input_ids, attention_mask, token_type_ids))
        for i, n in enumerate(attention_mask.sum(1).tolist()):
            row = slice(i, i + 1)
            alone = ours.classify(ours.hidden_states(input_ids[row, :n], attention_mask[row, :n],
                                                     token_type_ids[row, :n]))
            assert (together[i] - alone[0]).abs().max().item() <= 1e-5


def test_roberta_position_ids_follow_hf():
    ours = EncoderModel.from_config_and_state_dict(make_tiny("roberta").config,
                                                   make_tiny("roberta").state_dict())
    ids = torch.tensor([[0, 7, 8, 2, 1, 1], [0, 9, 2, 1, 1, 1]])
    expected = transformers.models.roberta.modeling_roberta.RobertaEmbeddings.create_position_ids_from_input_ids(
        ids, padding_idx=1)
    assert torch.equal(ours._position_ids(ids), expected)
    assert ours._position_ids(ids)[0].tolist() == [2, 3, 4, 5, 1, 1]
    assert ours.max_length == 64
    with pytest.raises(ValueError, match="exceeds"):
        ours.hidden_states(torch.full((1, 65), 5), torch.ones(1, 65, dtype=torch.long))


# ---- weight formats and errors --------------------------------------------------------------------------


def test_sharded_safetensors_and_pytorch_bin_load(tmp_path, right_padded):
    model = make_tiny("bert")
    expected = model.state_dict()
    sharded, pickled = tmp_path / "sharded", tmp_path / "bin"

    model.save_pretrained(sharded, max_shard_size="100KB")
    index = json.loads((sharded / "model.safetensors.index.json").read_text())
    assert len(set(index["weight_map"].values())) > 1 and not (sharded / "model.safetensors").exists()

    # transformers 5 only writes safetensors, so write the legacy pickle format ourselves.
    pickled.mkdir()
    model.config.save_pretrained(pickled)
    torch.save(expected, pickled / "pytorch_model.bin")

    input_ids, attention_mask, token_type_ids = right_padded(model.config, TINY_LENGTHS, seed=1)
    for folder in (sharded, pickled):
        state_dict = load_folder_state_dict(folder)
        for key in index["weight_map"]:
            assert torch.equal(state_dict[key], expected[key]), key
        ours = EncoderModel.from_config_and_state_dict(model.config, state_dict)
        assert_matches(model, ours, input_ids, attention_mask, token_type_ids)


def test_missing_folder_weights_raise(tmp_path):
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_folder_state_dict(tmp_path)


def test_missing_or_unused_weight_is_a_load_error_naming_it():
    model = make_tiny("bert")
    state_dict = dict(model.state_dict())
    # Allowed to stay unread (encoder._MAY_STAY_UNREAD): a legacy buffer and masked-LM pre-training heads.
    state_dict["bert.embeddings.position_ids"] = torch.arange(64)[None]
    state_dict["cls.predictions.bias"] = torch.zeros(model.config.vocab_size)
    EncoderModel.from_config_and_state_dict(model.config, state_dict)
    extra = {**state_dict, "bert.encoder.layer.0.attention.self.extra.weight": torch.zeros(2)}
    with pytest.raises(ModelLoadError, match=r"does not use: 'bert\.encoder\.layer\.0\.attention\.self\.extra"):
        EncoderModel.from_config_and_state_dict(model.config, extra)
    del state_dict["bert.encoder.layer.2.attention.self.value.bias"]
    with pytest.raises(ModelLoadError, match=r"missing weight 'bert\.encoder\.layer\.2\.attention\.self\.value\.bias'"):
        EncoderModel.from_config_and_state_dict(model.config, state_dict)


def test_relative_position_embeddings_are_refused():
    config = transformers.BertConfig(**_COMMON)
    config.position_embedding_type = "relative_key"
    with pytest.raises(NotImplementedError, match="absolute"):
        EncoderModel.from_config_and_state_dict(config, make_tiny("bert").state_dict())
