"""Backbones for architectures we do not implement ourselves: the `transformers` model class does the work.

They implement the same contracts as our own EncoderModel/DecoderModel (models/backbone.py), so the rest of
scorekit cannot tell the difference (only the speed differs). Nothing a user loads is refused merely because
it is uncommon; what is refused is a load that would not be exact:
- `load_strict` refuses a checkpoint that leaves a weight randomly initialised or a tensor unused;
- `HFDecoderBackbone.check_logits` refuses a causal LM whose own logits our `hidden @ W_lm` (+ softcap)
  does not reproduce (a model that scales or post-processes its logits in a way we do not know).
"""

from __future__ import annotations

import inspect

import torch
from torch import Tensor
from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

from scorekit.errors import ModelLoadError
from scorekit.models.backbone import DecoderBackbone, EncoderBackbone
from scorekit.models.strict_weights import check_loading_report

# `check_logits` tolerance, relative to the largest logit: fp32 rounding of the same matmul done in a
# different order is ~1e-6 of the scale; a missed logit scale or softcap is of the order of the logits.
_LOGIT_RTOL = 1e-4


def load_strict(auto_class, folder: str, read_elsewhere: set[str] = frozenset(), **kwargs):
    """`auto_class.from_pretrained`, refusing missing, unexpected or resized weights (models/strict_weights.py).
    `read_elsewhere`: checkpoint keys scorekit reads itself (a ColBERT projection), so not unexpected."""
    model, report = auto_class.from_pretrained(folder, output_loading_info=True, **kwargs)
    unexpected = set(report.get("unexpected_keys", ())) - set(read_elsewhere)
    check_loading_report(type(model).__name__, report.get("missing_keys", ()), unexpected,
                         report.get("mismatched_keys", ()))
    return model


class HFEncoderBackbone(torch.nn.Module, EncoderBackbone):
    packs_padding = False  # transformers runs every padded position through every layer

    def __init__(self, hf_model):
        super().__init__()
        self.hf_model = hf_model.eval().requires_grad_(False)
        self._has_classifier = type(hf_model).__name__ in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.values()
        self.hidden_size = hf_model.config.hidden_size
        self.num_labels = getattr(hf_model.config, "num_labels", 1)
        # inspect.signature follows the decorators transformers wraps `forward` in (its __code__ does not).
        self._uses_types = "token_type_ids" in inspect.signature(hf_model.forward).parameters

    @property
    def has_classifier(self) -> bool:
        return self._has_classifier

    @property
    def vocab_size(self) -> int:
        return self.hf_model.get_input_embeddings().num_embeddings

    def _inputs(self, input_ids, attention_mask, token_type_ids):
        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if token_type_ids is not None and self._uses_types:
            inputs["token_type_ids"] = token_type_ids
        return inputs

    def hidden_states(self, input_ids, attention_mask, token_type_ids=None):
        out = self.hf_model(**self._inputs(input_ids, attention_mask, token_type_ids), output_hidden_states=True)
        return out.hidden_states[-1]

    def classify_tokens(self, input_ids, attention_mask, token_type_ids=None):
        return self.hf_model(**self._inputs(input_ids, attention_mask, token_type_ids)).logits


class HFDecoderBackbone(torch.nn.Module, DecoderBackbone):
    """Any `transformers` causal LM (or its *ForSequenceClassification / base-model class).

    Hidden states come from the base model (final norm applied), so no full-vocabulary logits are computed
    for every position; only the positions and rows the caller asks for are projected (`logits`).
    """

    packs_padding = False  # transformers runs every padded position through every layer
    supports_prefix = False  # no shared-prefix K/V reuse on the transformers class

    def __init__(self, hf_model):
        super().__init__()
        self.hf_model = hf_model.eval().requires_grad_(False)
        config = hf_model.config.get_text_config()
        self.hidden_size = config.hidden_size
        self._softcap = getattr(config, "final_logit_softcapping", None)
        head = hf_model.get_output_embeddings()
        self._lm_head = head.weight if head is not None else None
        score = getattr(hf_model, "score", None)
        self._score = score.weight if score is not None else None

    @property
    def vocab_size(self) -> int:
        return self.hf_model.get_input_embeddings().num_embeddings

    @property
    def lm_head_weight(self) -> Tensor | None:
        return self._lm_head

    @property
    def score_weight(self) -> Tensor | None:
        return self._score

    @property
    def logit_softcap(self) -> float | None:
        return self._softcap

    def hidden_states(self, input_ids, attention_mask):
        return self.hf_model.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def logits(self, hidden: Tensor, rows: Tensor | None = None) -> Tensor:
        weight = self._lm_head
        if weight is None:
            raise ValueError("this checkpoint has no language-model head (it is a sequence classifier)")
        if rows is not None:
            weight = weight.index_select(0, rows.to(weight.device))
        out = hidden @ weight.T
        cap = self._softcap
        return out if cap is None else torch.tanh(out / cap) * cap

    def encode_prefix(self, prefix_ids):
        raise NotImplementedError("the transformers fallback has no shared-prefix reuse (supports_prefix is False)")

    def hidden_states_after_prefix(self, prefix, input_ids, attention_mask):
        raise NotImplementedError("the transformers fallback has no shared-prefix reuse (supports_prefix is False)")

    @torch.no_grad()
    def check_logits(self) -> None:
        """Refuse the model unless `logits(hidden_states(...))` reproduces its own forward's logits on a probe.

        Every score read from the LM head (generative scoring, the classifier_from_token conversion) goes
        through `logits`, which knows one post-processing step (Gemma's final softcap). A model that scales
        its logits some other way (e.g. Cohere's logit_scale, Granite's logits_scaling) would be scored
        wrongly without an error; this one forward of four tokens finds out at load time instead.
        """
        vocab = self.vocab_size
        ids = torch.tensor([[1, 2, 3, 4]], dtype=torch.long).clamp(max=vocab - 1).to(self._lm_head.device)
        mask = torch.ones_like(ids)
        want = self.hf_model(input_ids=ids, attention_mask=mask).logits[0].float()
        got = self.logits(self.hidden_states(ids, mask)[0]).float()
        diff = (got - want).abs().max().item()
        scale = want.abs().max().item()
        if not diff <= _LOGIT_RTOL * max(scale, 1.0):
            raise ModelLoadError(
                f"{type(self.hf_model).__name__}: its logits are not hidden_states @ lm_head"
                f"{' with the final softcap' if self._softcap else ''} (max difference {diff:.3g} on logits of "
                f"scale {scale:.3g}); scorekit cannot read label-token scores from it exactly")
