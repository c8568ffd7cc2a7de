"""quantization="int8" on scorekit's own decoder (models/quantize.py): `Int8Linear` against an fp32 Linear, a tiny
random Llama / Qwen2 under int8 against fp32, the layers it swaps and the ones it keeps, refusals, and the fp32
default left bit-for-bit alone. The slow test checks the ranking of the real Qwen2.5-0.5B under int8."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from scorekit import LLM
from scorekit.errors import ModelLoadError
from scorekit.models import quantize
from scorekit.models.decoder_layers import Linear
from scorekit.models.quantize import Int8Linear, quantize_backbone
from tests.models.conftest import spearman


def _relative_error(got: torch.Tensor, want: torch.Tensor) -> float:
    return float((got - want).norm() / want.norm())




# Relative (Frobenius) error of int8 weights per channel x int8 activations per token on Gaussian data: ~0.013
# measured (K = 256-896); 0.02 leaves room and still fails a per-tensor or 7-bit path on outlier rows below.
BOUND = 0.02


@pytest.mark.parametrize("bias", [False, True])
def test_int8_linear_close_to_fp32_linear(bias):
    torch.manual_seed(0)
    weight, b = torch.randn(320, 256) * 0.05, (torch.randn(320) if bias else None)
    x = torch.randn(2, 37, 256)
    x[0, 3] *= 200  # one token far larger than the others: per-token scales keep the rest exact enough
    want = torch.nn.functional.linear(x, weight, b)
    got = Int8Linear(weight, b)(x)
    assert got.shape == want.shape and got.dtype == torch.float32
    assert _relative_error(got, want) < BOUND
    small = [i for i in range(37) if i != 3]
    assert _relative_error(got[0, small], want[0, small]) < BOUND  # not swamped by the large token
    zero = Int8Linear(weight, b)(torch.zeros(4, 256))  # padding rows: exactly the bias
    assert torch.equal(zero, (b if bias else torch.zeros(320)).expand(4, 320))


def test_int8_linear_without_amx_and_refused_without_vnni():
    """oneDNN picks its int8 kernel at run time. Capped at AVX-512 VNNI (an AMD EPYC's ISA, no AMX) the layer keeps
    the same bound; capped at AVX2 (no VNNI: saturating int16 sums, error 0.034 measured) int8 is refused."""
    code = textwrap.dedent("""
        import torch
        from scorekit.errors import ModelLoadError
        from scorekit.models.quantize import Int8Linear, quantize_backbone
        torch.manual_seed(0)
        w, x = torch.randn(320, 256) * 0.05, torch.randn(64, 256)
        want = x @ w.T
        print(float((Int8Linear(w)(x) - want).norm() / want.norm()))
        layers = torch.nn.ModuleDict({"layers": torch.nn.ModuleList([torch.nn.ModuleDict({"q": torch.nn.Linear(8, 8)})])})
        try:
            quantize_backbone(layers, "int8", torch.device("cpu"))
            print("accepted")
        except ModelLoadError as exc:
            print("refused:", exc)
    """)
    results = {}
    for isa in ("AVX512_CORE_VNNI", "AVX2"):
        env = {**os.environ, "ONEDNN_MAX_CPU_ISA": isa}
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
        error, verdict = out.stdout.strip().splitlines()[-2:]
        results[isa] = (float(error), verdict)
    assert results["AVX512_CORE_VNNI"][0] < BOUND and results["AVX512_CORE_VNNI"][1] == "accepted"
    assert results["AVX2"][1].startswith("refused:") and "VNNI" in results["AVX2"][1]




ITEMS = ["Paris is the capital of France.", "Bananas are yellow.", "The Seine flows through Paris.",
         "Berlin is in Germany.", "Cats sleep a lot.", "France borders Spain and Italy.", "Tea is a drink.",
         "The Louvre is a museum in Paris.", "Rain falls from clouds.", "Lyon is a French city.",
         "Mount Everest is tall.", "The Eiffel Tower is made of iron."]




@pytest.mark.parametrize("family", ["llama", "qwen2"])
def test_tiny_decoder_int8_close_to_fp32_with_rank_agreement(tiny_decoders, family):
    folder = tiny_decoders[family]
    fp32, int8 = LLM(str(folder), runner="generate"), LLM(str(folder), runner="generate", quantization="int8")
    swapped = {n for n, m in int8.loaded.model.backbone.named_modules() if isinstance(m, Int8Linear)}
    kept = {n for n, m in int8.loaded.model.backbone.named_modules() if isinstance(m, Linear)}
    assert swapped == {f"layers.{i}.{n}" for i in range(2) for n in ("attn.qkv", "attn.o_proj", "mlp.gate_up")}
    assert kept == {"layers.0.mlp.down", "layers.1.mlp.down"}  # FFN output projections stay fp32
    tok = fp32.get_tokenizer()
    labels = [tok.encode(" yes", add_special_tokens=False)[0], tok.encode(" no", add_special_tokens=False)[0]]
    prompt = "Question: is this about Paris? Answer:"
    want = [o.outputs.score for o in fp32.generative_score(prompt, ITEMS, labels, use_tqdm=False)]
    got = [o.outputs.score for o in int8.generative_score(prompt, ITEMS, labels, use_tqdm=False)]
    assert got != want  # it really ran int8
    # Measured on these seeded models (scores spread over 0.06-0.99): max |Δ| 0.056 (llama) and 0.016 (qwen2),
    # Spearman 0.986 and 1.0.
    assert max(abs(a - b) for a, b in zip(got, want)) < 0.1
    assert spearman(got, want) >= 0.95


def test_tiny_reranker_int8_keeps_the_order(tiny_decoders):
    """The classify path (label rows of the LM head as a reranker, hf_overrides) under int8."""
    overrides = {"architectures": ["LlamaForSequenceClassification"], "classifier_from_token": ["no", "yes"],
                 "method": "from_2_way_softmax"}
    folder = str(tiny_decoders["llama"])
    fp32, int8 = LLM(folder, hf_overrides=overrides), LLM(folder, hf_overrides=overrides, quantization="int8")
    want = [o.outputs.score for o in fp32.score("Is this about Paris?", ITEMS, use_tqdm=False)]
    got = [o.outputs.score for o in int8.score("Is this about Paris?", ITEMS, use_tqdm=False)]
    assert got != want
    assert max(abs(a - b) for a, b in zip(got, want)) < 0.1  # measured 0.041 over scores of 0.23-0.99
    assert spearman(got, want) >= 0.95  # measured 1.0


def test_fp32_default_is_untouched(tiny_decoders):
    folder = str(tiny_decoders["llama"])
    default, none = LLM(folder, runner="generate"), LLM(folder, runner="generate", quantization="none")
    for llm in (default, none):
        modules = list(llm.loaded.model.backbone.modules())
        assert not any(isinstance(m, Int8Linear) for m in modules)
    tok = default.get_tokenizer()
    labels = [tok.encode(" yes", add_special_tokens=False)[0]]
    a = [o.outputs.score for o in default.generative_score("Paris?", ITEMS, labels, use_tqdm=False)]
    b = [o.outputs.score for o in none.generative_score("Paris?", ITEMS, labels, use_tqdm=False)]
    assert a == b  # bit for bit
    backbone = default.loaded.model.backbone
    assert quantize_backbone(backbone, None, torch.device("cpu")) is backbone


@pytest.mark.parametrize("name", ["int4", "fp8", "awq", "INT8", ""])
def test_unknown_quantization_refused(tiny_decoders, name):
    with pytest.raises(ModelLoadError, match="Unknown quantization"):
        LLM(str(tiny_decoders["llama"]), runner="generate", quantization=name)


def test_int8_refused_off_cpu_and_without_onednn(tiny_decoders, monkeypatch):
    backbone = LLM(str(tiny_decoders["llama"]), runner="generate").loaded.model.backbone
    with pytest.raises(ModelLoadError, match="CPU only"):
        quantize_backbone(backbone, "int8", torch.device("cuda"))
    monkeypatch.setattr(quantize, "onednn_int8_available", lambda: False)
    with pytest.raises(ModelLoadError, match="oneDNN quantized engine"):
        quantize_backbone(backbone, "int8", torch.device("cpu"))
    assert not any(isinstance(m, Int8Linear) for m in backbone.modules())  # refused before touching it


# -- real weights ------------------------------------------------------------------------------------------------

FIXTURE = json.loads((Path(__file__).parents[1] / "fixtures" / "relevance.json").read_text())["cases"]
OVERRIDES = {"architectures": ["Qwen2ForSequenceClassification"], "classifier_from_token": ["no", "yes"],
             "method": "from_2_way_softmax"}


def _qwen_int8_vs_fp32() -> tuple[list[float], list[float]]:
    """Qwen2.5-0.5B (the packaged GGUF) as a yes/no reranker, fp32 and int8: each of the fixture's 3 queries
    against all 12 of its documents (every case's relevant and irrelevant ones), 36 scores each."""
    from scorekit.models.packaged import qwen25_gguf

    path = str(qwen25_gguf())
    kwargs = {"hf_overrides": OVERRIDES, "chat_template": "qwen3_reranker", "score_cache_bytes": 0}
    fp32, int8 = LLM(path, **kwargs), LLM(path, quantization="int8", **kwargs)
    documents = [d for case in FIXTURE for d in [case["relevant"], *case["irrelevant"]]]
    want, got = [], []
    for case in FIXTURE:
        want += [o.outputs.score for o in fp32.score(case["query"], documents, use_tqdm=False)]
        got += [o.outputs.score for o in int8.score(case["query"], documents, use_tqdm=False)]
    return want, got


@pytest.fixture(scope="module")
def qwen_scores():
    return _qwen_int8_vs_fp32()


@pytest.mark.slow
def test_qwen25_reranker_int8_stays_close_to_fp32(qwen_scores):
    """Measured (Intel Xeon, AMX): pooled Spearman 0.924 (0.95, 0.91, 0.93 per query), max |Δ| 0.072. Without an
    instruction this model barely separates these documents (fp32 scores 0.38-0.64), so int8 reorders near-ties;
    the floor below catches a regression, the issue's target is the xfail test after it."""
    want, got = qwen_scores
    assert spearman(got, want) >= 0.9
    assert max(abs(a - b) for a, b in zip(got, want)) < 0.1


@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="issue #15's Spearman >= 0.99 for int8 is not met (0.924 measured): the "
                                       "FFN-output and per-token activation error, docs/quantization.md")
def test_qwen25_reranker_int8_spearman_target(qwen_scores):
    want, got = qwen_scores
    assert spearman(got, want) >= 0.99
