"""What ScoringModel needs from a backbone: one contract for encoders, one for decoders, one for dual-tower
(text and image) bi-encoders.

Our own code (models/encoder.py, models/decoder.py) and the `transformers` fallback (models/hf_fallback.py)
subclass these explicitly, so ScoringModel dispatches on the type instead of probing for methods, and a
backbone that forgets a method fails when it is built (TypeError: can't instantiate abstract class), not
halfway through a request.

Batches are right-padded: `input_ids` and `attention_mask` are [B, T] with 1 on real tokens.
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from torch import Tensor


class Backbone(ABC):
    """What the engine asks of every backbone."""

    @property
    @abstractmethod
    def packs_padding(self) -> bool:
        """True when padding never reaches a layer (the engine then prices batches by real tokens)."""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Rows of the input embedding: valid token ids are 0..vocab_size-1."""

    @property
    def accepts_media(self) -> bool:
        """Batches may carry media (engine/media.py) for this backbone; a text-only one refuses them."""
        return False


class EncoderBackbone(Backbone):
    """A bidirectional encoder (BERT family or any `transformers` encoder)."""

    @property
    @abstractmethod
    def has_classifier(self) -> bool:
        """The checkpoint carries a sequence-classification head (`classify_tokens` works)."""

    @abstractmethod
    def hidden_states(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None) -> Tensor:
        """Last hidden states [B, T, H]; values at padding positions are unspecified."""

    @abstractmethod
    def classify_tokens(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None) -> Tensor:
        """Raw logits [B, num_labels] of the checkpoint's classification head."""

    def token_logits(self, hidden: Tensor) -> Tensor:
        """Raw per-token logits of a *ForTokenClassification head, from `hidden_states` (our own encoder only:
        models/encoder.py; the loader refuses token classification elsewhere)."""
        raise TypeError(f"{type(self).__name__} has no token-classification head")


class DecoderBackbone(Backbone):
    """A causal language model, with its LM head and/or a sequence-classification `score` head."""

    @property
    @abstractmethod
    def lm_head_weight(self) -> Tensor | None:
        """[V, H] vocabulary projection (the embeddings when tied); None for a classifier-only checkpoint."""

    @property
    @abstractmethod
    def score_weight(self) -> Tensor | None:
        """[num_labels, H] of a *ForSequenceClassification checkpoint's `score` head, else None."""

    @property
    @abstractmethod
    def logit_softcap(self) -> float | None:
        """Gemma's final-logit softcap c (`logits = c·tanh(h·W/c)`), which `logits` applies; None when absent."""

    @property
    @abstractmethod
    def supports_prefix(self) -> bool:
        """`encode_prefix` / `hidden_states_after_prefix` work (shared-prefix K/V reuse)."""

    @abstractmethod
    def hidden_states(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Final-normed hidden states [B, T, H]; values at padding positions are unspecified."""

    @abstractmethod
    def logits(self, hidden: Tensor, rows: Tensor | None = None) -> Tensor:
        """Next-token logits of `hidden` [N, H]: over the whole vocabulary, or over the token ids `rows` only,
        exactly as the model's own LM head computes them (softcap included)."""

    @abstractmethod
    def encode_prefix(self, prefix_ids: Tensor):
        """Run a shared prefix [P] once and return its cache (only when `supports_prefix`)."""

    @abstractmethod
    def hidden_states_after_prefix(self, prefix, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """Hidden states [B, T, H] of continuations of a cached prefix (only when `supports_prefix`)."""


class DualEncoderBackbone(Backbone):
    """A two-tower model (CLIP, SigLIP): a text tower and an image tower that embed into one space, each input
    on its own. There is no joint encoding of text and image, no classifier and no prefix cache."""

    @property
    def packs_padding(self) -> bool:
        return False

    @property
    def accepts_media(self) -> bool:
        return True

    @abstractmethod
    def text_embeds(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        """The text tower's projected features [B, D] (not normalised), as the model's `get_text_features`."""

    @abstractmethod
    def image_embeds(self, pixel_inputs: dict[str, Tensor]) -> Tensor:
        """The image tower's projected features [B, D] (not normalised), as the model's `get_image_features`;
        `pixel_inputs` are the image processor's outputs for the B images (pixel_values, and e.g. Siglip2's
        pixel_attention_mask and spatial_shapes)."""
