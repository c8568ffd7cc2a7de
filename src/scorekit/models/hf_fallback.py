"""Backbones for architectures we do not implement ourselves: the `transformers` model class does the work.

They expose the same methods as our own EncoderModel/DecoderModel so the rest of scorekit cannot tell the
difference (only the speed differs). Nothing a user loads is refused merely because it is uncommon.
"""

from __future__ import annotations

import inspect

import torch


class HFEncoderBackbone(torch.nn.Module):
    def __init__(self, hf_model):
        super().__init__()
        self.hf_model = hf_model.eval().requires_grad_(False)
        self.has_classifier = hasattr(hf_model, "classifier") or hasattr(hf_model, "score")
        self.hidden_size = hf_model.config.hidden_size
        self.num_labels = getattr(hf_model.config, "num_labels", 1)
        # inspect.signature follows the decorators transformers wraps `forward` in (its __code__ does not).
        self._uses_types = "token_type_ids" in inspect.signature(hf_model.forward).parameters

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


class HFDecoderBackbone(torch.nn.Module):
    def __init__(self, hf_model):
        super().__init__()
        self.hf_model = hf_model.eval().requires_grad_(False)
        config = hf_model.config.get_text_config()
        self.hidden_size = config.hidden_size
        self.vocab_size = config.vocab_size
        head = hf_model.get_output_embeddings()
        self.lm_head_weight = head.weight if head is not None else None
        score = getattr(hf_model, "score", None)
        self.score_weight = score.weight if score is not None else None

    def hidden_states(self, input_ids, attention_mask):
        out = self.hf_model(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return out.hidden_states[-1]
