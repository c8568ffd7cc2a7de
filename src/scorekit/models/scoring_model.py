"""A loaded model seen as the four things scoring needs: pooled embeddings, token embeddings,
classifier logits and next-token logits. Inputs are right-padded batches; outputs are float32 per row.

This is where "no useless work" lives for decoders: only the last real position is projected, and only onto
the rows that are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from scorekit.models.activation_memory import ActivationMemory
from scorekit.models.model_info import ModelInfo


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    token_type_ids: torch.Tensor | None
    lengths: torch.Tensor  # [B] real lengths

    @property
    def last_index(self) -> torch.Tensor:
        return self.lengths - 1


class ScoringModel:
    def __init__(self, info: ModelInfo, backbone, device: torch.device, dtype: torch.dtype,
                 classifier_weight: torch.Tensor | None = None, projection: torch.nn.Linear | None = None,
                 activation: ActivationMemory | None = None):
        self.info = info
        self.activation = activation  # per-row peak memory estimate: lets the engine cap batches by bytes
        self.backbone = backbone
        self.device = device
        self.dtype = dtype
        # Decoder classifiers: rows of the LM head (conversion) or a `score` head; [num_labels, H].
        self.classifier_weight = classifier_weight
        self.projection = projection  # ColBERT / Dense projection applied to token or pooled embeddings

    # -- shared pieces -----------------------------------------------------------------------------------
    @property
    def supports_prefix(self) -> bool:
        """Our own decoder can run a shared prefix once and continue every row from its cached K/V."""
        return self.info.is_decoder and hasattr(self.backbone, "encode_prefix")

    def encode_prefix(self, ids):
        return self.backbone.encode_prefix(torch.tensor(ids, dtype=torch.long, device=self.device))

    def _hidden(self, batch: Batch, prefix=None) -> torch.Tensor:
        if self.info.is_decoder:
            if prefix is not None:  # batch rows are continuations of the cached prefix
                return self.backbone.hidden_states_after_prefix(prefix, batch.input_ids, batch.attention_mask)
            return self.backbone.hidden_states(batch.input_ids, batch.attention_mask)
        return self.backbone.hidden_states(batch.input_ids, batch.attention_mask, batch.token_type_ids)

    def _last(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), batch.last_index]

    def _pool(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.info.pooling == "MEAN":
            mask = batch.attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
        if self.info.pooling == "LAST":
            return self._last(hidden, batch)
        return hidden[:, 0]

    # -- tasks -------------------------------------------------------------------------------------------
    def embed(self, batch: Batch, normalize: bool = False) -> list[torch.Tensor]:
        pooled = self._pool(self._hidden(batch), batch)
        if self.projection is not None:
            pooled = self.projection(pooled)
        pooled = pooled.float()
        return list(F.normalize(pooled, p=2, dim=-1) if normalize else pooled)

    def token_embed(self, batch: Batch) -> list[torch.Tensor]:
        hidden = self._hidden(batch)
        if self.projection is not None:
            hidden = self.projection(hidden)
        hidden = hidden.float()
        return [hidden[i, :n] for i, n in enumerate(batch.lengths.tolist())]

    def classify(self, batch: Batch, prefix=None) -> list[torch.Tensor]:
        """Raw logits [num_labels] per row (the activation is applied by the scoring layer)."""
        if self.classifier_weight is not None:
            last = self._last(self._hidden(batch, prefix), batch)
            return list((last @ self.classifier_weight.T).float())
        if hasattr(self.backbone, "classify_tokens"):
            return list(self.backbone.classify_tokens(batch.input_ids, batch.attention_mask, batch.token_type_ids).float())
        return list(self.backbone.classify(self._hidden(batch)).float())

    def next_token(self, batch: Batch, token_ids: tuple[int, ...], full_vocab_log_softmax: bool,
                   prefix=None) -> list[torch.Tensor]:
        """Next-token values of `token_ids` after each row: raw logits of those rows only, or (when the caller
        needs true probabilities) full-vocabulary log-softmax read at those ids. Only the last position is projected."""
        last = self._last(self._hidden(batch, prefix), batch)
        rows = list(token_ids)
        if not full_vocab_log_softmax:
            return list(self._logits(last, rows).float())
        logprobs = F.log_softmax(self._logits(last, None).float(), dim=-1)
        return list(logprobs[:, rows])

    def _logits(self, hidden: torch.Tensor, rows: list[int] | None) -> torch.Tensor:
        if hasattr(self.backbone, "logits"):  # our decoder: applies Gemma's final-logit softcap when configured
            return self.backbone.logits(hidden, torch.tensor(rows, device=hidden.device) if rows is not None else None)
        weight = self.backbone.lm_head_weight
        return hidden @ (weight[rows] if rows is not None else weight).T
