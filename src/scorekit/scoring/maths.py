"""Score formulas (SPEC §5): activations, cosine, MaxSim, label probabilities. All in float32."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def activate(logits: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "sigmoid":
        return torch.sigmoid(logits)
    if activation == "softmax":
        return torch.softmax(logits, dim=-1)
    if activation == "tanh":
        return torch.tanh(logits)
    return logits  # identity: e.g. ms-marco cross-encoders return raw logits


def normalize(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, p=2, dim=-1)


def cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.float(), b.float(), dim=-1, eps=1e-8))


def maxsim(query_tokens: torch.Tensor, doc_tokens: torch.Tensor) -> float:
    """ColBERT late interaction: Σ over query tokens of the best dot product with any document token."""
    return float((query_tokens.float() @ doc_tokens.float().T).max(dim=1).values.sum())


def label_probabilities(values: torch.Tensor, apply_softmax: bool) -> torch.Tensor:
    """Generative scoring (SPEC §5.5).

    apply_softmax: `values` are raw logits of the label tokens; renormalise over the labels only (the
    full-vocabulary log-softmax constant cancels, so the vocabulary projection is never needed).
    Otherwise `values` are full-vocabulary log-probabilities of the labels: p = exp(logprob).
    """
    if apply_softmax:
        return torch.softmax(values.float(), dim=-1)
    return values.float().exp()
