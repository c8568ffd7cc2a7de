"""The classifier_from_token conversion on causal LMs that run on the transformers fallback (Gemma, Gemma2,
Mistral): scores equal a manual computation with transformers' own causal LM on the same folder (the
last position's logits of the label tokens), and `scorekit convert` writes a folder that transformers
loads as *ForSequenceClassification with no missing or unexpected weight and that scores identically.

Tiny random checkpoints built here; the tokenizer is SmolLM2's (49,152 tokens, has "Yes", "yes", "no").
"""

from __future__ import annotations

import pytest
import torch
import transformers

from scorekit import LLM
from scorekit.convert import convert
from scorekit.errors import ModelLoadError
from scorekit.models.hf_fallback import HFDecoderBackbone

QUERY = "what is the capital of france"
DOCS = ["paris is the capital of france", "bananas are yellow", "a cat sat on the mat", "the"]
RECIPES = {  # vLLM's recipes (docs/models.md): bge-reranker-v2-gemma, and the Qwen3/mxbai 2-way softmax
    "bge-reranker-v2-gemma": {"classifier_from_token": ["Yes"], "method": "no_post_processing"},
    "from_2_way_softmax": {"classifier_from_token": ["no", "yes"], "method": "from_2_way_softmax"},
}
TOL = 1e-5


def _common(tok):
    return dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=2, head_dim=16, max_position_embeddings=256,
                initializer_range=0.3, pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                eos_token_id=tok.eos_token_id)


ARCHS = {
    "gemma": lambda tok: transformers.GemmaConfig(**_common(tok)),
    # A softcap small enough to bite: the conversion must go through it, as the causal LM's logits do.
    "gemma2": lambda tok: transformers.Gemma2Config(**_common(tok), final_logit_softcapping=2.0, sliding_window=3),
    "gemma2-nocap": lambda tok: transformers.Gemma2Config(**_common(tok), final_logit_softcapping=None),
    "mistral": lambda tok: transformers.MistralConfig(**_common(tok), tie_word_embeddings=False, sliding_window=3),
}


@pytest.fixture(scope="module")
def tokenizer(smollm2_path):
    from scorekit.models.loader import load_tokenizer
    from scorekit.models.resolve import resolve_model

    return load_tokenizer(resolve_model(str(smollm2_path)))


def _save_checkpoint(config, tokenizer, folder):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    with torch.no_grad():  # HF initialises norms to a constant: make every one matter
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


@pytest.fixture(scope="module", params=sorted(ARCHS))
def checkpoint(request, tokenizer, tmp_path_factory):
    folder = _save_checkpoint(ARCHS[request.param](tokenizer), tokenizer, tmp_path_factory.mktemp(request.param))
    reference = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    return request.param, folder, reference


def _overrides(arch_name, recipe):
    family = {"gemma": "Gemma", "gemma2": "Gemma2", "gemma2-nocap": "Gemma2", "mistral": "Mistral"}[arch_name]
    return {"architectures": [f"{family}ForSequenceClassification"], **RECIPES[recipe]}


def _manual_score(reference, tokenizer, prompt_ids, recipe):
    """The original reranker's score: the causal LM's next-token logits at the last position."""
    ids = tokenizer.convert_tokens_to_ids(RECIPES[recipe]["classifier_from_token"])
    with torch.no_grad():
        logits = reference(torch.tensor([prompt_ids])).logits[0, -1, ids].double()
    if recipe == "from_2_way_softmax":
        return float(torch.softmax(logits, -1)[1])  # P(yes | {no, yes})
    return float(torch.sigmoid(logits[0]))


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_conversion_scores_like_the_causal_lm(checkpoint, tokenizer, recipe):
    name, folder, reference = checkpoint
    llm = LLM(str(folder), hf_overrides=_overrides(name, recipe))
    assert isinstance(llm.loaded.model.backbone, HFDecoderBackbone)
    assert llm.info.conversion is not None and llm.info.score_type == "cross-encoder"
    results = llm.score(QUERY, DOCS, use_tqdm=False)  # one padded batch of four lengths
    got = [r.outputs.score for r in results]
    want = [_manual_score(reference, tokenizer, r.prompt_token_ids, recipe) for r in results]
    assert got == pytest.approx(want, abs=TOL)
    assert max(want) - min(want) > 0.05, "scores too alike for the comparison to mean anything"
    # The failure: a randomly initialised head differs between two loads. Not any more.
    again = [r.outputs.score for r in LLM(str(folder), hf_overrides=_overrides(name, recipe)).score(
        QUERY, DOCS, use_tqdm=False)]
    assert again == got


def test_gemma2_softcap_is_applied(tokenizer, tmp_path):
    """Without the final softcap the 2-way score differs by far more than the tolerance: the comparison
    with the causal LM above would catch a conversion that skipped it."""
    folder = _save_checkpoint(ARCHS["gemma2"](tokenizer), tokenizer, tmp_path)
    reference = transformers.AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32).eval()
    results = LLM(str(folder), hf_overrides=_overrides("gemma2", "from_2_way_softmax")).score(
        QUERY, DOCS, use_tqdm=False)
    no, yes = tokenizer.convert_tokens_to_ids(["no", "yes"])
    deviations = []
    with torch.no_grad():
        for r in results:
            last = reference.model(torch.tensor([r.prompt_token_ids])).last_hidden_state[0, -1]
            uncapped = float(torch.sigmoid(last @ (reference.lm_head.weight[yes] - reference.lm_head.weight[no])))
            deviations.append(abs(uncapped - r.outputs.score))
    assert max(deviations) > 100 * TOL


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_convert_round_trips_through_transformers(checkpoint, tokenizer, recipe, tmp_path):
    name, folder, _ = checkpoint
    overrides = _overrides(name, recipe)
    if name == "gemma2":
        with pytest.raises(ModelLoadError, match="final_logit_softcapping"):
            convert(str(folder), tmp_path / "out", overrides)
        return
    direct = LLM(str(folder), hf_overrides=overrides).score(QUERY, DOCS, use_tqdm=False)
    out = convert(str(folder), tmp_path / "out", overrides)

    hf, report = transformers.AutoModelForSequenceClassification.from_pretrained(
        str(out), dtype=torch.float32, output_loading_info=True)
    assert type(hf).__name__ == overrides["architectures"][0]
    assert not report["missing_keys"] and not report["unexpected_keys"] and not report["mismatched_keys"]
    converted = LLM(str(out))
    assert converted.info.conversion is None
    again = converted.score(QUERY, DOCS, use_tqdm=False)
    for before, after in zip(direct, again):
        assert after.prompt_token_ids == before.prompt_token_ids
        with torch.no_grad():
            logits = hf.eval()(torch.tensor([before.prompt_token_ids])).logits[0].double()
        assert logits.shape == (len(RECIPES[recipe]["classifier_from_token"]) if recipe != "from_2_way_softmax" else 1,)
        assert float(torch.sigmoid(logits[0])) == pytest.approx(before.outputs.score, abs=TOL)
        assert after.outputs.score == pytest.approx(before.outputs.score, abs=TOL)
