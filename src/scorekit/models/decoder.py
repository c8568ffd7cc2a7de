"""Our own decoder for scoring: Llama, Qwen2, Qwen3 and Gemma3 (text), built from a transformers config
and a state dict in Hugging Face naming, with shared-prefix key/value reuse.

Why not the transformers class: a reranker prompt is `template + query + document + suffix`, and every
prompt of a request starts with the same template+query. `encode_prefix` runs that prefix once and keeps
each layer's keys/values (after RoPE); `hidden_states_after_prefix` then runs only the documents, each
attending to the cached prefix plus its own causal part. The model returns final-normed hidden states;
projecting the few positions and label rows needed is the caller's job (`logits` helps).

Batches are RIGHT-padded: every row's positions are 0..T-1 (or P..P+T-1 after a prefix), pad keys are
masked out, and pad positions produce garbage that never reaches a real position.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scorekit.errors import ModelLoadError

from . import gemm
from .backbone import DecoderBackbone
from .decoder_layers import (
    Attention,
    AttentionSpec,
    DecoderLayer,
    GatedMLP,
    Linear,
    RMSNorm,
    Rotary,
    attention_mask,
    default_inv_freq,
)
from .strict_weights import StateReader, Unread

__all__ = ["SUPPORTED_MODEL_TYPES", "DecoderModel", "PrefixCache"]

SUPPORTED_MODEL_TYPES = frozenset({"llama", "qwen2", "qwen3", "gemma3_text"})
SLIDING = "sliding_attention"
FULL = "full_attention"
_LOGIT_BLOCK = 16384  # vocabulary rows cast to float32 at a time by `logits` on a bf16/fp16 model


@dataclass
class PrefixCache:
    """Keys/values of a shared prefix, per layer, each [1, num_kv_heads, kept, head_dim] after RoPE.

    For sliding-window layers only the last `sliding_window - 1` prefix positions are kept (no later token
    can see further back); `starts[i]` is the absolute position of the first kept key of layer i.
    `hidden_states` [P, H] are the prefix's own final-normed hidden states.
    """

    keys: list[Tensor]
    values: list[Tensor]
    starts: list[int]
    length: int
    hidden_states: Tensor

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


# ------------------------------------------------------------------------------------------- config


def text_config(config):
    """The text part of a config: a Gemma3 multimodal config yields its `text_config`."""
    if getattr(config, "model_type", None) == "gemma3" and getattr(config, "text_config", None) is not None:
        return config.text_config
    return config


def _rotary_for(config, layer_type: str, head_dim: int) -> Rotary:
    params = getattr(config, "rope_parameters", None)
    if params is None:  # very old configs: plain rope_theta
        params = {"rope_type": "default", "rope_theta": getattr(config, "rope_theta", 10000.0)}
    per_type = isinstance(params.get(layer_type), dict)
    p = params[layer_type] if per_type else params
    rope_type = p.get("rope_type", p.get("type", "default"))
    if float(p.get("partial_rotary_factor", 1.0) or 1.0) != 1.0:
        raise NotImplementedError("partial_rotary_factor != 1 is not supported by scorekit's decoder")
    if rope_type == "default":
        return Rotary(default_inv_freq(float(p["rope_theta"]), head_dim))
    if rope_type in ("linear", "llama3", "yarn"):
        from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

        inv_freq, scaling = ROPE_INIT_FUNCTIONS[rope_type](config, None, layer_type=layer_type if per_type else None)
        return Rotary(inv_freq, scaling)
    raise NotImplementedError(
        f"RoPE type {rope_type!r} is not supported by scorekit's decoder (supported: default, linear, llama3, yarn)"
    )


# Checkpoint tensors that may stay unread, and why no score depends on them.
_MAY_STAY_UNREAD = (
    Unread(r"(.*\.)?rotary_emb\.inv_freq",
           "a buffer older transformers saved; the RoPE frequencies are recomputed from the config"),
    Unread(r"(model\.)?(vision_tower|multi_modal_projector)\..*",
           "the image tower of a multimodal Gemma3 checkpoint: scorekit's decoder scores text, and a text "
           "forward never reaches it"),
)


class _Weights:
    """Reads tensors out of a state dict, casting to the model dtype, and remembers which it read (strict
    loading: models/strict_weights.py). A missing key is a ModelLoadError naming it."""

    def __init__(self, state_dict: dict[str, Tensor], dtype: torch.dtype, prefix: str, what: str):
        self.sd = StateReader(state_dict, what)
        self.dtype = dtype
        self.prefix = prefix

    def __contains__(self, key: str) -> bool:
        return key in self.sd

    def __call__(self, name: str, base: bool = True) -> Tensor:
        key = self.prefix + name if base else name
        return self.sd[key].detach().to(self.dtype).contiguous()

    def cat(self, names: list[str]) -> Tensor:
        return torch.cat([self(n) for n in names], dim=0)


def _untied_lm_head(w: _Weights, tied: bool, embed: Tensor) -> Tensor | None:
    """The checkpoint's own `lm_head.weight`, or None when the head is the embedding matrix (tied) or absent
    (a *ForSequenceClassification checkpoint, which has a `score` head instead)."""
    if not tied:
        if "lm_head.weight" in w:
            return w("lm_head.weight", base=False)
        if "score.weight" in w:
            return None
        return w("lm_head.weight", base=False)  # the ModelLoadError naming the missing head
    if "lm_head.weight" in w:
        # Tied, yet stored too (some exporters write both). Safe to leave unread only when it IS the embedding
        # matrix; a different matrix means the config and the weights disagree about the head.
        stored = w("lm_head.weight", base=False)
        if not torch.equal(stored, embed):
            raise ModelLoadError("tie_word_embeddings is true but the checkpoint's lm_head.weight differs from "
                                 "model.embed_tokens.weight: which head is meant is ambiguous")
    return None


def _base_prefix(state_dict: dict[str, Tensor]) -> str:
    for prefix in ("model.", "model.language_model.", "language_model.model.", ""):
        if prefix + "embed_tokens.weight" in state_dict:
            return prefix
    raise ModelLoadError("decoder: the checkpoint is missing weight 'model.embed_tokens.weight'")


# --------------------------------------------------------------------------------------------- model


class DecoderModel(nn.Module, DecoderBackbone):
    """Causal decoder returning final-normed hidden states. Build it with `from_config_and_state_dict`."""

    hidden_size: int
    # Every row is computed to the batch's longest length (the pad positions are masked, not dropped).
    packs_padding = False
    supports_prefix = True

    def __init__(self, config, embed: Tensor, layers: list[DecoderLayer], norm: RMSNorm, rotary: dict[str, Rotary],
                 lm_head: Tensor | None, tied: bool, score: Tensor | None, embed_scale: float | None,
                 dtype: torch.dtype):
        """Internal: takes already-built parts. Use `from_config_and_state_dict`."""
        super().__init__()
        self.config = config
        self.model_type = config.model_type
        self.hidden_size = int(config.hidden_size)
        self.embed_tokens = nn.Parameter(embed, requires_grad=False)
        self.layers = nn.ModuleList(layers)
        self.norm = norm
        self.rotary = nn.ModuleDict(rotary)
        self._lm_head = nn.Parameter(lm_head, requires_grad=False) if lm_head is not None else None
        self.tied_lm_head = tied
        self._score = nn.Parameter(score, requires_grad=False) if score is not None else None
        # Gemma multiplies embeddings by sqrt(hidden) already cast to the model dtype, as HF does.
        scale = torch.tensor(embed_scale).to(dtype) if embed_scale is not None else None
        self.register_buffer("embed_scale", scale, persistent=False)
        self.sliding_window = getattr(config, "sliding_window", None)
        self.final_logit_softcapping = getattr(config, "final_logit_softcapping", None)
        self.layer_types = [layer.layer_type for layer in layers]

    # ----------------------------------------------------------------------------------- building

    @classmethod
    def from_config_and_state_dict(cls, config, state_dict: dict[str, Tensor], dtype=torch.float32) -> "DecoderModel":
        config = text_config(config)
        family = getattr(config, "model_type", None)
        if family not in SUPPORTED_MODEL_TYPES:
            raise NotImplementedError(
                f"model_type {family!r} is not supported by scorekit's decoder (supported: {sorted(SUPPORTED_MODEL_TYPES)})"
            )
        gemma = family == "gemma3_text"
        if gemma and getattr(config, "use_bidirectional_attention", False):
            raise NotImplementedError("Gemma3 with use_bidirectional_attention is not supported by scorekit's decoder")
        w = _Weights(state_dict, dtype, _base_prefix(state_dict), f"{family} decoder")

        n_heads = int(config.num_attention_heads)
        n_kv = int(getattr(config, "num_key_value_heads", None) or n_heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // n_heads)
        eps = float(config.rms_norm_eps)
        n_layers = int(config.num_hidden_layers)
        layer_types = list(getattr(config, "layer_types", None) or [FULL] * n_layers)
        if getattr(config, "sliding_window", None) is None:
            layer_types = [FULL] * n_layers
        attn_bias = bool(getattr(config, "attention_bias", False))
        qkv_bias, o_bias = (True, False) if family == "qwen2" else (attn_bias, attn_bias)
        mlp_bias = bool(getattr(config, "mlp_bias", False))
        qk_norm = family in ("qwen3", "gemma3_text")
        act = config.hidden_activation if gemma else config.hidden_act
        scaling = float(config.query_pre_attn_scalar) ** -0.5 if gemma else head_dim**-0.5
        # Gemma3's attn_logit_softcapping is stored but never applied by transformers (Gemma3 relies on q/k
        # norms instead); we match that. Its final_logit_softcapping is applied in `logits`.
        spec = AttentionSpec(n_heads, n_kv, head_dim, scaling)

        # Gemma3 keeps separate RoPE per layer type (local base freq on sliding layers); others share one.
        rope_keys = [lt if gemma else "default" for lt in layer_types]
        rotary = {key: _rotary_for(config, lt, head_dim) for key, lt in zip(rope_keys, layer_types)}

        def norm(name: str) -> RMSNorm:
            return RMSNorm(w(name), eps, gemma=gemma)

        layers = []
        for i in range(n_layers):
            a, m = f"layers.{i}.self_attn.", f"layers.{i}.mlp."
            qkv = Linear(
                w.cat([a + "q_proj.weight", a + "k_proj.weight", a + "v_proj.weight"]),
                w.cat([a + "q_proj.bias", a + "k_proj.bias", a + "v_proj.bias"]) if qkv_bias else None,
            )
            o_proj = Linear(w(a + "o_proj.weight"), w(a + "o_proj.bias") if o_bias else None)
            attn = Attention(
                spec, qkv, o_proj,
                norm(a + "q_norm.weight") if qk_norm else None,
                norm(a + "k_norm.weight") if qk_norm else None,
            )
            mlp = GatedMLP(
                Linear(
                    w.cat([m + "gate_proj.weight", m + "up_proj.weight"]),
                    w.cat([m + "gate_proj.bias", m + "up_proj.bias"]) if mlp_bias else None,
                ),
                Linear(w(m + "down_proj.weight"), w(m + "down_proj.bias") if mlp_bias else None),
                act,
            )
            p = f"layers.{i}."
            layer = DecoderLayer(
                attn, mlp,
                norm(p + "input_layernorm.weight"),
                norm(p + "post_attention_layernorm.weight"),
                norm(p + "pre_feedforward_layernorm.weight") if gemma else None,
                norm(p + "post_feedforward_layernorm.weight") if gemma else None,
                layer_type=layer_types[i],
                rope_key=rope_keys[i],
            )
            layers.append(layer)

        embed = w("embed_tokens.weight")
        tied = bool(getattr(config, "tie_word_embeddings", False))
        lm_head = _untied_lm_head(w, tied, embed)
        score = w("score.weight", base=False) if "score.weight" in w else None
        model = cls(
            config, embed, layers, norm("norm.weight"), rotary, lm_head, tied, score,
            float(config.hidden_size) ** 0.5 if gemma else None, dtype,
        )
        w.sd.check_all_read(_MAY_STAY_UNREAD)
        if dtype == torch.bfloat16:
            gemm.check_cpu_bfloat16()  # the same warning as the encoder's where bf16 matmuls are emulated
        model.requires_grad_(False)
        return model.eval()

    # ------------------------------------------------------------------------------------ heads

    @property
    def device(self) -> torch.device:
        return self.embed_tokens.device

    @property
    def dtype(self) -> torch.dtype:
        return self.embed_tokens.dtype

    @property
    def vocab_size(self) -> int:
        return int(self.embed_tokens.shape[0])

    @property
    def logit_softcap(self) -> float | None:
        return self.final_logit_softcapping

    @property
    def lm_head_weight(self) -> Tensor | None:
        """[V, H] vocabulary projection (the embedding matrix when tied); None for classifier-only checkpoints."""
        if self._lm_head is not None:
            return self._lm_head
        return self.embed_tokens if self.tied_lm_head else None

    @property
    def score_weight(self) -> Tensor | None:
        """[num_labels, H] from a *ForSequenceClassification checkpoint's `score.weight`, else None."""
        return self._score

    def logits(self, hidden: Tensor, rows: Tensor | None = None) -> Tensor:
        """`hidden @ W.T` over the vocabulary, or over `rows` (token ids) only, with Gemma's final softcap."""
        weight = self.lm_head_weight
        if weight is None:
            raise ValueError("this checkpoint has no language-model head (it is a sequence classifier)")
        if rows is not None:
            weight = weight.index_select(0, rows.to(weight.device))
        if weight.dtype == torch.float32:
            out = gemm.linear(hidden, weight)
        else:
            # bf16/fp16 models: the logits in float32 (a bf16 logit of ~16 is rounded to a step of 0.0625, which
            # a log-softmax or a label difference would carry). The label rows are cast whole; the full
            # vocabulary in blocks, to avoid an fp32 copy of the whole head.
            h = hidden.float()
            out = torch.cat([gemm.linear(h, weight[i:i + _LOGIT_BLOCK].float())
                             for i in range(0, weight.shape[0], _LOGIT_BLOCK)], dim=-1)
        cap = self.final_logit_softcapping
        return out if cap is None else torch.tanh(out / cap) * cap

    # ---------------------------------------------------------------------------------- forward

    def _embed(self, input_ids: Tensor) -> Tensor:
        x = F.embedding(input_ids, self.embed_tokens)
        return x * self.embed_scale if self.embed_scale is not None else x

    def _run(self, input_ids: Tensor, key_valid: Tensor, start: int, prefix: PrefixCache | None = None,
             keep_kv: bool = False):
        """Run all layers over `input_ids` [B, T] at positions start..start+T-1.

        key_valid [B, T] marks the real tokens; prefix keys (when given) are all real.
        """
        device = self.device
        input_ids = input_ids.to(device)
        b, t = input_ids.shape
        positions = torch.arange(start, start + t, device=device)
        x = self._embed(input_ids)
        rope = {key: rot(positions, x.dtype) for key, rot in self.rotary.items()}

        masks: dict[tuple[str, int], Tensor] = {}

        def mask_for(layer_type: str, key_start: int) -> Tensor:
            cache_key = (layer_type, key_start)
            if cache_key not in masks:
                key_pos = torch.arange(key_start, start + t, device=device)
                valid = key_valid
                if key_start < start:
                    valid = torch.cat((valid.new_ones(b, start - key_start), valid), dim=1)
                window = self.sliding_window if layer_type == SLIDING else None
                if window is not None and start + t <= window:
                    window = None  # the window cannot bite: share the full-attention mask
                    cache_key = (FULL, key_start)
                    if cache_key in masks:
                        return masks[cache_key]
                masks[cache_key] = attention_mask(valid, positions, key_pos, window)
            return masks[cache_key]

        kvs = []
        for i, layer in enumerate(self.layers):
            if prefix is None:
                past, key_start = None, start
            else:
                past, key_start = (prefix.keys[i], prefix.values[i]), prefix.starts[i]
            cos, sin = rope[layer.rope_key]
            x, kv = layer(x, cos, sin, mask_for(layer.layer_type, key_start), past)
            if keep_kv:
                kvs.append(kv)
        return self.norm(x), kvs

    @torch.no_grad()
    def hidden_states(self, input_ids: Tensor, attention_mask: Tensor | None = None) -> Tensor:
        """Final-normed hidden states [B, T, H] of a right-padded batch (pad positions hold garbage)."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        _check_batch(input_ids, attention_mask)
        hidden, _ = self._run(input_ids, attention_mask.to(self.device).bool(), 0)
        return hidden

    @torch.no_grad()
    def encode_prefix(self, prefix_ids: Tensor) -> PrefixCache:
        """Run a shared prefix [P] once and keep every layer's keys/values for `hidden_states_after_prefix`."""
        ids = prefix_ids.reshape(1, -1)
        p = ids.shape[1]
        if p == 0:
            raise ValueError("encode_prefix needs at least one token")
        hidden, kvs = self._run(ids, torch.ones(1, p, dtype=torch.bool, device=self.device), 0, keep_kv=True)
        keys, values, starts = [], [], []
        for layer, (k, v) in zip(self.layers, kvs):
            keep = p
            if layer.layer_type == SLIDING and self.sliding_window is not None:
                keep = min(p, int(self.sliding_window) - 1)
            keys.append(k[:, :, p - keep:].contiguous())
            values.append(v[:, :, p - keep:].contiguous())
            starts.append(p - keep)
        return PrefixCache(keys, values, starts, p, hidden[0])

    @torch.no_grad()
    def hidden_states_after_prefix(self, prefix: PrefixCache, input_ids: Tensor,
                                   attention_mask: Tensor | None = None) -> Tensor:
        """Hidden states [B, T, H] of right-padded continuations at positions P..P+T-1 after a cached prefix."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        _check_batch(input_ids, attention_mask)
        hidden, _ = self._run(input_ids, attention_mask.to(self.device).bool(), prefix.length, prefix=prefix)
        return hidden


def _check_batch(input_ids: Tensor, attention_mask: Tensor) -> None:
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be [batch, tokens], got shape {tuple(input_ids.shape)}")
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} does not match input_ids {tuple(input_ids.shape)}"
        )
