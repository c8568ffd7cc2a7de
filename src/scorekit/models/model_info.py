"""What a loaded model is and how it scores: task, score type, head activation, pooling, limits.

Everything here is decided once at load time from the HF config, `hf_overrides`, the sentence-transformers
files beside it and the user's `runner`/`task`, following SPEC §0, §5.2 and §6.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scorekit.errors import ModelLoadError
from scorekit.models.pooler_config import PoolerConfig

log = logging.getLogger(__name__)

ENCODER_TYPES = {"bert", "roberta", "xlm-roberta"}
DECODER_TYPES = {"llama", "qwen2", "qwen3", "gemma3_text", "gemma3"}
# Two-tower text/image bi-encoders (models/vision/clip.py): each input embedded by its own tower.
TWO_TOWER_TYPES = {"clip", "siglip", "siglip2"}
# Vision-language families (models/vision/vl_loading.py): Qwen-VL decoders, and ColPali/ColQwen2 late interaction.
QWEN_VL_TYPES = {"qwen2_vl", "qwen2_5_vl", "qwen3_vl"}
COLVISION_TYPES = {"colpali", "colqwen2"}
SCORE_TYPES = {"embed": "bi-encoder", "classify": "cross-encoder", "token_embed": "late-interaction"}
# token_classify (vLLM's per-token classification, *ForTokenClassification): served on /pooling and LLM.encode only
TASKS = ("embed", "classify", "token_embed", "token_classify", "generate")


@dataclass
class Conversion:
    """CausalLM → sequence classifier (SPEC §6): classifier rows taken from the LM head."""

    method: str  # "from_2_way_softmax" | "no_post_processing"
    tokens: list[str]


@dataclass
class DenseProjection:
    """A sentence-transformers Dense module (ColBERT/PyLate projection) found beside the model."""

    folder: Path
    in_features: int
    out_features: int
    bias: bool
    tanh: bool  # activation_function: Tanh (sentence-transformers' default) or Identity (PyLate/ColBERT)


# sentence-transformers Dense activations we apply; any other is refused rather than skipped.
_DENSE_ACTIVATIONS = {"Identity": False, "Tanh": True}


def _dense(modules: dict[str, dict]) -> DenseProjection:
    module = modules["Dense"]
    cfg = module["config"]
    if cfg.get("use_residual"):
        raise ModelLoadError(f"Dense module in {module['path']}: use_residual is not supported")
    # A config without the key gets sentence-transformers' own default, Tanh (models/Dense.py).
    name = str(cfg.get("activation_function", "torch.nn.modules.activation.Tanh")).rsplit(".", 1)[-1]
    if name not in _DENSE_ACTIVATIONS:
        raise ModelLoadError(f"Dense module in {module['path']}: activation_function {name!r} is not supported "
                             f"(supported: {', '.join(_DENSE_ACTIVATIONS)})")
    order = list(modules)
    if _DENSE_ACTIVATIONS[name] and "Pooling" in modules and order.index("Dense") < order.index("Pooling"):
        # scorekit applies the projection after pooling; tanh does not commute with pooling, so refuse.
        raise ModelLoadError(f"Dense module in {module['path']}: a Tanh Dense before the Pooling is not supported")
    return DenseProjection(module["path"], cfg["in_features"], cfg["out_features"], cfg.get("bias", True),
                           _DENSE_ACTIVATIONS[name])


@dataclass
class ModelInfo:
    architecture: str
    model_type: str
    task: str
    max_model_len: int
    num_labels: int = 1
    activation: str = "sigmoid"  # sigmoid | softmax | identity
    pooling: str = "CLS"  # CLS | MEAN | LAST
    use_sep_token: bool = True
    is_decoder: bool = False
    conversion: Conversion | None = None
    colbert_linear: bool = False  # the checkpoint carries a `linear` projection (stanford ColBERT)
    dense: DenseProjection | None = None
    # --pooler-config: the default of a request's use_activation, and a classifier's logit calibration
    default_use_activation: bool = True
    logit_mean: float = 0.0
    logit_sigma: float = 1.0
    # The model takes images as well as text (score inputs may be `{"content": [...]}`; SPEC §4 rule 1 otherwise)
    multimodal: bool = False

    @property
    def score_type(self) -> str | None:
        if self.task == "classify" and self.num_labels != 1:
            return None
        return SCORE_TYPES.get(self.task)


def apply_hf_overrides(config, overrides: dict[str, Any] | None):
    for key, value in (overrides or {}).items():
        if key == "text_config" and isinstance(value, dict) and hasattr(config, "text_config"):
            apply_hf_overrides(config.text_config, value)
        else:
            setattr(config, key, value)
    return config


def _read_json(path: Path) -> dict | None:
    return json.loads(path.read_text()) if path.exists() else None


def _sentence_transformers_modules(folder: Path) -> dict[str, dict]:
    """type suffix (Pooling, Dense, Normalize) → {"path": ..., "config": ...} from modules.json."""
    modules = _read_json(folder / "modules.json") or []
    found = {}
    for module in modules:
        kind = module.get("type", "").rsplit(".", 1)[-1]
        sub = folder / module.get("path", "")
        found[kind] = {"path": sub, "config": _read_json(sub / "config.json") or {}}
    return found


def _activation(config, num_labels: int) -> str:
    problem = getattr(config, "problem_type", None)
    if problem == "regression":
        return "identity"
    if problem == "multi_label_classification":
        return "sigmoid"
    if problem == "single_label_classification":
        return "sigmoid" if num_labels < 2 else "softmax"
    st = getattr(config, "sentence_transformers", None) or {}
    declared = st.get("activation_fn") if isinstance(st, dict) else None
    declared = declared or getattr(config, "sbert_ce_default_activation_function", None)
    if declared:
        name = declared.rsplit(".", 1)[-1]
        if name == "Identity":
            return "identity"
        if name in ("Sigmoid", "Softmax"):
            return "sigmoid" if num_labels < 2 else "softmax"
        if name == "Tanh":
            return "tanh"
        raise ModelLoadError(f"Unsupported sentence-transformers activation {declared!r}")
    return "sigmoid" if num_labels < 2 else "softmax"


def _max_model_len(config, folder: Path, requested: int | None) -> int:
    # get_text_config() finds the language model's config wherever it sits (ColPali's is under vlm_config).
    text_config = config.get_text_config() if hasattr(config, "get_text_config") else config
    derived = getattr(text_config, "max_position_embeddings", None) or 512
    if getattr(config, "model_type", "") in ("roberta", "xlm-roberta"):
        derived -= (getattr(config, "pad_token_id", 1) or 0) + 1  # positions start after padding_idx
    st = _read_json(folder / "sentence_bert_config.json")
    if st and st.get("max_seq_length"):
        derived = min(derived, int(st["max_seq_length"]))
    if requested is None:
        return derived
    if requested > derived:
        raise ModelLoadError(f"max_model_len={requested} is larger than the model's limit of {derived} tokens")
    return requested


def _conversion(config) -> Conversion | None:
    method = getattr(config, "method", None)
    tokens = getattr(config, "classifier_from_token", None)
    if getattr(config, "is_original_qwen3_reranker", False):
        if not tokens or len(tokens) != 2:
            raise ModelLoadError(
                "is_original_qwen3_reranker needs classifier_from_token with two tokens, e.g. [\"no\", \"yes\"]. "
                "Try loading the original Qwen3 Reranker?"
            )
        method = "from_2_way_softmax"
    if method is None and tokens is None:
        return None
    if not tokens:
        raise ModelLoadError("hf_overrides: `classifier_from_token` is required for the classifier conversion")
    method = method or "no_post_processing"
    if method == "from_2_way_softmax" and len(tokens) != 2:
        raise ModelLoadError("from_2_way_softmax needs exactly two classifier_from_token entries: [false, true]")
    if method not in ("from_2_way_softmax", "no_post_processing"):
        raise ModelLoadError(f"Unknown conversion method {method!r}: use from_2_way_softmax or no_post_processing")
    return Conversion(method, list(tokens))


def _default_architecture(model_type: str) -> str:
    """GGUF configs name no architecture: take the causal-LM class transformers registers for the type."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_MAPPING_NAMES

    return MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type) or MODEL_MAPPING_NAMES.get(model_type) or model_type


# sentence-transformers Pooling modes: < 6 writes one flag per mode, >= 6 one `pooling_mode` string.
_POOLING_FLAGS = {"pooling_mode_mean_tokens": "MEAN", "pooling_mode_lasttoken": "LAST", "pooling_mode_cls_token": "CLS"}
_POOLING_MODES = {"mean": "MEAN", "lasttoken": "LAST", "cls": "CLS"}
_UNSUPPORTED_FLAGS = ("pooling_mode_max_tokens", "pooling_mode_mean_sqrt_len_tokens", "pooling_mode_weightedmean_tokens")


def _pooling(config: dict) -> str | None:
    """The Pooling module's mode (None without one); a mode scorekit does not compute is refused."""
    mode = config.get("pooling_mode")
    if mode is not None:
        if mode not in _POOLING_MODES:
            raise ModelLoadError(f"sentence-transformers pooling_mode {mode!r} is not supported "
                                 f"(supported: {', '.join(_POOLING_MODES)})")
        return _POOLING_MODES[mode]
    unsupported = [flag for flag in _UNSUPPORTED_FLAGS if config.get(flag)]
    if unsupported:
        raise ModelLoadError(f"sentence-transformers pooling {unsupported} is not supported "
                             f"(supported: {', '.join(_POOLING_FLAGS)})")
    return next((mode for flag, mode in _POOLING_FLAGS.items() if config.get(flag)), None)


def _is_decoder(model_type: str, architecture: str) -> bool:
    """A causal LM, whatever head its config names: ours, any `*ForCausalLM`, or a model type transformers
    registers a causal-LM class for, e.g. `GemmaForSequenceClassification` (bge-reranker-v2-gemma's recipe)
    on a Gemma checkpoint. Encoders such as BERT also register a causal-LM class (BertLMHeadModel), but
    unlike decoders they register a masked-LM one too: those stay encoders."""
    from transformers.models.auto.modeling_auto import (MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
                                                        MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    if architecture.endswith("ForCausalLM") or model_type in DECODER_TYPES | QWEN_VL_TYPES:
        return True
    return model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES and model_type not in MODEL_FOR_MASKED_LM_MAPPING_NAMES


def _is_base_model(architecture: str) -> bool:
    """A headless class such as `MistralModel` (e5-mistral): an embedding model, with no LM head to generate
    from (vLLM serves these as pooling models too)."""
    from transformers.models.auto.modeling_auto import MODEL_MAPPING_NAMES

    return architecture in MODEL_MAPPING_NAMES.values()


def describe_model(
    config,
    folder: Path,
    runner: str = "auto",
    task: str | None = None,
    max_model_len: int | None = None,
    has_colbert_linear: bool = False,
    convert: str = "auto",
    pooler: PoolerConfig | None = None,
) -> ModelInfo:
    model_type = getattr(config, "model_type", "?")
    architecture = (getattr(config, "architectures", None) or [_default_architecture(model_type)])[0]
    modules = _sentence_transformers_modules(folder)
    is_decoder = _is_decoder(model_type, architecture)
    conversion = _conversion(config)
    pooler = pooler or PoolerConfig()

    if pooler.task is not None:
        if task is not None and task != pooler.task:
            raise ModelLoadError(f"task {task!r} and --pooler-config task {pooler.task!r} disagree")
        task = pooler.task
    if convert == "none" and conversion is not None:
        raise ModelLoadError("convert='none' leaves the model as it is, but hf_overrides asks for a "
                             "classifier_from_token conversion: use convert='classify' (or 'auto')")
    if convert in ("embed", "classify"):
        if task is not None and task != convert:
            raise ModelLoadError(f"convert={convert!r} and task {task!r} disagree")
        if runner == "generate":
            raise ModelLoadError(f"convert={convert!r} makes a pooling model: it cannot go with runner='generate'")
        task = convert
    if task is None:
        if runner == "generate":
            task = "generate"
        elif architecture.endswith("ForTokenClassification"):
            task = "token_classify"  # vLLM's rule: *ForTokenClassification → token_classify
        elif architecture.endswith("ForSequenceClassification") or conversion is not None:
            task = "classify"
        elif model_type in COLVISION_TYPES:
            task = "token_embed"  # one vector per token (image tokens included), scored by MaxSim
        elif architecture == "HF_ColBERT" or has_colbert_linear or ("Dense" in modules and "Pooling" not in modules):
            task = "token_embed"
        elif is_decoder and runner == "auto" and not _is_base_model(architecture):
            task = "generate"
        else:
            task = "embed"
    if task not in TASKS:
        raise ModelLoadError(f"Unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if model_type in TWO_TOWER_TYPES and task != "embed":
        raise ModelLoadError(f"{architecture} is a two-tower text/image bi-encoder: it serves task 'embed' only "
                             f"(scores are cosines of its embeddings), not {task!r}")
    if model_type in COLVISION_TYPES and task != "token_embed":
        raise ModelLoadError(f"{architecture} is a late-interaction retriever: it serves task 'token_embed' only, "
                             f"not {task!r}")
    if task == "token_classify" and not architecture.endswith("ForTokenClassification"):
        raise ModelLoadError(f"{architecture}: task 'token_classify' needs a *ForTokenClassification checkpoint "
                             "(a classifier head trained per token); this one has none")
    if task == "token_classify" and (is_decoder or model_type not in ENCODER_TYPES):
        raise ModelLoadError(f"{architecture}: token classification is served for BERT, RoBERTa and XLM-R "
                             f"encoders (scorekit's own encoder), not model_type {model_type!r}")
    if task == "generate" and not is_decoder:
        raise ModelLoadError(f"{architecture} is not a causal language model: it cannot run generative scoring")

    num_labels = getattr(config, "num_labels", 1)
    if conversion is not None:
        num_labels = 1 if conversion.method == "from_2_way_softmax" else len(conversion.tokens)

    pooling = (pooler.pooling_type or _pooling(modules.get("Pooling", {}).get("config", {}))
               or ("LAST" if is_decoder else "CLS"))

    dense = _dense(modules) if "Dense" in modules else None

    use_sep = getattr(config, "use_sep_token", getattr(config, "use_pad_token", None))
    if use_sep is None:
        use_sep = conversion is None

    return ModelInfo(
        architecture=architecture,
        model_type=model_type,
        task=task,
        max_model_len=_max_model_len(config, folder, max_model_len),
        num_labels=num_labels,
        activation=_activation(config, num_labels),
        pooling=pooling,
        use_sep_token=bool(use_sep),
        is_decoder=is_decoder,
        conversion=conversion,
        colbert_linear=has_colbert_linear,
        dense=dense,
        default_use_activation=pooler.use_activation is not False,
        logit_mean=pooler.logit_mean,
        logit_sigma=pooler.logit_sigma,
        multimodal=model_type in TWO_TOWER_TYPES | QWEN_VL_TYPES | COLVISION_TYPES,
    )
