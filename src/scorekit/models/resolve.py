"""Where a model's files are: the embedded default, a local folder, a GGUF file, or a hub id in the HF cache.

scorekit never downloads. A hub id must already be in the local Hugging Face cache; anything else fails
with one error that names what was looked for.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from scorekit.errors import ModelLoadError
from scorekit.models import packaged


@dataclass(frozen=True)
class ModelLocation:
    name: str  # what the user asked for (echoed as the served model name by default)
    folder: Path  # folder holding config/tokenizer files
    gguf_file: str | None = None  # file name inside `folder` when the weights are one GGUF file


_DEFAULT_ALIASES = {packaged.DEFAULT_MODEL_NAME, "all-MiniLM-L6-v2", "default"}


def resolve_model(model: str | os.PathLike | None) -> ModelLocation:
    if model is None or str(model) in _DEFAULT_ALIASES:
        return ModelLocation(packaged.DEFAULT_MODEL_NAME, packaged.default_model_dir())
    name = str(model)
    path = Path(name).expanduser()
    if path.is_file():
        if path.suffix != ".gguf":
            raise ModelLoadError(f"Model file {path} is not a .gguf file; pass a model folder or a GGUF file.")
        return ModelLocation(name, path.parent.resolve(), path.name)
    if path.is_dir():
        ggufs = sorted(path.glob("*.gguf"))
        if not (path / "config.json").exists() and len(ggufs) == 1:
            return ModelLocation(name, path.resolve(), ggufs[0].name)
        if not (path / "config.json").exists():
            raise ModelLoadError(f"Model folder {path} has no config.json (and not exactly one .gguf file).")
        return ModelLocation(name, path.resolve())
    return ModelLocation(name, _from_hf_cache(name))


def _from_hf_cache(repo_id: str) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=True))
    except Exception as exc:  # noqa: BLE001 - any failure here means "not available offline"
        cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
        raise ModelLoadError(
            f"Could not find model {repo_id!r} offline: it is not a local file or folder, and not in the "
            f"Hugging Face cache ({cache}). scorekit never downloads models; copy the model folder here and "
            "pass its path."
        ) from exc
