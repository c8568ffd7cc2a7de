"""The CPU matmul backend (models/gemm.py): MKL and oneDNN both compute fp32 Linear layers to fp32 accuracy, agree
with each other on real models, and the choice between them can be forced."""

import pytest
import torch

from scorekit.models import gemm

pytestmark = pytest.mark.skipif(not gemm._onednn_available(), reason="this torch build has no oneDNN linear")


@pytest.fixture
def backend():
    """Force one backend for the test's duration through the real switch; the process's choice comes back after."""
    before = gemm.cpu_backend()
    yield gemm.set_cpu_backend
    gemm.set_cpu_backend(before)


@pytest.mark.parametrize("name", ["mkl", "onednn"])
@pytest.mark.parametrize("shape", [(1, 384, 1152), (29, 384, 1536), (300, 1536, 384), (7, 896, 4864)])
def test_linear_is_fp32_accurate(backend, name, shape):
    rows, inp, out = shape
    gen = torch.Generator().manual_seed(rows)
    x = torch.randn(rows, inp, generator=gen)
    weight = gemm.column_major(torch.randn(out, inp, generator=gen) / inp ** 0.5)
    bias = torch.randn(out, generator=gen)
    exact = x.double() @ weight.double().t() + bias.double()
    backend(name)
    y = gemm.linear(x, weight, bias)
    assert y.dtype == torch.float32 and y.shape == (rows, out)
    # fp32 accumulation over `inp` terms: both backends stay within a few 1e-6 of float64 here.
    assert float((y.double() - exact).abs().max()) < 2e-5


@pytest.mark.parametrize("name", ["mkl", "onednn"])
def test_linear_shapes_bias_and_out(backend, name):
    backend(name)
    x, weight = torch.randn(2, 5, 16), torch.randn(8, 16)
    torch.testing.assert_close(gemm.linear(x, weight), torch.nn.functional.linear(x, weight))
    assert gemm.linear(torch.randn(0, 16), weight).shape == (0, 8)
    buffer = torch.empty(5, 8)
    bias = torch.randn(8)
    y = gemm.linear(x[0], weight, bias, out=buffer)  # the returned tensor holds the result on either path
    torch.testing.assert_close(y, torch.nn.functional.linear(x[0], weight, bias))


def test_backend_can_be_forced_and_auto_returns_to_the_rule(backend, monkeypatch):
    monkeypatch.delenv(gemm.ENV, raising=False)
    for name in ("mkl", "onednn"):
        assert backend(name) == (name, "set explicitly")
        assert gemm.cpu_backend() == name
    ruled, why = backend("auto")
    assert gemm.cpu_backend() == ruled and why.startswith("rule for ")
    with pytest.raises(ValueError, match="cpu_gemm='blas'"):
        backend("blas")
    assert gemm.cpu_backend() == ruled  # a refused value changes nothing


def test_measure_cpu_backends_times_both():
    times = gemm.measure_cpu_backends(rows=16, inp=64, out=128, rounds=2)
    assert set(times) == {"mkl", "onednn"} and all(0 < t < 1 for t in times.values())


def test_minilm_embeddings_agree_across_backends(backend, minilm_llm):
    texts = ["What is the capital of France?", "Paris is the capital and largest city of France.",
             "Bananas are yellow.", "A much longer sentence about rivers, bridges and the history of Paris " * 3]
    vectors = {}
    for name in ("mkl", "onednn"):
        backend(name)
        vectors[name] = torch.tensor([o.outputs.embedding for o in minilm_llm.embed(texts, use_tqdm=False)])
    assert float((vectors["mkl"] - vectors["onednn"]).abs().max()) < 1e-5


def test_smollm2_next_token_agrees_across_backends(backend, smollm2_llm):
    tok = smollm2_llm.get_tokenizer()
    labels = [tok.encode(" yes", add_special_tokens=False)[0], tok.encode(" no", add_special_tokens=False)[0]]
    items = [" Paris is the capital of France.", " Bananas are yellow."]
    scores = {}
    for name in ("mkl", "onednn"):
        backend(name)
        out = smollm2_llm.generative_score("Is this about France? Answer:", items, labels, apply_softmax=False,
                                           use_tqdm=False)
        scores[name] = torch.tensor([o.outputs.score for o in out])
    assert float((scores["mkl"] - scores["onednn"]).abs().max()) < 1e-5


def test_padded_rows_are_few_fixed_sizes_with_little_padding():
    rows = range(16, 20_000)
    sizes = {gemm.padded_rows(n) for n in rows}
    assert len(sizes) < 140  # well inside oneDNN's 1,024-kernel cache, for each weight shape
    assert all(n <= gemm.padded_rows(n) <= n + max(7, n // 16) for n in rows)
    assert all(gemm.padded_rows(s) == s for s in sizes)  # a padded size needs no more padding


def test_the_encoder_gives_onednn_only_fixed_row_counts(backend, monkeypatch, minilm_llm):
    """Batches of every size reach the matmuls with padded row counts only, and padding changes no result."""
    backend("onednn")
    seen = set()
    real = gemm._onednn
    monkeypatch.setattr(gemm, "_onednn", lambda x, w, b: seen.add(x.shape[0]) or real(x, w, b))
    texts = [" ".join(["river"] * (1 + i % 13)) for i in range(40)]
    batched = torch.tensor([o.outputs.embedding for o in minilm_llm.embed(texts, use_tqdm=False)])
    alone = torch.tensor([minilm_llm.embed([t], use_tqdm=False)[0].outputs.embedding for t in texts[:8]])
    assert seen and all(gemm.padded_rows(n) == n for n in seen)
    assert float((batched[:8] - alone).abs().max()) < 1e-5


@pytest.mark.parametrize("name", ["mkl", "onednn"])
def test_fused_gelu_and_residual_add_match_the_unfused_maths(backend, name):
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(48, 384, generator=gen)
    weight = gemm.column_major(torch.randn(1536, 384, generator=gen) / 20)
    bias = torch.randn(1536, generator=gen)
    residual = torch.randn(48, 1536, generator=gen)
    exact = x.double() @ weight.double().t() + bias.double()
    backend(name)
    gelu = gemm.linear_gelu(x, weight, bias, out=torch.empty(48, 1536))
    added = gemm.linear_add(x, weight, bias, residual, out=torch.empty(48, 1536))
    assert float((gelu.double() - torch.nn.functional.gelu(exact)).abs().max()) < 2e-5
    assert float((added.double() - (exact + residual.double())).abs().max()) < 2e-5
