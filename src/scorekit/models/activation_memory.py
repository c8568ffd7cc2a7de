"""How much memory one batch row holds at the peak of a forward pass, so batches can be capped by bytes.

A token budget alone does not bound memory: attention scores grow with the square of the length, so the same
16,384-token budget is 4x more attention memory as 32 rows of 512 tokens than as 128 rows of 128, and a user
who raises `--max-num-batched-tokens` could otherwise ask for gigabytes. The engine therefore also keeps
each batch's estimated activations under a byte limit, whatever the batch settings.

The estimate is deliberately an upper bound of what one layer keeps alive at once (layers run one after
another and free their intermediates, and the eager attention of the transformers fallback keeps both scores
and probabilities): measured on MiniLM-L6 at 512 tokens, a row of our encoder peaks at 12–14 MB and this
estimate says 39 MB.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

FLOAT32_BYTES = 4


@dataclass(frozen=True)
class ActivationMemory:
    hidden: int
    heads: int
    intermediate: int
    vocab: int
    element_bytes: int

    @classmethod
    def from_config(cls, config, dtype: torch.dtype) -> "ActivationMemory":
        text = config.get_text_config() if hasattr(config, "get_text_config") else config
        hidden = int(getattr(text, "hidden_size", 768))
        return cls(
            hidden=hidden,
            heads=int(getattr(text, "num_attention_heads", 12)),
            intermediate=int(getattr(text, "intermediate_size", None) or 4 * hidden),
            vocab=int(getattr(text, "vocab_size", 0) or 0),
            element_bytes=torch.empty((), dtype=dtype).element_size(),
        )

    def row_bytes(self, length: int, prefix: int = 0, full_vocab: bool = False) -> int:
        """Peak bytes of one row of `length` new tokens attending to `prefix` cached ones as well."""
        # Attention scores and probabilities, heads × queries × keys, kept in float32 by the softmax.
        attention = 2 * self.heads * length * (length + prefix) * FLOAT32_BYTES
        # Residual stream, fused QKV (3H), attention output, and the FFN's in/gate/activation (3I).
        per_token = (6 * self.hidden + 3 * self.intermediate) * self.element_bytes
        # Generative scoring with true probabilities projects the last position onto the whole vocabulary.
        logits = 2 * self.vocab * FLOAT32_BYTES if full_vocab else 0
        return attention + length * per_token + logits
