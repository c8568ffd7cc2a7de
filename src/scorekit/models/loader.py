"""Load a model for scoring: files → config (+ hf_overrides) → tokenizer → weights → backbone and heads.

Our own implementations (models/encoder.py, models/decoder.py) serve the architectures that matter; any
other architecture runs on its `transformers` class (models/hf_fallback.py).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

import torch

from scorekit.errors import ModelLoadError
from scorekit.models import packaged
from scorekit.models.activation_memory import ActivationMemory
from scorekit.models.backbone import DecoderBackbone, EncoderBackbone
from scorekit.models.decoder_heads import DecoderHead, LabelTokenHead, ScoreHead
from scorekit.models.pooler_config import parse_pooler_config
from scorekit.models.quantize import quantize_backbone
from scorekit.models.model_info import (DECODER_TYPES, ENCODER_TYPES, TWO_TOWER_TYPES, ModelInfo, apply_hf_overrides,
                                        describe_model)
from scorekit.models.resolve import ModelLocation, resolve_model
from scorekit.models.scoring_model import ScoringModel
from scorekit.models.strict_weights import StateReader

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "fp32": torch.float32, "float": torch.float32, "float16": torch.float16,
           "fp16": torch.float16, "half": torch.float16, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}


@dataclass
class LoadedModel:
    location: ModelLocation
    config: Any
    tokenizer: Any
    model: ScoringModel
    # A multimodal model's input builder: turns texts and images into the prompts its towers take, as its
    # processor would (models/vision/clip.py TwoTowerInputs: `prompts(items, builder, truncation, is_query)`).
    media_inputs: Any = None

    @property
    def info(self) -> ModelInfo:
        return self.model.info


def pick_device(device: str | None) -> torch.device:
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def pick_dtype(dtype: str | torch.dtype | None, device: torch.device, config) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto"):
        if device.type == "cpu":
            return torch.float32  # exact scores; CPU half precision is slow and lossy
        declared = getattr(config, "torch_dtype", None) or getattr(config, "dtype", None)
        return declared if isinstance(declared, torch.dtype) and declared != torch.float32 else torch.float16
    if dtype not in _DTYPES:
        raise ModelLoadError(f"Unknown dtype {dtype!r}; use auto, float32, float16 or bfloat16")
    return _DTYPES[dtype]


def load_tokenizer(location: ModelLocation, trust_remote_code: bool = False):
    """HF fast tokenizer. A GGUF tokenizer is converted once and cached (the conversion takes tens of seconds)."""
    from transformers import AutoTokenizer

    if location.gguf_file is None:
        return AutoTokenizer.from_pretrained(str(location.folder), trust_remote_code=trust_remote_code)
    gguf = location.folder / location.gguf_file
    stat = gguf.stat()
    key = hashlib.sha1(f"{gguf.resolve()}:{stat.st_size}:{int(stat.st_mtime)}".encode()).hexdigest()[:16]
    cached = packaged.cache_dir() / "tokenizers" / key
    if (cached / "tokenizer_config.json").exists():
        return AutoTokenizer.from_pretrained(str(cached))
    tokenizer = AutoTokenizer.from_pretrained(str(location.folder), gguf_file=location.gguf_file)
    tokenizer.save_pretrained(str(cached))
    return tokenizer


def load_config(location: ModelLocation, hf_overrides: dict | None, trust_remote_code: bool = False):
    from transformers import AutoConfig

    try:
        config = AutoConfig.from_pretrained(str(location.folder), gguf_file=location.gguf_file,
                                            trust_remote_code=trust_remote_code)
    except (OSError, ValueError, KeyError) as exc:
        raise ModelLoadError(f"Could not read the model config in {location.folder}: {exc}") from exc
    return apply_hf_overrides(config, hf_overrides)


def _state_dict(location: ModelLocation, config) -> dict[str, torch.Tensor]:
    if location.gguf_file is not None:
        from scorekit.models.gguf_weights import load_gguf

        _, state = load_gguf(location.folder / location.gguf_file, config=config)
        return state
    from scorekit.models.weights import load_folder_state_dict

    return load_folder_state_dict(location.folder)


def _own_backbone(config, state, dtype, info: ModelInfo):
    model_type = config.model_type
    if model_type in ENCODER_TYPES:
        from scorekit.models.encoder import EncoderModel

        return EncoderModel.from_config_and_state_dict(config, state, dtype=dtype,
                                                       token_classification=info.task == "token_classify")
    from scorekit.models.decoder import DecoderModel

    return DecoderModel.from_config_and_state_dict(config, state, dtype=dtype)


def _fallback_class(info: ModelInfo):
    """The `transformers` class to load: the one the scores need (a causal LM for next-token scores and the
    classifier_from_token conversion, a sequence classifier for a classifier), else the class the config
    names, whose weights the checkpoint holds (strict loading refuses any other fit)."""
    import transformers

    if info.is_decoder and (info.conversion is not None or info.task == "generate"):
        return transformers.AutoModelForCausalLM
    if info.task == "classify":
        return transformers.AutoModelForSequenceClassification
    named = getattr(transformers, info.architecture, None)
    if isinstance(named, type) and issubclass(named, transformers.PreTrainedModel):
        return named
    return transformers.AutoModel


def _fallback_backbone(location: ModelLocation, config, info: ModelInfo, dtype, read_elsewhere: set[str],
                       trust_remote_code: bool = False):
    from scorekit.models.hf_fallback import HFDecoderBackbone, HFEncoderBackbone, load_strict

    hf_model = load_strict(_fallback_class(info), str(location.folder), read_elsewhere=read_elsewhere,
                           config=config, gguf_file=location.gguf_file, dtype=dtype,
                           trust_remote_code=trust_remote_code)
    if not info.is_decoder:
        return HFEncoderBackbone(hf_model)
    backbone = HFDecoderBackbone(hf_model)
    if backbone.lm_head_weight is not None:
        backbone.check_logits()
    return backbone


def _decoder_head(info: ModelInfo, tokenizer, backbone: DecoderBackbone) -> DecoderHead:
    """The classifier of a decoder loaded for `classify` (models/decoder_heads.py)."""
    if info.conversion is not None:
        if backbone.lm_head_weight is None:
            raise ModelLoadError(f"{info.architecture}: classifier_from_token needs a language-model head, and "
                                 "this checkpoint has none (it already is a sequence classifier: drop the overrides)")
        return LabelTokenHead.from_conversion(info.conversion, tokenizer)
    if backbone.score_weight is not None:
        return ScoreHead(backbone.score_weight.detach().float())
    raise ModelLoadError(
        f"{info.architecture}: a decoder classifier needs a `score` head or hf_overrides with "
        "`classifier_from_token` (and `method`)"
    )


_PROJECTION_KEYS = ("linear.weight", "linear.bias")  # stanford ColBERT's projection, beside the encoder's keys


def _projection(info: ModelInfo, state: dict, dtype) -> torch.nn.Module | None:
    """ColBERT's `linear` or a sentence-transformers Dense module (Linear, then its activation)."""
    tanh = False
    if info.colbert_linear:
        weight, bias = state["linear.weight"], state.get("linear.bias")
    elif info.dense is not None:
        from scorekit.models.weights import load_folder_state_dict

        dense = StateReader(load_folder_state_dict(info.dense.folder), f"Dense module in {info.dense.folder}")
        weight = dense["linear.weight"]
        bias = dense["linear.bias"] if info.dense.bias else None  # its config says whether there is one
        dense.check_all_read()
        tanh = info.dense.tanh
    else:
        return None
    linear = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
    linear.weight.data.copy_(weight)
    if bias is not None:
        linear.bias.data.copy_(bias)
    module = torch.nn.Sequential(linear, torch.nn.Tanh()) if tanh else linear
    return module.to(dtype).requires_grad_(False)



def _load_two_tower(location: ModelLocation, config, tokenizer, device: torch.device, dtype: torch.dtype, runner: str,
                    task: str | None, max_model_len: int | None, quantization: str | None, convert: str,
                    pooler_config) -> LoadedModel:
    """CLIP, SigLIP, Siglip2 (models/vision/clip.py): the transformers class, loaded strictly, and the image
    processor from the same folder. Options that mean nothing for two towers are refused, not ignored."""
    from scorekit.models.vision.clip import PADDED_TO_MAX, TwoTowerInputs, load_image_processor, load_two_tower

    if location.gguf_file is not None:
        raise ModelLoadError(f"{config.model_type}: two-tower image models load from a folder, not a GGUF file")
    if runner == "generate":
        raise ModelLoadError(f"{config.model_type} is an embedding model: runner='generate' cannot serve it")
    if convert not in ("auto", "none", "embed"):
        raise ModelLoadError(f"convert={convert!r}: {config.model_type} is already an embedding model")
    if pooler_config:
        raise ModelLoadError(f"{config.model_type}: --pooler-config does not apply (the towers pool as the model does)")
    if quantization not in (None, "none"):
        raise ModelLoadError(f"quantization={quantization!r} is not supported for {config.model_type}")
    info = describe_model(config, location.folder, runner=runner, task=task, max_model_len=max_model_len)
    if config.model_type in PADDED_TO_MAX and info.max_model_len != config.text_config.max_position_embeddings:
        raise ModelLoadError(f"max_model_len={max_model_len}: {config.model_type} texts are always padded to "
                             f"{config.text_config.max_position_embeddings} tokens, the length its text tower pools")
    backbone = load_two_tower(str(location.folder), config, dtype, tokenizer).to(device)
    inputs = TwoTowerInputs(config, load_image_processor(str(location.folder)), tokenizer)
    return LoadedModel(location, config, tokenizer, ScoringModel(info, backbone, device, dtype), media_inputs=inputs)


def _load_vl(location: ModelLocation, config, family: str, tokenizer, device: torch.device, dtype: torch.dtype,
             runner: str, task: str | None, max_model_len: int | None, quantization: str | None) -> LoadedModel:
    """ColPali/ColQwen2 and Qwen-VL (models/vision/vl_loading.py): the transformers class loaded strictly, and
    the input builder the Scorer sends texts and images through (scoring/vl_inputs.py)."""
    from scorekit.models.vision import vl_loading
    from scorekit.scoring.vl_inputs import ColVisionMediaInputs, QwenVLMediaInputs

    if location.gguf_file is not None:
        raise ModelLoadError(f"{config.model_type}: vision-language models load from a folder, not a GGUF file")
    if quantization not in (None, "none"):
        raise ModelLoadError(f"quantization={quantization!r} is not supported for {config.model_type}")
    info = describe_model(config, location.folder, runner=runner, task=task, max_model_len=max_model_len)
    backbone = vl_loading.load_vl_backbone(location.folder, config, family, dtype).to(device)
    head = None
    if family == vl_loading.COLVISION:
        inputs = ColVisionMediaInputs(vl_loading.load_colvision_inputs(location.folder, config, info.max_model_len),
                                      backbone.embedding_dim)
    else:
        if info.task not in ("classify", "generate"):
            raise ModelLoadError(f"{info.architecture}: a Qwen-VL model serves generative scoring, or classify "
                                 f"through hf_overrides' classifier_from_token, not {info.task!r}")
        if info.task == "classify":
            head = _decoder_head(info, tokenizer, backbone)
        inputs = QwenVLMediaInputs(tokenizer, vl_loading.load_image_processor(location.folder), info.max_model_len,
                                   config.get_text_config().hidden_size)
    return LoadedModel(location, config, tokenizer, ScoringModel(info, backbone, device, dtype, decoder_head=head),
                       media_inputs=inputs)


def load_model(
    model: str | None = None,
    runner: str = "auto",
    task: str | None = None,
    hf_overrides: dict | None = None,
    max_model_len: int | None = None,
    dtype: str | torch.dtype | None = "auto",
    device: str | None = "auto",
    use_own_models: bool = True,
    quantization: str | None = None,
    convert: str = "auto",
    pooler_config: dict | str | None = None,
    trust_remote_code: bool = False,
    revision: str | None = None,
    download_dir: str | None = None,
) -> LoadedModel:
    location = resolve_model(model, revision=revision, download_dir=download_dir)
    config = load_config(location, hf_overrides, trust_remote_code)
    tokenizer = load_tokenizer(location, trust_remote_code)
    torch_device = pick_device(device)
    torch_dtype = pick_dtype(dtype, torch_device, config)

    if config.model_type in TWO_TOWER_TYPES:
        return _load_two_tower(location, config, tokenizer, torch_device, torch_dtype, runner, task, max_model_len,
                               quantization, convert, pooler_config)
    from scorekit.models.vision.vl_loading import vl_family

    family = vl_family(config)
    if family is not None:
        return _load_vl(location, config, family, tokenizer, torch_device, torch_dtype, runner, task, max_model_len,
                        quantization)
    own = use_own_models and config.model_type in ENCODER_TYPES | DECODER_TYPES
    state = _state_dict(location, config) if own or location.gguf_file is None else None
    info = describe_model(config, location.folder, runner=runner, task=task, max_model_len=max_model_len,
                          has_colbert_linear=state is not None and "linear.weight" in state, convert=convert,
                          pooler=parse_pooler_config(pooler_config))
    if runner == "pooling" and info.task == "generate":
        raise ModelLoadError("runner='pooling' cannot serve generative scoring; use runner='generate'")
    # The projection's tensors are read here, not by the backbone, whose strict loading must not count them.
    projection_state = {k: state.pop(k) for k in _PROJECTION_KEYS if k in state} if info.colbert_linear else {}
    if info.task == "token_classify" and not own:
        raise ModelLoadError(f"{info.architecture}: token classification runs on scorekit's own encoder, which "
                             "use_own_models=False turns off")
    if own:
        backbone = _own_backbone(config, state, torch_dtype, info)
    else:
        backbone = _fallback_backbone(location, config, info, torch_dtype, set(projection_state), trust_remote_code)
    del state

    if info.task == "classify" and isinstance(backbone, EncoderBackbone) and not backbone.has_classifier:
        raise ModelLoadError(f"{info.architecture}: this checkpoint has no sequence-classification head; "
                             "load it with task='embed' (or runner='pooling') instead")
    if info.task == "generate" and backbone.lm_head_weight is None:
        raise ModelLoadError(f"{info.architecture}: this checkpoint has no language-model head (it is a sequence "
                             "classifier), so it cannot run generative scoring")
    head = _decoder_head(info, tokenizer, backbone) if info.is_decoder and info.task == "classify" else None
    projection = _projection(info, projection_state, torch_dtype)
    backbone = quantize_backbone(backbone, quantization, torch_device).to(torch_device)
    if isinstance(head, ScoreHead):
        head = ScoreHead(head.weight.to(torch_device))
    scoring = ScoringModel(
        info, backbone, torch_device, torch_dtype, decoder_head=head,
        projection=projection.to(torch_device) if projection is not None else None,
        activation=ActivationMemory.from_config(config, torch_dtype),
    )
    return LoadedModel(location, config, tokenizer, scoring)
