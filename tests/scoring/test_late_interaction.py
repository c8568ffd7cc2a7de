"""Late-interaction (MaxSim) scores equal MaxSim computed by hand from transformers token embeddings."""

from __future__ import annotations

import shutil

import pytest
import torch
from safetensors.torch import save_file
from transformers import AutoModel, AutoTokenizer

from scorekit import LLM

QUERY = "Which city is the capital of France?"
DOCS = ["Paris is the capital of France.", "Honey bees live in colonies with one queen and many workers."]
TOL = 1e-5


def _hand_maxsim(folder, query, doc, projection=None):
    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModel.from_pretrained(str(folder), dtype=torch.float32).eval()

    def token_vectors(text):
        with torch.no_grad():
            hidden = model(**tok(text, return_tensors="pt")).last_hidden_state[0]
        if projection is not None:
            hidden = hidden @ projection.T
        return torch.nn.functional.normalize(hidden, dim=-1)

    q, d = token_vectors(query), token_vectors(doc)
    return float((q @ d.T).max(dim=1).values.sum())


@pytest.fixture(scope="module")
def minilm_late(minilm_dir):
    return LLM(str(minilm_dir), task="token_embed")


def test_maxsim_matches_hand_computation(minilm_late, minilm_dir):
    scores = [o.outputs.score for o in minilm_late.score(QUERY, DOCS, use_tqdm=False)]
    expected = [_hand_maxsim(minilm_dir, QUERY, d) for d in DOCS]
    assert scores == pytest.approx(expected, abs=TOL)
    assert scores[0] > scores[1]
    assert scores[0] > 1.0  # a sum over query tokens, not an average


def test_token_embeddings_cover_every_token(minilm_late):
    out = minilm_late.encode("The chef prepared a delicious meal.", pooling_task="token_embed", use_tqdm=False)[0]
    assert len(out.outputs.data) == len(out.prompt_token_ids)
    norms = out.outputs.data.norm(dim=-1)  # a tensor, as vLLM returns it
    assert torch.allclose(norms, torch.ones_like(norms), atol=1e-5)


def test_colbert_linear_projection(tmp_path, minilm_dir):
    """A stanford-ColBERT style checkpoint: encoder weights plus `linear.weight` projecting 384 → 32."""
    folder = tmp_path / "colbert"
    shutil.copytree(minilm_dir, folder, ignore=shutil.ignore_patterns("modules.json", "1_Pooling"))
    from scorekit.models.weights import load_folder_state_dict

    state = load_folder_state_dict(folder)
    torch.manual_seed(0)
    projection = torch.randn(32, 384) * 0.05
    state["linear.weight"] = projection
    save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))

    llm = LLM(str(folder))
    assert llm.info.task == "token_embed" and llm.info.score_type == "late-interaction"
    scores = [o.outputs.score for o in llm.score(QUERY, DOCS, use_tqdm=False)]
    expected = [_hand_maxsim(minilm_dir, QUERY, d, projection) for d in DOCS]
    assert scores == pytest.approx(expected, abs=TOL)
    assert len(llm.encode(QUERY, pooling_task="token_embed", use_tqdm=False)[0].outputs.data[0]) == 32


def test_colbert_model_refuses_pooled_embeddings(minilm_late):
    with pytest.raises(ValueError, match="Embedding API is not supported by this model"):
        minilm_late.encode("x", pooling_task="embed")


@pytest.mark.parametrize("one_query", [True, False])
def test_documents_in_many_chunks_score_the_same(minilm_late, monkeypatch, one_query):
    """Late interaction reduces documents to scores chunk by chunk (bounded memory); chunking changes nothing."""
    from scorekit.scoring import scorer

    docs = DOCS * 3 + ["A short one.", "Bees make honey from the nectar of flowers they visit."]
    queries = QUERY if one_query else [QUERY, "Where do bees live?"] * 4
    whole = [o.outputs.score for o in minilm_late.score(queries, docs, use_tqdm=False)]
    monkeypatch.setattr(scorer, "LATE_INTERACTION_CHUNK_TOKENS", 30)  # about two documents per chunk
    calls = []
    step = scorer.Step
    monkeypatch.setattr(scorer, "Step", lambda *a, **k: calls.append(1) or step(*a, **k))  # the plan's steps
    chunked = [o.outputs.score for o in minilm_late.score(queries, docs, use_tqdm=False)]
    assert len(calls) >= 4
    assert chunked == pytest.approx(whole, abs=1e-6)
