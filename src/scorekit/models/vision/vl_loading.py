"""Loading the vision-language families of this package from a folder: which family a config is, the backbone
(strictly loaded `transformers` class: no weight left random), and the input builder that goes with it
(the model's processor or image processor). The loader's dispatch calls these three.
"""

from __future__ import annotations

from pathlib import Path

import torch

from scorekit.errors import ModelLoadError
from scorekit.models.vision.colpali import COLVISION_ARCHITECTURES, ColVisionBackbone, ColVisionInputs
from scorekit.models.vision.qwen_vl import QWEN_VL_TYPES, QwenVLBackbone

COLVISION = "colvision"  # ColPali / ColQwen2: late interaction (task token_embed)
QWEN_VL = "qwen_vl"  # Qwen2-VL / Qwen2.5-VL / Qwen3-VL: decoders (generate, or classify through hf_overrides)


def vl_family(config) -> str | None:
    """COLVISION, QWEN_VL, or None for a model this package does not serve."""
    architectures = getattr(config, "architectures", None) or []
    if any(a in COLVISION_ARCHITECTURES for a in architectures) or config.model_type in ("colpali", "colqwen2"):
        return COLVISION
    if config.model_type in QWEN_VL_TYPES:
        return QWEN_VL
    return None


def load_vl_backbone(folder: Path, config, family: str, dtype: torch.dtype):
    """The backbone of a COLVISION or QWEN_VL folder. A Qwen-VL config may name any head (the reranker recipe's
    `Qwen3VLForSequenceClassification`, which transformers has no class for): the *ForConditionalGeneration class
    is loaded, whose LM head the classifier_from_token conversion reads."""
    import transformers

    from scorekit.models.hf_fallback import load_strict

    if family == COLVISION:
        cls = transformers.ColPaliForRetrieval if config.model_type == "colpali" else transformers.ColQwen2ForRetrieval
        return ColVisionBackbone(load_strict(cls, str(folder), config=config, dtype=dtype))
    if family == QWEN_VL:
        model = load_strict(transformers.AutoModelForImageTextToText, str(folder), config=config, dtype=dtype)
        backbone = QwenVLBackbone(model)
        backbone.check_logits()
        return backbone
    raise ModelLoadError(f"not a vision-language family of scorekit: {family!r}")


def load_image_processor(folder: Path):
    """The folder's image processor (`preprocessor_config.json`), the PIL one when torchvision is absent."""
    from transformers import AutoImageProcessor

    try:
        return AutoImageProcessor.from_pretrained(str(folder))
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{folder}: no image processor could be loaded ({exc})") from exc


def load_colvision_inputs(folder: Path, config, max_model_len: int) -> ColVisionInputs:
    """ColPali's or ColQwen2's own processor (query and image forms), from the folder."""
    import transformers

    cls = transformers.ColPaliProcessor if config.model_type == "colpali" else transformers.ColQwen2Processor
    try:
        processor = cls.from_pretrained(str(folder))
    except (OSError, ValueError, TypeError) as exc:
        raise ModelLoadError(f"{folder}: the {cls.__name__} could not be loaded ({exc})") from exc
    return ColVisionInputs(processor, max_model_len)
