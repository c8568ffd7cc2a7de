"""Generative scoring on SmolLM2 equals transformers' full-vocabulary log-softmax on the same GGUF weights,
and the from_2_way_softmax classifier is the same number as generative scoring with those two labels."""

from __future__ import annotations

import pytest
import torch

from scorekit import LLM

TOL = 1e-5
QUERY = "Question: Is Paris the capital of France? Document:"
ITEMS = [" Paris is the capital of France.", " Bananas are yellow.", " The Seine flows through Paris, France's capital city."]


def _reference_logprobs(hf_model, ids):
    with torch.no_grad():
        logits = hf_model(torch.tensor([ids])).logits[0, -1].float()
    return torch.log_softmax(logits, dim=-1)


def _labels(tokenizer):
    return [tokenizer.encode(" yes", add_special_tokens=False)[0], tokenizer.encode(" no", add_special_tokens=False)[0]]


@pytest.mark.parametrize("apply_softmax", [True, False])
@pytest.mark.parametrize("item_first", [False, True])
def test_matches_transformers(smollm2_llm, smollm2_hf, apply_softmax, item_first):
    tok = smollm2_llm.get_tokenizer()
    labels = _labels(tok)
    out = smollm2_llm.generative_score(QUERY, ITEMS, labels, apply_softmax=apply_softmax, item_first=item_first,
                                       use_tqdm=False)
    q_ids = tok(QUERY)["input_ids"]
    for item, result in zip(ITEMS, out):
        i_ids = tok(item, add_special_tokens=False)["input_ids"]
        lp = _reference_logprobs(smollm2_hf, (i_ids + q_ids) if item_first else (q_ids + i_ids))[labels]
        expected = torch.softmax(lp, dim=0)[0] if apply_softmax else lp[0].exp()
        assert result.outputs.score == pytest.approx(float(expected), abs=TOL)
        assert 0.0 <= result.outputs.score <= 1.0


def test_token_id_inputs_and_single_label(smollm2_llm):
    tok = smollm2_llm.get_tokenizer()
    q_ids = tok(QUERY)["input_ids"]
    items = [tok(i, add_special_tokens=False)["input_ids"] for i in ITEMS]
    labels = _labels(tok)
    by_ids = [o.outputs.score for o in smollm2_llm.generative_score(q_ids, items, labels, use_tqdm=False)]
    by_text = [o.outputs.score for o in smollm2_llm.generative_score(QUERY, ITEMS, labels, use_tqdm=False)]
    assert by_ids == pytest.approx(by_text, abs=1e-6)
    assert smollm2_llm.generative_score(QUERY, ITEMS[:1], labels[:1], use_tqdm=False)[0].outputs.score == 1.0


@pytest.mark.parametrize(
    "labels, items, message",
    [
        ([10**7], ["x"], "label_token_id 10000000 is out of vocabulary range [0, 49152). Please provide valid token IDs."),
        ([], ["x"], "label_token_ids must contain at least one token ID."),
        ([1], [], "items must contain at least one item."),
    ],
)
def test_validation_messages(smollm2_llm, labels, items, message):
    with pytest.raises(ValueError) as info:
        smollm2_llm.generative_score(QUERY, items, labels, use_tqdm=False)
    assert str(info.value) == message


def test_batch_composition(smollm2_llm):
    labels = _labels(smollm2_llm.get_tokenizer())
    alone = smollm2_llm.generative_score(QUERY, ITEMS[1:2], labels, use_tqdm=False)[0].outputs.score
    mixed = smollm2_llm.generative_score(QUERY, [ITEMS[2] * 5, "x", ITEMS[1], ITEMS[0]], labels, use_tqdm=False)
    assert mixed[2].outputs.score == pytest.approx(alone, abs=TOL)


@pytest.fixture(scope="module")
def smollm2_classifier(smollm2_path):
    overrides = {"architectures": ["LlamaForSequenceClassification"], "classifier_from_token": ["no", "yes"],
                 "method": "from_2_way_softmax"}
    return LLM(str(smollm2_path), hf_overrides=overrides)


def test_two_way_softmax_classifier_equals_generative_scoring(smollm2_classifier, smollm2_llm):
    llm = smollm2_classifier
    assert llm.info.score_type == "cross-encoder" and llm.info.num_labels == 1 and not llm.info.use_sep_token
    tok = llm.get_tokenizer()
    yes, no = tok.convert_tokens_to_ids(["yes", "no"])
    for out in llm.score(QUERY, ITEMS, use_tqdm=False):
        ids = out.prompt_token_ids
        # the very same prompt through generative scoring with labels [yes, no]
        generative = smollm2_llm.generative_score(ids[:-1], [ids[-1:]], [yes, no], use_tqdm=False)[0].outputs.score
        assert out.outputs.score == pytest.approx(generative, abs=TOL)


def test_concatenation_without_separator(smollm2_classifier):
    out = smollm2_classifier.score("a", "bc", use_tqdm=False)[0]
    assert smollm2_classifier.get_tokenizer().decode(out.prompt_token_ids, skip_special_tokens=True) == "abc"
