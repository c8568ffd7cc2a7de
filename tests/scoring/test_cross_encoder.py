"""Cross-encoders: small random BERT / XLM-R sequence classifiers scored like transformers.

No trained cross-encoder ships on PyPI, so the test builds seeded random ones from a config, saves them with
the MiniLM tokenizer (BERT vocabulary) and compares scorekit with transformers on the same weights.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, BertConfig, XLMRobertaConfig

from scorekit import LLM, PoolingParams

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "bananas are yellow and rich in potassium", "a much longer document " * 12]
TOL = 1e-5


def _save_random_classifier(tmp_path, minilm_dir, config, name, st_activation=None):
    torch.manual_seed(1234)
    model = AutoModelForSequenceClassification.from_config(config).eval()
    folder = tmp_path / name
    model.save_pretrained(str(folder))
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(minilm_dir / f, folder / f)
    if st_activation:
        cfg = json.loads((folder / "config.json").read_text())
        cfg["sentence_transformers"] = {"activation_fn": st_activation}
        (folder / "config.json").write_text(json.dumps(cfg))
    return folder, model


def _small(cls, **extra):
    return cls(vocab_size=30522, hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
               max_position_embeddings=128, num_labels=1, **extra)


@pytest.fixture(scope="module", params=["bert", "xlm-roberta"])
def classifier(request, tmp_path_factory, minilm_dir):
    tmp = tmp_path_factory.mktemp(request.param)
    if request.param == "bert":
        config = _small(BertConfig, type_vocab_size=2)
    else:
        config = _small(XLMRobertaConfig, type_vocab_size=1, pad_token_id=0, bos_token_id=101, eos_token_id=102)
    folder, model = _save_random_classifier(tmp, minilm_dir, config, request.param)
    return folder, model, LLM(str(folder))


def _reference_logits(folder, model, pairs):
    tok = AutoTokenizer.from_pretrained(str(folder))
    out = []
    for q, d in pairs:  # one pair at a time: no padding in the reference at all
        enc = tok(q, d, return_tensors="pt")
        if model.config.type_vocab_size < 2:
            enc.pop("token_type_ids", None)
        with torch.no_grad():
            out.append(float(model(**enc).logits[0, 0]))
    return out


def test_scores_match_transformers(classifier):
    folder, model, llm = classifier
    assert llm.info.score_type == "cross-encoder"
    logits = _reference_logits(folder, model, [(QUERY, d) for d in DOCS])
    scores = [o.outputs.score for o in llm.score(QUERY, DOCS, use_tqdm=False)]
    assert scores == pytest.approx(torch.sigmoid(torch.tensor(logits)).tolist(), abs=TOL)
    raw = [o.outputs.score for o in llm.score(QUERY, DOCS, use_tqdm=False, pooling_params=PoolingParams(use_activation=False))]
    assert raw == pytest.approx(logits, abs=TOL)


def test_prompt_is_the_pair_encoding(classifier):
    folder, _, llm = classifier
    out = llm.score(QUERY, DOCS[0], use_tqdm=False)[0]
    tok = AutoTokenizer.from_pretrained(str(folder))
    assert out.prompt_token_ids == tok(QUERY, DOCS[0])["input_ids"]  # [CLS] q [SEP] d [SEP]


def test_batch_composition(classifier):
    _, _, llm = classifier
    alone = llm.score(QUERY, DOCS[1], use_tqdm=False)[0].outputs.score
    batch = llm.score([QUERY] * 4, [DOCS[2], "x", DOCS[1], DOCS[0]], use_tqdm=False)
    assert batch[2].outputs.score == pytest.approx(alone, abs=TOL)


def test_identity_activation_from_sentence_transformers_config(tmp_path, minilm_dir):
    """ms-marco style models declare Identity: raw logits, which may be negative or above 1."""
    folder, model = _save_random_classifier(tmp_path, minilm_dir, _small(BertConfig, type_vocab_size=2), "identity",
                                            st_activation="torch.nn.modules.linear.Identity")
    llm = LLM(str(folder))
    assert llm.info.activation == "identity"
    scores = [o.outputs.score for o in llm.score(QUERY, DOCS, use_tqdm=False)]
    assert scores == pytest.approx(_reference_logits(folder, model, [(QUERY, d) for d in DOCS]), abs=TOL)


def test_rerank_sorts_descending(classifier):
    _, _, llm = classifier
    ranked = llm.rerank(QUERY, DOCS, use_tqdm=False)
    scores = [r.relevance_score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    assert sorted(r.index for r in ranked) == [0, 1, 2]
    assert [r.document for r in ranked] == [DOCS[r.index] for r in ranked]
    assert len(llm.rerank(QUERY, DOCS, top_n=2, use_tqdm=False)) == 2
