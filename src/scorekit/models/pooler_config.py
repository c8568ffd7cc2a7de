"""`--pooler-config` (vLLM's flag, `LLM(pooler_config=...)`): how a pooling model pools and activates by default.

Honoured keys: `task` (embed | classify | token_embed | token_classify), `pooling_type` or `seq_pooling_type` (CLS | MEAN | LAST),
`use_activation` (the default of the requests' `use_activation`: normalise embeddings, apply the classifier's
activation), `normalize` (its older name for embeddings), `logit_mean` and `logit_sigma` (a classifier's logits
become (logit - mean) / sigma before the activation). Every other key vLLM knows (ALL/STEP pooling,
`dimensions`, chunked processing, ...) is refused by name: nothing is accepted and ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from scorekit.errors import ModelLoadError

_POOLING_TYPES = ("CLS", "MEAN", "LAST")
_TASKS = ("embed", "classify", "token_embed", "token_classify")
_KNOWN = {"task", "pooling_type", "seq_pooling_type", "use_activation", "normalize", "logit_mean", "logit_sigma"}


@dataclass(frozen=True)
class PoolerConfig:
    task: str | None = None
    pooling_type: str | None = None
    use_activation: bool | None = None
    logit_mean: float = 0.0
    logit_sigma: float = 1.0


def parse_pooler_config(value: dict[str, Any] | str | None) -> PoolerConfig:
    if value is None:
        return PoolerConfig()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except json.JSONDecodeError as exc:
            raise ModelLoadError(f"--pooler-config is not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise ModelLoadError("--pooler-config must be a JSON object")
    unknown = sorted(set(value) - _KNOWN)
    if unknown:
        raise ModelLoadError(f"--pooler-config: {', '.join(unknown)} not supported by scorekit (it honours "
                             f"{', '.join(sorted(_KNOWN))})")
    if "pooling_type" in value and "seq_pooling_type" in value and value["pooling_type"] != value["seq_pooling_type"]:
        raise ModelLoadError("--pooler-config: pooling_type and seq_pooling_type disagree")
    pooling = value.get("pooling_type", value.get("seq_pooling_type"))
    if pooling is not None and str(pooling).upper() not in _POOLING_TYPES:
        raise ModelLoadError(f"--pooler-config pooling_type {pooling!r}: scorekit pools with "
                             f"{', '.join(_POOLING_TYPES)}")
    task = value.get("task")
    if task is not None and task not in _TASKS:
        raise ModelLoadError(f"--pooler-config task {task!r}: choose one of {', '.join(_TASKS)}")
    use_activation = value.get("use_activation", value.get("normalize"))
    if "use_activation" in value and "normalize" in value and value["use_activation"] != value["normalize"]:
        raise ModelLoadError("--pooler-config: use_activation and normalize disagree")
    if use_activation is not None and not isinstance(use_activation, bool):
        raise ModelLoadError("--pooler-config use_activation must be true or false")
    sigma = float(value.get("logit_sigma", 1.0))
    if sigma == 0:
        raise ModelLoadError("--pooler-config logit_sigma must not be 0")
    return PoolerConfig(task, str(pooling).upper() if pooling is not None else None, use_activation,
                        float(value.get("logit_mean", 0.0)), sigma)
