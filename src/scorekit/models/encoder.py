"""Our own BERT-family encoder: BERT, RoBERTa and XLM-R in one compact torch module.

The three families share the post-LayerNorm transformer layer; they differ only in how position ids are
counted (BERT: 0..T-1; RoBERTa/XLM-R: after `padding_idx`, skipping pads) and in the shape of their
sequence-classification head, which is the same maths under two names (see `_load_head`).

Built for inference on the hot path: padding is dropped before the first layer (every Linear and LayerNorm
runs on the packed real tokens, attention runs row by row through `scaled_dot_product_attention`), Q/K/V
are fused into one Linear at load time, parameters never require grad, and modules are created on the meta
device so that loading a checkpoint never pays for a random initialisation.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import PretrainedConfig
from transformers.activations import ACT2FN

from scorekit.models import gemm
from scorekit.models.backbone import EncoderBackbone
from scorekit.models.strict_weights import StateReader, Unread

SUPPORTED_MODEL_TYPES = {"bert": "arange", "roberta": "after_padding", "xlm-roberta": "after_padding"}
# Base-model prefixes used by *ForSequenceClassification checkpoints (XLM-R also uses "roberta.").
_BASE_PREFIXES = ("bert.", "roberta.")

# Checkpoint tensors (names after `_strip_names`) that may stay unread, and why no score depends on them.
_MAY_STAY_UNREAD = (
    Unread(r"embeddings\.(position_ids|token_type_ids)",
           "buffers older transformers saved; positions and the default segment are recomputed from the input"),
    Unread(r"pooler\.dense\.(weight|bias)",
           "BertModel's pooler, tanh(dense(h[CLS])): when it is not a BERT-style head's first layer no output "
           "reads it (embeddings pool the last hidden state, as sentence-transformers does; RoBERTa-style heads "
           "bring their own dense layer)"),
    Unread(r"(cls\.(predictions|seq_relationship)|lm_head)\..*",
           "pre-training heads (masked-LM, next-sentence) of *ForMaskedLM / *ForPreTraining checkpoints: they "
           "predict tokens, and no scoring task reads them"),
)


class _Workspace:
    """Activation buffers for one forward of N packed tokens, reused by every layer.

    Multi-megabyte tensors that glibc serves with mmap are page-faulted in afresh on every allocation, so on
    the MKL path each layer writes its Linear outputs into these instead: 2-9% faster on an Intel CPU at
    rerank shapes. oneDNN's Linear has no out= form and returns its own tensors (gemm.linear); the attention
    buffer is used on both paths (the unused ones are never touched, so they cost no page faults).
    """

    def __init__(self, x: Tensor, intermediate: int, real_rows: int):
        tokens, hidden = x.shape
        self.qkv = x.new_empty(tokens, 3 * hidden)
        self.attn = x.new_empty(tokens, hidden)
        self.attn[real_rows:] = 0  # padding rows (gemm.rows_for): no attention writes them; keep them finite
        self.sum = x.new_empty(tokens, hidden)  # pre-LayerNorm residual sum, twice per layer
        self.ffn = x.new_empty(tokens, intermediate)


def _linear(linear: nn.Module, x: Tensor, out: Tensor, residual: Tensor | None = None, gelu: bool = False) -> Tensor:
    """`linear(x)` (`+ residual`, or through the exact GELU), written into `out` where the backend can (use the
    returned tensor). On oneDNN the addition and the GELU run inside the matmul (gemm.linear_add/_gelu)."""
    if type(linear) is not nn.Linear:  # int8: an Int8Linear (models/quantize.py) brings its own kernel
        y = out.copy_(linear(x))
        return torch.ops.aten.gelu_(y) if gelu else (y.add_(residual) if residual is not None else y)
    if gelu:
        return gemm.linear_gelu(x, linear.weight, linear.bias, out=out)
    if residual is not None:
        return gemm.linear_add(x, linear.weight, linear.bias, residual, out=out)
    return gemm.linear(x, linear.weight, linear.bias, out=out)


class _EncoderLayer(nn.Module):
    """Post-LN transformer layer: x = LN(x + Attn(x)); x = LN(x + FFN(x)), on packed tokens [N, H]."""

    def __init__(self, hidden: int, heads: int, intermediate: int, eps: float, act: str):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(hidden, 3 * hidden)  # one matmul instead of three
        self.attn_out = nn.Linear(hidden, hidden)
        self.attn_norm = nn.LayerNorm(hidden, eps=eps)
        self.ffn_in = nn.Linear(hidden, intermediate)
        self.exact_gelu = act == "gelu"  # HF's erf GELU: fused into the matmul where it can be
        self.act = ACT2FN[act]
        self.ffn_out = nn.Linear(intermediate, hidden)
        self.ffn_norm = nn.LayerNorm(hidden, eps=eps)

    def forward(self, x: Tensor, runs: list[tuple[int, int, int, int]], work: _Workspace,
                first_rows: list[int] | None = None) -> Tensor:
        """`x` holds the real tokens of every row back to back (then padding rows); `runs` (`_runs`) lists the
        rows as (first row, first token, rows, length): consecutive rows of one length, each x[start:start+length].

        With `first_rows` (each row's first token, then padding), only those tokens come out; they still attend
        to every token of their row.
        """
        first_only = first_rows is not None
        qkv = _linear(self.qkv, x, work.qkv)
        if first_only:
            x = x[first_rows]
        attn = work.attn[: x.shape[0]]
        for row, start, rows, length in runs:
            # Each row attends over its own tokens only: no padding and no mask to apply. `rows` consecutive rows
            # of one length are contiguous in x, so they go to one attention call as a [rows, length] batch.
            end = start + rows * length
            q, k, v = qkv[start:end].view(rows, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            if first_only:  # one query per row, whose output is the row-th of the first tokens
                attn[row:row + rows] = F.scaled_dot_product_attention(q[:, :, :1], k, v)[:, :, 0].flatten(1)
            else:
                attn[start:end] = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(end - start, -1)
        # x + sublayer(x); addition commutes exactly, so this is HF's rounding too.
        summed = work.sum[: x.shape[0]]
        x = self.attn_norm(_linear(self.attn_out, attn, summed, residual=x))
        if self.exact_gelu:
            inner = _linear(self.ffn_in, x, work.ffn[: x.shape[0]], gelu=True)
        else:
            inner = self.act(_linear(self.ffn_in, x, work.ffn[: x.shape[0]]))
        return self.ffn_norm(_linear(self.ffn_out, inner, summed, residual=x))


class _ClassificationHead(nn.Module):
    """tanh(dense(h[CLS])) -> out_proj. BERT calls dense the "pooler"; RoBERTa calls it "classifier.dense"."""

    def __init__(self, hidden: int, num_labels: int):
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.out_proj = nn.Linear(hidden, num_labels)

    def forward(self, cls_hidden: Tensor) -> Tensor:
        return self.out_proj(torch.tanh(self.dense(cls_hidden)))


class EncoderModel(nn.Module, EncoderBackbone):
    """BERT / RoBERTa / XLM-R encoder with an optional sequence-classification head.

    Inputs are right-padded batches; `attention_mask` is 1 on real tokens. Padding is dropped before the first
    layer, so it never changes the outputs at real positions (and costs no compute).
    """

    # Padding never reaches a Linear or the attention: the engine prices its batches by real tokens (batching.py)
    # and runs two model threads on a CPU (runner.default_model_threads).
    packs_padding = True

    def __init__(self, config: PretrainedConfig, num_labels: int | None, token_labels: int | None = None):
        super().__init__()
        position_type = getattr(config, "position_embedding_type", None) or "absolute"
        if position_type != "absolute":
            raise NotImplementedError(
                f"EncoderModel supports absolute position embeddings only, not {position_type!r}; "
                "use the transformers fallback for this checkpoint."
            )
        if config.model_type not in SUPPORTED_MODEL_TYPES:
            raise ValueError(f"EncoderModel does not implement model_type {config.model_type!r}")
        hidden = self.hidden_size = config.hidden_size
        self.intermediate_size = config.intermediate_size
        self.pad_token_id = config.pad_token_id if config.pad_token_id is not None else 0
        # RoBERTa counts positions from padding_idx + 1, so it uses two fewer rows of the position table.
        self.roberta_positions = SUPPORTED_MODEL_TYPES[config.model_type] == "after_padding"
        position_offset = self.pad_token_id + 1 if self.roberta_positions else 0
        self.max_length = config.max_position_embeddings - position_offset

        self.word_embeddings = nn.Embedding(config.vocab_size, hidden)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, hidden)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, hidden)
        self.embeddings_norm = nn.LayerNorm(hidden, eps=config.layer_norm_eps)
        self.layers = nn.ModuleList(
            _EncoderLayer(hidden, config.num_attention_heads, config.intermediate_size,
                          config.layer_norm_eps, config.hidden_act)
            for _ in range(config.num_hidden_layers)
        )
        self.head = _ClassificationHead(hidden, num_labels) if num_labels is not None else None
        self.num_labels = num_labels if num_labels is not None else config.num_labels
        # *ForTokenClassification: `classifier`, one Linear applied to every token's final hidden state
        self.token_head = nn.Linear(hidden, token_labels) if token_labels is not None else None

    @property
    def has_classifier(self) -> bool:
        return self.head is not None

    @property
    def vocab_size(self) -> int:
        return self.word_embeddings.num_embeddings

    # ---- loading -------------------------------------------------------------------------------------

    @classmethod
    def from_config_and_state_dict(
        cls, config: PretrainedConfig, state_dict: dict[str, Tensor], dtype: torch.dtype = torch.float32,
        token_classification: bool = False,
    ) -> "EncoderModel":
        """Build from an HF config and an HF-named state dict (with or without the "bert."/"roberta." prefix).
        With `token_classification` (a *ForTokenClassification checkpoint) the `classifier` Linear is the
        per-token head (`token_logits`), with no pooler before it, as in transformers.

        Strict: a missing tensor, or one that no part of the model reads (beyond `_MAY_STAY_UNREAD`), is a
        ModelLoadError naming it."""
        renamed, original = _strip_names(state_dict)
        prefix = next((p for p in _BASE_PREFIXES if any(k.startswith(p) for k in state_dict)), "")
        sd = StateReader(renamed, f"{config.model_type} encoder", original, missing_prefix=prefix)
        if token_classification:
            head_weights = {f"token_head.{param}": sd[f"classifier.{param}"] for param in ("weight", "bias")}
            num_labels, token_labels = None, head_weights["token_head.weight"].shape[0]
        else:
            head_weights = _load_head(sd)
            num_labels = head_weights["head.out_proj.weight"].shape[0] if head_weights else None
            token_labels = None
        ours = {
            "word_embeddings.weight": sd["embeddings.word_embeddings.weight"],
            "position_embeddings.weight": sd["embeddings.position_embeddings.weight"],
            "token_type_embeddings.weight": sd["embeddings.token_type_embeddings.weight"],
            "embeddings_norm.weight": sd["embeddings.LayerNorm.weight"],
            "embeddings_norm.bias": sd["embeddings.LayerNorm.bias"],
            **head_weights,
        }
        for i in range(config.num_hidden_layers):
            ours.update(_load_layer(sd, i))
        sd.check_all_read(_MAY_STAY_UNREAD)

        with torch.device("meta"):  # shapes only; the real tensors are assigned below
            model = cls(config, num_labels, token_labels)
        model.load_state_dict({k: v.to(dtype).contiguous() for k, v in ours.items()}, strict=True, assign=True)
        for layer in model.layers:
            for linear in (layer.qkv, layer.attn_out, layer.ffn_in, layer.ffn_out):
                linear.weight = nn.Parameter(gemm.column_major(linear.weight), requires_grad=False)
        if dtype == torch.bfloat16:
            gemm.check_cpu_bfloat16()
        return model.requires_grad_(False).eval()

    # ---- inference -----------------------------------------------------------------------------------

    def _position_ids(self, input_ids: Tensor) -> Tensor:
        if not self.roberta_positions:
            return torch.arange(input_ids.shape[1], device=input_ids.device).expand_as(input_ids)
        # HF create_position_ids_from_input_ids: padding_idx + 1 + running count of non-pad tokens;
        # pads themselves get padding_idx.
        not_pad = input_ids.ne(self.pad_token_id).long()
        return torch.cumsum(not_pad, dim=1) * not_pad + self.pad_token_id

    def hidden_states(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """Last hidden state [B, T, H] of a right-padded batch; padding positions are zeros."""
        hidden, positions = self._encode(input_ids, attention_mask, token_type_ids, first_only=False)
        out = hidden.new_zeros(input_ids.numel(), self.hidden_size)
        out[positions] = hidden
        return out.view(*input_ids.shape, self.hidden_size)

    forward = hidden_states

    def classify(self, hidden: Tensor) -> Tensor:
        """Raw logits [B, num_labels] from the classification head on the first token."""
        if self.head is None:
            raise RuntimeError("this checkpoint has no sequence-classification head")
        return self.head(hidden[:, 0])

    def token_logits(self, hidden: Tensor) -> Tensor:
        """Raw per-token logits [..., num_labels] of a *ForTokenClassification head from final hidden states."""
        if self.token_head is None:
            raise RuntimeError("this checkpoint has no token-classification head")
        return self.token_head(hidden)

    def classify_tokens(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None = None) -> Tensor:
        """`classify(hidden_states(...))` with less work: the head reads the first token only, so the last
        layer computes that token alone (its keys and values still come from every token): ~1/7 less work
        for a 6-layer model. A row without tokens gets the head's output for zeros, as in `classify`."""
        if self.head is None:
            raise RuntimeError("this checkpoint has no sequence-classification head")
        first, positions = self._encode(input_ids, attention_mask, token_type_ids, first_only=True)
        cls = first.new_zeros(input_ids.shape[0], self.hidden_size)
        cls[positions // input_ids.shape[1]] = first
        return self.head(cls)

    def _encode(self, input_ids: Tensor, attention_mask: Tensor, token_type_ids: Tensor | None,
                first_only: bool) -> tuple[Tensor, Tensor]:
        """Final hidden states of the real tokens only, packed [N, H] in row order (with `first_only`, of each
        row's first token, [rows, H]), and where each of them sits in the flattened padded batch.

        Padding is dropped once, here: every Linear and LayerNorm runs on the packed tokens, and each row's
        attention on its own span. Padding costs nothing, and a row's result does not depend on the batch.
        """
        if input_ids.shape[1] > self.max_length:
            raise ValueError(f"sequence length {input_ids.shape[1]} exceeds the model maximum {self.max_length}")
        real = attention_mask.flatten().nonzero().squeeze(1)
        ids = input_ids.flatten()[real]
        # Same order of additions as HF (word + type, then + position) so the rounding matches too.
        if token_type_ids is None:
            x = self.word_embeddings(ids) + self.token_type_embeddings.weight[0]
        else:
            x = self.word_embeddings(ids) + self.token_type_embeddings(token_type_ids.flatten()[real])
        x = self.embeddings_norm(x + self.position_embeddings(self._position_ids(input_ids).flatten()[real]))

        ends = attention_mask.sum(1).cumsum(0).tolist()
        spans = [(start, end) for start, end in zip([0] + ends[:-1], ends) if end > start]
        starts = [start for start, _ in spans]
        tokens = x.shape[0]
        # Zero rows up to one of the matmul's fixed sizes (gemm.rows_for); they never mix with real tokens.
        padding = gemm.rows_for(tokens, x) - tokens
        if padding:
            x = torch.cat([x, x.new_zeros(padding, x.shape[1])])
        first_rows = starts + starts[:1] * (gemm.rows_for(len(starts), x) - len(starts)) if first_only else None
        work = _Workspace(x, self.intermediate_size, tokens)
        runs = _runs(spans)
        for i, layer in enumerate(self.layers):
            x = layer(x, runs, work, first_rows if i == len(self.layers) - 1 else None)
        return x[: len(starts) if first_only else tokens], (real[starts] if first_only else real)



def _runs(spans: list[tuple[int, int]]) -> list[tuple[int, int, int, int]]:
    """(first row, first token, rows, length) for each run of consecutive rows of equal length: one attention
    call per run instead of per row. Each (row, head) is computed by the same kernel on the same values either
    way: on MiniLM the hidden states came out bitwise equal to one call per row, on batches of 32 x 128 tokens
    and of mixed lengths. The engine's batches are sorted by length, so runs are common: 32 x 128 tokens
    (bench/roofline.py) is one call per layer, not 32."""
    runs: list[tuple[int, int, int, int]] = []
    for row, (start, end) in enumerate(spans):
        if runs and runs[-1][3] == end - start:
            first, at, rows, length = runs[-1]
            runs[-1] = (first, at, rows + 1, length)
        else:
            runs.append((row, start, 1, end - start))
    return runs


# ---- state-dict mapping (HF names -> ours) -------------------------------------------------------------


def _strip_names(state_dict: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, str]]:
    """Drop the base-model prefix and rename TF-era LayerNorm gamma/beta to weight/bias; also return each
    new name's original, for error messages."""
    out, original = {}, {}
    for name, tensor in state_dict.items():
        key = name
        for prefix in _BASE_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                break
        if key.endswith("LayerNorm.gamma"):
            key = key[: -len("gamma")] + "weight"
        elif key.endswith("LayerNorm.beta"):
            key = key[: -len("beta")] + "bias"
        out[key], original[key] = tensor, name
    return out, original


def _load_layer(sd: StateReader, i: int) -> dict[str, Tensor]:
    src, dst = f"encoder.layer.{i}.", f"layers.{i}."
    qkv = [f"{src}attention.self.{name}" for name in ("query", "key", "value")]
    pairs = {
        "attn_out": "attention.output.dense",
        "attn_norm": "attention.output.LayerNorm",
        "ffn_in": "intermediate.dense",
        "ffn_out": "output.dense",
        "ffn_norm": "output.LayerNorm",
    }
    out = {
        f"{dst}qkv.weight": torch.cat([sd[f"{p}.weight"] for p in qkv]),
        f"{dst}qkv.bias": torch.cat([sd[f"{p}.bias"] for p in qkv]),
    }
    for ours, theirs in pairs.items():
        for param in ("weight", "bias"):
            out[f"{dst}{ours}.{param}"] = sd[f"{src}{theirs}.{param}"]
    return out


def _load_head(sd: StateReader) -> dict[str, Tensor]:
    """Head weights if the checkpoint has a sequence-classification head, else {}.

    Decided by the keys, not by model_type: RoBERTa-style heads have `classifier.out_proj`, BERT-style heads
    a bare `classifier` Linear fed by the pooler. A bare BertModel's pooler alone is not a head.
    """
    if "classifier.out_proj.weight" in sd:
        dense, out_proj = "classifier.dense", "classifier.out_proj"
    elif "classifier.weight" in sd:
        dense, out_proj = "pooler.dense", "classifier"
    else:
        return {}
    return {
        f"head.{ours}.{param}": sd[f"{theirs}.{param}"]
        for ours, theirs in (("dense", dense), ("out_proj", out_proj))
        for param in ("weight", "bias")
    }
