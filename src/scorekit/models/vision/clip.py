"""CLIP, SigLIP and Siglip2 two-tower bi-encoders on their `transformers` classes.

Each tower embeds one input on its own, text or image, into one space: scores are cosines of the L2-normalised
features `get_text_features` / `get_image_features` return (CLIP's own logits are 100 × that cosine; SigLIP's
sigmoid(scale · cosine + bias) is a calibrated probability, not what an embedding server returns: vLLM's
embedding path returns the features, and scorekit the cosine of them). The model code is transformers'; ours
is only what decides exact inputs:

* text prompts are what the model's processor gives: CLIP's tokenizer (BOS ... EOS, at most 77 tokens, no padding
  needed: the text tower pools at the first EOS under a causal mask); SigLIP and Siglip2 pool the *last*
  position, so padding is part of the input: texts are padded (and cut) to the text tower's
  `max_position_embeddings` (64), Siglip2Processor's default and how SigLIP was trained (its model card and
  vLLM's tests pass padding="max_length"). A tokenizer that returns an attention mask gets it back: the tower
  masks the pad positions (`mask_pads`);
* image prompts carry the image processor's tensors (`pixel_values`; Siglip2 also `pixel_attention_mask` and
  `spatial_shapes`) under the key (image digest and mm_processor_kwargs, processor fingerprint), and cost the positions the vision tower
  runs (CLIP: patches + the class token; SigLIP: patches; Siglip2: its max_num_patches).
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import torch
from torch import Tensor

from scorekit.engine.media import Media
from scorekit.engine.prompt import Prompt
from scorekit.errors import ModelLoadError, ValidationError
from scorekit.models.backbone import DualEncoderBackbone

# model_type -> the transformers class whose weights such a checkpoint holds
TWO_TOWER_CLASSES = {"clip": "CLIPModel", "siglip": "SiglipModel", "siglip2": "Siglip2Model"}
PADDED_TO_MAX = {"siglip", "siglip2"}  # text towers that pool the last position


class TwoTowerBackbone(torch.nn.Module, DualEncoderBackbone):
    def __init__(self, hf_model, pad_id: int, mask_pads: bool):
        super().__init__()
        self.hf_model = hf_model.eval().requires_grad_(False)
        self.pad_id = pad_id
        self.mask_pads = mask_pads  # the tokenizer returns an attention mask with zeros on (fixed-length) pads

    @property
    def vocab_size(self) -> int:
        return self.hf_model.config.text_config.vocab_size

    def text_embeds(self, input_ids: Tensor, attention_mask: Tensor) -> Tensor:
        if self.mask_pads:
            attention_mask = attention_mask * (input_ids != self.pad_id)
        return _features(self.hf_model.get_text_features(input_ids=input_ids, attention_mask=attention_mask))

    def image_embeds(self, pixel_inputs: dict[str, Tensor]) -> Tensor:
        return _features(self.hf_model.get_image_features(**pixel_inputs))


def _features(output) -> Tensor:
    return output if isinstance(output, Tensor) else output.pooler_output


def load_two_tower(folder: str, config, dtype: torch.dtype, tokenizer) -> TwoTowerBackbone:
    import transformers

    from scorekit.models.hf_fallback import load_strict

    cls = getattr(transformers, TWO_TOWER_CLASSES[config.model_type])
    hf_model = load_strict(cls, folder, config=config, dtype=dtype)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    mask_pads = config.model_type in PADDED_TO_MAX and "attention_mask" in tokenizer.model_input_names
    return TwoTowerBackbone(hf_model, pad_id, mask_pads)


def load_image_processor(folder: str):
    """The folder's processor (AutoProcessor), called for images only: its class may set image defaults of its
    own over the image processor's (Siglip2Processor: patch_size 16, max_num_patches 256)."""
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(folder)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"Could not read the image processor in {folder} (preprocessor_config.json or "
                             f"processor_config.json): {exc}") from exc


class TwoTowerInputs:
    """Turns texts and decoded images into the prompts the two towers take, exactly as the model's processor
    would. Runs on a model thread (the image processor is pure CPU work, like tokenising)."""

    def __init__(self, config, image_processor, tokenizer):
        self.model_type = config.model_type
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        text, vision = config.text_config, config.vision_config
        self.text_length = int(text.max_position_embeddings)
        self.pad_to_max = self.model_type in PADDED_TO_MAX
        settings = image_processor.image_processor.to_json_string() + repr(getattr(image_processor, "images_kwargs", None))
        self.fingerprint = hashlib.sha256(settings.encode()).hexdigest()[:16]  # processor settings: part of the key
        if self.model_type == "siglip2":
            defaults = getattr(image_processor, "images_kwargs", None) or {}
            self.image_tokens = int(defaults.get("max_num_patches")
                                    or getattr(image_processor.image_processor, "max_num_patches", 256))
        else:
            patches = (int(vision.image_size) // int(vision.patch_size)) ** 2
            self.image_tokens = patches + (1 if self.model_type == "clip" else 0)
        self.embedding_size = int(getattr(config, "projection_dim", None) if self.model_type == "clip"
                                  else getattr(text, "projection_size", None) or text.hidden_size)

    def check_processor_kwargs(self, kwargs) -> tuple:
        """mm_processor_kwargs: Siglip2 takes `max_num_patches` (its NaFlex resolution: the patches an image is
        resized to at most, and the positions the vision tower runs). CLIP and SigLIP take none: their vision
        towers have position embeddings for one image size, so no processor setting may change it."""
        from scorekit.scoring.vl_inputs import PARAM, refuse_unknown

        name = TWO_TOWER_CLASSES[self.model_type]
        if self.model_type != "siglip2":
            refuse_unknown(kwargs, (), f"{name}'s image processor (its vision tower takes one image size)")
        refuse_unknown(kwargs, ("max_num_patches",), f"{name}'s image processor")
        value = kwargs["max_num_patches"]
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ValidationError(f"{PARAM}.max_num_patches must be a positive integer, not {value!r}", param=PARAM)
        return (("max_num_patches", value),)

    def image_prompts(self, images: Sequence) -> list[Prompt]:
        """One prompt per image part (a `media.content.ImagePart`): no token ids, the processor's tensors. Images
        with processor options (`ImagePart.options`, checked by `check_processor_kwargs`) are processed with them,
        and cost the positions those options give (Siglip2: max_num_patches)."""
        prompts: dict[int, Prompt] = {}
        for options in dict.fromkeys(part.options for part in images):
            rows = [i for i, part in enumerate(images) if part.options == options]
            encoded = self.image_processor(images=[images[i].image for i in rows], return_tensors="pt",
                                           **dict(options))
            tensors = {name: value for name, value in encoded.items() if isinstance(value, Tensor)}
            tokens = dict(options).get("max_num_patches", self.image_tokens)
            for k, i in enumerate(rows):
                prompts[i] = Prompt((), media=Media(("image", images[i].key, self.fingerprint),
                                                    {name: value[k:k + 1] for name, value in tensors.items()},
                                                    extra_tokens=tokens))
        return [prompts[i] for i in range(len(images))]

    def prompts(self, items: Sequence, builder, truncation, is_query: bool) -> list[Prompt]:
        """The prompt of each input, in order: a string or a text-only `Content` goes to the text tower, a
        `Content` of exactly one image to the image tower. Text and image together (or several images) in one
        input is a ValidationError: two towers have no joint encoding of them."""
        from scorekit.media.content import Content

        texts: dict[int, str] = {}
        images: dict[int, object] = {}
        for i, item in enumerate(items):
            if isinstance(item, str):
                texts[i] = item
            elif isinstance(item, Content):
                if item.images and (item.texts or len(item.images) > 1):
                    raise ValidationError(
                        f"{TWO_TOWER_CLASSES[self.model_type]} embeds text and images with separate towers: one "
                        f"input may hold text or one image, not {len(item.texts)} text and {len(item.images)} image "
                        "parts. Send them as separate inputs.", param="content")
                if item.images:
                    images[i] = item.images[0]
                elif item.texts:
                    texts[i] = item.text
                else:
                    raise ValidationError("A content input has no text or image part", param="content")
            else:
                raise ValidationError(f"Unsupported input of type {type(item).__name__}: give a string or a "
                                      "resolved multimodal content", param="content")
        out: dict[int, Prompt] = {}
        out.update(zip(texts, self.text_prompts(builder, list(texts.values()), truncation, is_query)))
        out.update(zip(images, self.image_prompts(list(images.values()))))
        return [out[i] for i in range(len(items))]

    def text_prompts(self, builder, texts: list[str], truncation, is_query: bool) -> list[Prompt]:
        if not texts:
            return []
        if not self.pad_to_max:
            return builder.singles(texts, truncation, is_query=is_query)
        limit = truncation.max_tokens_per_query if is_query else truncation.max_tokens_per_doc
        if limit or truncation.truncate_prompt_tokens not in (None, -1, self.text_length):
            raise ValidationError(f"{TWO_TOWER_CLASSES[self.model_type]} texts are always cut and padded to "
                                  f"{self.text_length} tokens (the position its text tower pools): truncation "
                                  "options do not apply", param="truncate_prompt_tokens")
        return builder.padded_singles(texts, self.text_length)
