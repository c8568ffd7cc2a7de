"""Building blocks of the decoder in `decoder.py`: norms, rotary embeddings, attention, MLP, one layer.

Each block is built straight from the weights it owns (no random init, no `reset_parameters`), with q/k/v
and gate/up fused into one matmul each. The arithmetic follows transformers 5.23's Llama / Qwen2 / Qwen3 /
Gemma3 modeling files step by step, including where they upcast to float32, so that fp32 results agree to
rounding and bf16/fp16 results round the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from scorekit.models import gemm


def _frozen(t: Tensor) -> nn.Parameter:
    return nn.Parameter(t, requires_grad=False)


class Linear(nn.Module):
    """`y = x W^T + b` over a weight we already have (no init pass, optional bias), on the faster fp32 CPU
    matmul (gemm.py), with the weight stored column-major for it."""

    def __init__(self, weight: Tensor, bias: Tensor | None = None):
        super().__init__()
        self.weight = _frozen(gemm.column_major(weight))
        self.bias = _frozen(bias) if bias is not None else None

    def forward(self, x: Tensor) -> Tensor:
        return gemm.linear(x, self.weight, self.bias)


class RMSNorm(nn.Module):
    """RMSNorm in float32. Llama style: `w * norm(x).to(dtype)`; Gemma style: `(norm(x) * (1 + w)).to(dtype)`."""

    def __init__(self, weight: Tensor, eps: float, gemma: bool = False):
        super().__init__()
        self.weight = _frozen(weight)
        self.eps = float(eps)
        self.gemma = gemma

    def forward(self, x: Tensor) -> Tensor:
        dtype = x.dtype
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        if self.gemma:
            return (h * (1.0 + self.weight.float())).to(dtype)
        return self.weight * h.to(dtype)


# ----------------------------------------------------------------------------------------------- rotary


class Rotary(nn.Module):
    """Rotary position embedding for one set of inverse frequencies (one per layer type in Gemma3)."""

    def __init__(self, inv_freq: Tensor, attention_scaling: float = 1.0):
        super().__init__()
        self.register_buffer("inv_freq", inv_freq.float(), persistent=False)
        self.attention_scaling = float(attention_scaling)

    def forward(self, positions: Tensor, dtype: torch.dtype) -> tuple[Tensor, Tensor]:
        """cos, sin of shape [T, head_dim] for integer `positions` [T], computed in float32 like HF."""
        freqs = positions.float()[:, None] * self.inv_freq.float()[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        return (emb.cos() * self.attention_scaling).to(dtype), (emb.sin() * self.attention_scaling).to(dtype)


def default_inv_freq(theta: float, head_dim: int) -> Tensor:
    return 1.0 / (theta ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim))


def rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """x: [B, H, T, D]; cos/sin: [T, D]."""
    return x * cos + rotate_half(x) * sin


# ------------------------------------------------------------------------------------------ attention


@dataclass
class AttentionSpec:
    num_heads: int
    num_kv_heads: int
    head_dim: int
    scaling: float


class Attention(nn.Module):
    def __init__(
        self,
        spec: AttentionSpec,
        qkv: Linear,
        o_proj: Linear,
        q_norm: RMSNorm | None = None,
        k_norm: RMSNorm | None = None,
    ):
        super().__init__()
        self.spec = spec
        self.qkv = qkv
        self.o_proj = o_proj
        self.q_norm = q_norm
        self.k_norm = k_norm
        self.q_size = spec.num_heads * spec.head_dim
        self.kv_size = spec.num_kv_heads * spec.head_dim

    def forward(
        self,
        x: Tensor,
        cos: Tensor,
        sin: Tensor,
        mask: Tensor,
        past: tuple[Tensor, Tensor] | None = None,
    ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """x: [B, T, H]; mask: bool [B, 1, T, S] (True = may attend), S = past length + T.

        Returns the attention output and this call's own keys/values (after RoPE), [B, Hkv, T, D] each.
        """
        spec = self.spec
        b, t, _ = x.shape
        q, k, v = self.qkv(x).split([self.q_size, self.kv_size, self.kv_size], dim=-1)
        q = q.view(b, t, spec.num_heads, spec.head_dim)
        k = k.view(b, t, spec.num_kv_heads, spec.head_dim)
        v = v.view(b, t, spec.num_kv_heads, spec.head_dim).transpose(1, 2)
        if self.q_norm is not None:
            q = self.q_norm(q)
            k = self.k_norm(k)
        q = apply_rotary(q.transpose(1, 2), cos, sin)
        k = apply_rotary(k.transpose(1, 2), cos, sin)
        own = (k, v)
        if past is not None:
            pk, pv = past
            k = torch.cat((pk.expand(b, -1, -1, -1), k), dim=2)
            v = torch.cat((pv.expand(b, -1, -1, -1), v), dim=2)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=spec.scaling, enable_gqa=spec.num_heads != spec.num_kv_heads
        )
        out = out.transpose(1, 2).reshape(b, t, self.q_size)
        return self.o_proj(out), own


# ------------------------------------------------------------------------------------------------ MLP

_ACTIVATIONS = {
    "silu": F.silu,
    "swish": F.silu,
    "gelu": F.gelu,
    "gelu_pytorch_tanh": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_new": lambda x: F.gelu(x, approximate="tanh"),
    "gelu_fast": lambda x: F.gelu(x, approximate="tanh"),
}


def activation(name: str):
    try:
        return _ACTIVATIONS[name]
    except KeyError:
        raise NotImplementedError(f"Activation {name!r} is not supported by scorekit's decoder") from None


class GatedMLP(nn.Module):
    """`down(act(gate(x)) * up(x))` with gate and up fused into one matmul."""

    def __init__(self, gate_up: Linear, down: Linear, act: str):
        super().__init__()
        self.gate_up = gate_up
        self.down = down
        self.act_name = act
        self.act = activation(act)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        return self.down(self.act(gate) * up)


# ---------------------------------------------------------------------------------------------- layer


class DecoderLayer(nn.Module):
    """Pre-norm residual block; Gemma3 adds a norm after attention and after the MLP ("sandwich")."""

    def __init__(
        self,
        attn: Attention,
        mlp: GatedMLP,
        input_norm: RMSNorm,
        post_attn_norm: RMSNorm,
        pre_mlp_norm: RMSNorm | None = None,
        post_mlp_norm: RMSNorm | None = None,
        layer_type: str = "full_attention",
        rope_key: str = "default",
    ):
        super().__init__()
        self.attn = attn
        self.mlp = mlp
        self.input_norm = input_norm
        self.post_attn_norm = post_attn_norm
        self.pre_mlp_norm = pre_mlp_norm
        self.post_mlp_norm = post_mlp_norm
        self.layer_type = layer_type
        self.rope_key = rope_key  # which Rotary of the model this layer uses (Gemma3: one per layer type)
        self.sandwich = pre_mlp_norm is not None

    def forward(self, x, cos, sin, mask, past=None):
        attn_out, kv = self.attn(self.input_norm(x), cos, sin, mask, past)
        if self.sandwich:
            x = x + self.post_attn_norm(attn_out)
            x = x + self.post_mlp_norm(self.mlp(self.pre_mlp_norm(x)))
        else:
            x = x + attn_out
            x = x + self.mlp(self.post_attn_norm(x))
        return x, kv


def attention_mask(
    key_valid: Tensor,
    query_pos: Tensor,
    key_pos: Tensor,
    sliding_window: int | None = None,
) -> Tensor:
    """Boolean [B, 1, T, S] mask: key j is visible to query i if it is real, not in the future and (for
    local layers) within the window `q - k < sliding_window`, as in HF's `sliding_window_overlay`.

    key_valid: bool [B, S]; query_pos: [T]; key_pos: [S] absolute positions. Each query also sees itself,
    so a padding row is never fully masked (a fully masked row makes SDPA return NaN, and a NaN value
    vector would poison real rows even under a zero weight).
    """
    rel = query_pos[:, None] - key_pos[None, :]  # [T, S]
    allowed = rel >= 0
    if sliding_window is not None:
        allowed = allowed & (rel < sliding_window)
    mask = allowed[None] & key_valid[:, None, :]
    mask = mask | (rel == 0)[None]
    return mask[:, None]


__all__ = [
    "Attention",
    "AttentionSpec",
    "DecoderLayer",
    "GatedMLP",
    "Linear",
    "RMSNorm",
    "Rotary",
    "apply_rotary",
    "attention_mask",
    "default_inv_freq",
]
