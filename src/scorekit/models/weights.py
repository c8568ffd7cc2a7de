"""Read the weights of a Hugging Face model folder into one flat state dict.

The folder formats we meet in the wild, in the order we prefer them:
`model.safetensors`, sharded `model.safetensors.index.json`, `pytorch_model.bin` and its sharded index.
Safetensors files are memory-mapped, so loading is cheap; `.bin` files are unpickled with
`weights_only=True` so a downloaded checkpoint cannot run code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file

_SAFETENSORS = "model.safetensors"
_SAFETENSORS_INDEX = "model.safetensors.index.json"
_PYTORCH = "pytorch_model.bin"
_PYTORCH_INDEX = "pytorch_model.bin.index.json"


def _load_one(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def _load_sharded(index_path: Path) -> dict[str, torch.Tensor]:
    # The index maps each tensor name to its shard file; every shard is read once.
    weight_map: dict[str, str] = json.loads(index_path.read_text())["weight_map"]
    state_dict: dict[str, torch.Tensor] = {}
    for shard in sorted(set(weight_map.values())):
        state_dict.update(_load_one(index_path.parent / shard))
    return state_dict


def load_folder_state_dict(folder: str | Path) -> dict[str, torch.Tensor]:
    """All tensors of the HF checkpoint in `folder`, on CPU, in their stored dtype and HF key naming."""
    folder = Path(folder)
    if (folder / _SAFETENSORS).is_file():
        return _load_one(folder / _SAFETENSORS)
    if (folder / _SAFETENSORS_INDEX).is_file():
        return _load_sharded(folder / _SAFETENSORS_INDEX)
    if (folder / _PYTORCH).is_file():
        return _load_one(folder / _PYTORCH)
    if (folder / _PYTORCH_INDEX).is_file():
        return _load_sharded(folder / _PYTORCH_INDEX)
    raise FileNotFoundError(
        f"No model weights in {folder}: expected one of {_SAFETENSORS}, {_SAFETENSORS_INDEX}, "
        f"{_PYTORCH} or {_PYTORCH_INDEX}."
    )
