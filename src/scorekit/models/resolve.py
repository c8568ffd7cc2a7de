"""Where a model's files are: the embedded default, a local folder, a GGUF file, or a Hugging Face hub id.

A hub id goes through `huggingface_hub.snapshot_download`, the standard resolution every HF tool uses: the
local cache first (`HF_HOME` / `HF_HUB_CACHE`, or `download_dir`), a download when the hub can be reached,
nothing but the cache under `HF_HUB_OFFLINE=1`. A model that is not there fails with one error that names what
was looked for.
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


def resolve_model(model: str | os.PathLike | None, revision: str | None = None,
                  download_dir: str | None = None) -> ModelLocation:
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
    return ModelLocation(name, _from_hub(name, revision, download_dir))


# Formats no scorekit path reads: not downloaded (a hub repo often carries ONNX, TF and OpenVINO copies).
_IGNORE = ["*.onnx", "onnx/*", "*.h5", "*.msgpack", "*.ot", "*.tflite", "openvino/*", "coreml/*", "*.mlmodel"]


def _from_hub(repo_id: str, revision: str | None, download_dir: str | None) -> Path:
    from huggingface_hub import constants, snapshot_download

    try:
        return Path(snapshot_download(repo_id, revision=revision, cache_dir=download_dir, ignore_patterns=_IGNORE))
    except Exception as exc:  # noqa: BLE001 - any failure here means "not available"
        where = download_dir or constants.HF_HUB_CACHE
        offline = " (HF_HUB_OFFLINE is set, so only the cache was looked in)" if constants.HF_HUB_OFFLINE else ""
        raise ModelLoadError(
            f"Could not find model {repo_id!r} offline: it is not a local file or folder, and not in the "
            f"Hugging Face cache ({where}){offline}, and it could not be downloaded: "
            f"{type(exc).__name__}. Pass a model folder, or allow downloads from the hub."
        ) from exc
