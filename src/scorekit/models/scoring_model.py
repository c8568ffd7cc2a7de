"""A loaded model seen as the four things scoring needs: pooled embeddings, token embeddings,
classifier logits and next-token logits. Inputs are right-padded batches; outputs are float32 per row.

This is where "no useless work" lives for decoders: only the last real position is projected, and only onto
the rows that are asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from scorekit.engine.media import Media, concat_tensors
from scorekit.models.activation_memory import ActivationMemory
from scorekit.models.backbone import DecoderBackbone, DualEncoderBackbone, EncoderBackbone
from scorekit.models.decoder_heads import DecoderHead
from scorekit.models.model_info import ModelInfo


@dataclass
class Batch:
    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    token_type_ids: torch.Tensor | None
    lengths: torch.Tensor  # [B] real lengths
    # Per row, the prompt's media (engine/media.py) or None; None for the whole batch when no row has any.
    # A model concatenates the rows' `Media.tensors` as its processor expects (engine.media.concat_tensors).
    media: tuple[Media | None, ...] | None = None

    @property
    def last_index(self) -> torch.Tensor:
        return self.lengths - 1


class ScoringModel:
    """Dispatches on the backbone's contract (models/backbone.py): an encoder, a decoder, or a dual-tower
    (text + image) bi-encoder."""

    def __init__(self, info: ModelInfo, backbone: EncoderBackbone | DecoderBackbone | DualEncoderBackbone,
                 device: torch.device,
                 dtype: torch.dtype, decoder_head: DecoderHead | None = None,
                 projection: torch.nn.Module | None = None, activation: ActivationMemory | None = None):
        if info.is_decoder != isinstance(backbone, DecoderBackbone):
            raise TypeError(f"{info.architecture}: is_decoder={info.is_decoder} but the backbone is "
                            f"{type(backbone).__name__}")
        self.info = info
        self.activation = activation  # per-row peak memory estimate: lets the engine cap batches by bytes
        self.backbone = backbone
        self.device = device
        self.dtype = dtype
        # A decoder's classifier: its `score` head or the label-token rows of its LM head (models/decoder_heads.py).
        self.decoder_head = decoder_head
        self.projection = projection  # ColBERT / Dense projection applied to token or pooled embeddings

    # -- shared pieces -----------------------------------------------------------------------------------
    @property
    def packs_padding(self) -> bool:
        """The backbone computes real tokens only (padding dropped before its first layer): the engine prices
        its batches by real tokens instead of rows × longest."""
        return self.backbone.packs_padding

    @property
    def vocab_size(self) -> int:
        """Valid token ids are 0..vocab_size-1."""
        return self.backbone.vocab_size

    @property
    def supports_prefix(self) -> bool:
        """The decoder can run a shared prefix once and continue every row from its cached K/V."""
        return isinstance(self.backbone, DecoderBackbone) and self.backbone.supports_prefix

    def encode_prefix(self, ids):
        return self._decoder().encode_prefix(torch.tensor(ids, dtype=torch.long, device=self.device))

    def _decoder(self) -> DecoderBackbone:
        if not isinstance(self.backbone, DecoderBackbone):
            raise TypeError(f"{self.info.architecture} is an encoder: it has no next-token logits or prefix cache")
        return self.backbone

    def _hidden(self, batch: Batch, prefix=None) -> torch.Tensor:
        if batch.media is not None and not self.backbone.accepts_media:
            raise TypeError(f"{self.info.architecture} is a text-only model: a batch with media reached it")
        if isinstance(self.backbone, DualEncoderBackbone):
            raise TypeError(f"{self.info.architecture} is a dual-tower bi-encoder: it computes embeddings only")
        if isinstance(self.backbone, DecoderBackbone):
            if prefix is not None:  # batch rows are continuations of the cached prefix
                return self.backbone.hidden_states_after_prefix(prefix, batch.input_ids, batch.attention_mask)
            if batch.media is not None:  # a vision-language decoder (models/vision/qwen_vl.py)
                return self.backbone.hidden_states(batch.input_ids, batch.attention_mask, media=batch.media)
            return self.backbone.hidden_states(batch.input_ids, batch.attention_mask)
        if batch.media is not None:  # ColPali / ColQwen2 (models/vision/colpali.py)
            return self.backbone.hidden_states(batch.input_ids, batch.attention_mask, batch.token_type_ids,
                                               media=batch.media)
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
        if isinstance(self.backbone, DualEncoderBackbone):
            pooled = self._two_towers(batch)
            return list(F.normalize(pooled, p=2, dim=-1) if normalize else pooled)
        pooled = self._pool(self._hidden(batch), batch)
        if self.projection is not None:
            pooled = self.projection(pooled)
        pooled = pooled.float()
        return list(F.normalize(pooled, p=2, dim=-1) if normalize else pooled)

    def _two_towers(self, batch: Batch) -> torch.Tensor:
        """A mixed batch of a dual-tower model: the text tower runs on the rows without media, the image tower
        on the rows with an image (their processor tensors concatenated), and the features go back in row order."""
        rows = batch.input_ids.shape[0]
        media = batch.media or (None,) * rows
        images = [i for i, m in enumerate(media) if m is not None]
        texts = [i for i, m in enumerate(media) if m is None]
        parts: list[tuple[list[int], torch.Tensor]] = []
        if texts:
            index = torch.tensor(texts, device=batch.input_ids.device)
            width = int(batch.lengths[index].max())  # the text rows' own padding, not the batch's
            parts.append((texts, self.backbone.text_embeds(batch.input_ids[index, :width],
                                                           batch.attention_mask[index, :width])))
        if images:
            wrong = {media[i].kind for i in images} - {"image"}
            if wrong:
                raise TypeError(f"{self.info.architecture}: no tower for media of kind {sorted(wrong)}")
            inputs = {name: t.to(self.device, dtype=self.dtype if t.is_floating_point() else t.dtype)
                      for name, t in concat_tensors([media[i] for i in images]).items()}
            parts.append((images, self.backbone.image_embeds(inputs)))
        out = torch.empty((rows, parts[0][1].shape[-1]), dtype=torch.float32, device=parts[0][1].device)
        for index, features in parts:
            out[index] = features.float()
        return out

    def token_embed(self, batch: Batch) -> list[torch.Tensor]:
        hidden = self._hidden(batch)
        if self.projection is not None:
            hidden = self.projection(hidden)
        hidden = hidden.float()
        return [hidden[i, :n] for i, n in enumerate(batch.lengths.tolist())]

    def token_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """A *ForTokenClassification head on one prompt's token states [tokens, H] (what `token_embed` gives):
        raw logits [tokens, num_labels], float32."""
        with torch.inference_mode():
            return self.backbone.token_logits(hidden.to(self.device, self.dtype)).float()

    def classify(self, batch: Batch, prefix=None) -> list[torch.Tensor]:
        """Raw logits [num_labels] per row (the activation is applied by the scoring layer)."""
        if isinstance(self.backbone, DecoderBackbone):
            if self.decoder_head is None:
                raise TypeError(f"{self.info.architecture} was loaded without a classifier")
            last = self._last(self._hidden(batch, prefix), batch)
            return list(self.decoder_head(self.backbone, last).float())
        return list(self.backbone.classify_tokens(batch.input_ids, batch.attention_mask, batch.token_type_ids).float())

    def next_token(self, batch: Batch, token_ids: tuple[int, ...], full_vocab_log_softmax: bool,
                   prefix=None) -> list[torch.Tensor]:
        """Next-token values of `token_ids` after each row: raw logits of those rows only, or (when the caller
        needs true probabilities) full-vocabulary log-softmax read at those ids. Only the last position is projected."""
        decoder = self._decoder()
        last = self._last(self._hidden(batch, prefix), batch)
        rows = list(token_ids)
        if not full_vocab_log_softmax:
            return list(decoder.logits(last, torch.tensor(rows, device=last.device)).float())
        logprobs = F.log_softmax(decoder.logits(last).float(), dim=-1)
        return list(logprobs[:, rows])
