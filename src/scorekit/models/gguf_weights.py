"""Read a GGUF file into a transformers config and a dense fp32 state dict in Hugging Face naming.

We lean on transformers' own GGUF reader (`load_gguf_checkpoint`), which knows the GGUF -> HF tensor
names, un-permutes Llama's q/k rows, turns Gemma's `1 + w` norms back into `w`, and dequantizes every
block type through `gguf`. It needs a model to read the HF names from; a skeleton on the meta device is
enough, so no weights are allocated twice.
"""

from __future__ import annotations

from pathlib import Path

import torch

from scorekit.errors import ModelLoadError
from scorekit.models.strict_weights import name_keys

__all__ = ["load_gguf"]


def load_gguf(path: str | Path, dtype: torch.dtype = torch.float32, config=None):
    """Return `(config, state_dict)` for the GGUF file at `path`.

    Pass the `config` already read from the file to skip reading its metadata a second time (seconds on a
    large vocabulary); it only shapes the meta-device skeleton that names the tensors.

    `config` is the `transformers.PretrainedConfig` that `AutoConfig.from_pretrained(..., gguf_file=...)`
    builds from the file's metadata; `state_dict` maps HF parameter names ("model.layers.0.self_attn.q_proj.weight",
    "lm_head.weight" only when the head is untied) to dequantized tensors of `dtype` (fp32 by default).
    """
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"GGUF file not found: {path}")
    if config is None:
        config = AutoConfig.from_pretrained(str(path.parent), gguf_file=path.name)
    with torch.device("meta"):
        skeleton = AutoModelForCausalLM.from_config(config)
    parsed = load_gguf_checkpoint(str(path), return_tensors=True, model_to_load=skeleton, torch_dtype=dtype)
    state_dict = {name: tensor.contiguous() for name, tensor in parsed["tensors"].items()}
    expected = set(skeleton.state_dict())
    # lm_head.weight may be absent: GGUF stores no output matrix when the head is tied to token_embd; whether
    # that is allowed (tie_word_embeddings) is the model builder's check, which sees the config.
    missing = sorted(k for k in expected - set(state_dict) if k != "lm_head.weight")
    if missing:
        raise ModelLoadError(f"GGUF {path.name} lacks {len(missing)} tensor(s) the {config.model_type} model has: "
                             f"{name_keys(missing)}")
    return config, state_dict
