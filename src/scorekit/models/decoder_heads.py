"""A decoder's sequence classifier, applied to the final hidden state at each row's last real position.

Two kinds (vLLM's docs, "Converting a causal LM into a sequence classifier"; docs/models.md):
- `ScoreHead`: a *ForSequenceClassification checkpoint's own `score` Linear.
- `LabelTokenHead`: the `classifier_from_token` conversion. The logits are the model's own next-token logits
  of the label tokens (its LM-head rows, through the model's final-logit softcap when it has one, as the
  original reranker computes them); `from_2_way_softmax` with tokens [false, true] gives one logit
  l_true - l_false, so that sigmoid of it is P(true | {false, true}).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from scorekit.errors import ModelLoadError
from scorekit.models.backbone import DecoderBackbone
from scorekit.models.model_info import Conversion


@dataclass(frozen=True)
class ScoreHead:
    weight: Tensor  # [num_labels, H], float32

    def __call__(self, backbone: DecoderBackbone, last: Tensor) -> Tensor:
        return last.float() @ self.weight.T


@dataclass(frozen=True)
class LabelTokenHead:
    token_ids: tuple[int, ...]
    two_way: bool  # from_2_way_softmax: token_ids are [false, true]

    @classmethod
    def from_conversion(cls, conversion: Conversion, tokenizer) -> "LabelTokenHead":
        """Token strings to ids, case-sensitive (`"Yes"` is not `"yes"`), as vLLM converts them."""
        ids = tokenizer.convert_tokens_to_ids(conversion.tokens)
        unknown = [t for t, i in zip(conversion.tokens, ids) if i is None or i == tokenizer.unk_token_id]
        if unknown:
            raise ModelLoadError(f"classifier_from_token {unknown} are not tokens of this tokenizer (case-sensitive)")
        return cls(tuple(ids), conversion.method == "from_2_way_softmax")

    def __call__(self, backbone: DecoderBackbone, last: Tensor) -> Tensor:
        logits = backbone.logits(last, torch.tensor(self.token_ids, device=last.device)).float()
        return logits[:, 1:] - logits[:, :1] if self.two_way else logits

    def linear_rows(self, lm_head_weight: Tensor, softcap: float | None) -> Tensor:
        """The same classifier as plain Linear rows [num_labels, H] in float32 (what a converted
        *ForSequenceClassification checkpoint stores): W[ids], or W[true] - W[false] for the 2-way softmax.

        Only exact without a softcap: c·tanh(x/c) is not linear, and transformers' *ForSequenceClassification
        classes apply none, so a softcapped model is refused rather than written with a different score."""
        if softcap is not None:
            raise ModelLoadError(
                f"final_logit_softcapping={softcap}: the label-token scores pass through a softcap that a "
                "*ForSequenceClassification `score` Linear cannot express; load the causal LM with hf_overrides "
                "instead of converting it")
        rows = lm_head_weight.detach().float()[list(self.token_ids)]
        return (rows[1] - rows[0]).unsqueeze(0) if self.two_way else rows

DecoderHead = ScoreHead | LabelTokenHead
