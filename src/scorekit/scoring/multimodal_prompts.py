"""Score inputs with images (media/content.py `Content`, or plain strings) → engine Prompts with media, for the
vision-language families of models/vision: Qwen-VL decoders (cross-encoder pairs through a score template, and
generative scoring) and ColPali/ColQwen2 (late interaction, each side on its own).

Qwen-VL (SPEC §8, §9): each side's text is its images' placeholders `<|vision_start|><|image_pad|><|vision_end|>`
**prepended** to its text parts joined with newlines; a cross-encoder pair is one prompt whose media are the query's
images and the document's, in the order the rendered prompt places them. After tokenising, each `<|image_pad|>`
is expanded to its image's token count (what the HF processor does to the text before tokenising; the tests check
the two agree). A prompt with images is never cut: a cut could split an image, so an over-long one is refused
with the context-length error.
"""

from __future__ import annotations

import functools
from typing import Any, Sequence

from scorekit.engine.prompt import Prompt
from scorekit.errors import ValidationError
from scorekit.media.content import Content, ImagePart
from scorekit.models.vision.colpali import ColVisionInputs
from scorekit.models.vision.qwen_vl import (IMAGE_PLACEHOLDER, QwenVLImage, expand_image_pads, process_images,
                                            prompt_media)
from scorekit.scoring.templates import check_template_kwargs, render_score_prompt
from scorekit.scoring.truncation import too_long_error

Side = str | Content


def _parts(side: Side) -> tuple[list[str], list[ImagePart]]:
    if isinstance(side, Content):
        return side.texts, side.images
    return [side], []


@functools.lru_cache(maxsize=32)
def _query_first(template: str) -> bool:
    """Whether the template renders the query before the document (the images must follow the prompt's order)."""
    rendered = render_score_prompt(template, "\x00query\x00", "\x00document\x00", {}, None)
    q, d = rendered.find("\x00query\x00"), rendered.find("\x00document\x00")
    return q < 0 or d < 0 or q < d


class QwenVLPrompts:
    def __init__(self, tokenizer, image_processor, max_model_len: int, template: str | None = None,
                 special_tokens: dict[str, str | None] | None = None):
        self.tokenizer = tokenizer
        self.image_processor = image_processor
        self.max_model_len = max_model_len
        self.template = template
        self.special_tokens = special_tokens or {}
        self.pad_id = tokenizer.convert_tokens_to_ids("<|image_pad|>")
        self.merge_size = image_processor.merge_size

    def side_text(self, side: Side) -> tuple[str, list[ImagePart]]:
        """A side as template content: one placeholder per image, then the text parts joined with newlines."""
        texts, images = _parts(side)
        return IMAGE_PLACEHOLDER * len(images) + "\n".join(texts), images

    def _processed(self, images: Sequence[ImagePart], seen: dict) -> list[QwenVLImage]:
        """Each distinct image through the image processor once per call (1:N repeats the query's images), with
        its own processor options (mm_processor_kwargs): the images of one set of options in one call."""
        new = [p for p in dict.fromkeys(images) if p.key not in seen]
        for options in dict.fromkeys(p.options for p in new):
            group = [p for p in new if p.options == options]
            for part, out in zip(group, process_images(self.image_processor, [p.image for p in group], options)):
                seen[part.key] = out
        return [seen[p.key] for p in images]

    def _prompt(self, ids: Sequence[int], parts: Sequence[ImagePart], seen: dict, limit: int) -> Prompt:
        if not parts:
            return Prompt(tuple(ids))
        images = self._processed(parts, seen)
        ids = expand_image_pads(ids, self.pad_id, [i.tokens(self.merge_size) for i in images])
        if len(ids) > limit:
            raise too_long_error(len(ids), limit)
        return Prompt(tuple(ids), media=prompt_media(images, [p.key for p in parts]))

    def _check_placeholders(self, ids: Sequence[int], images: int, where: str) -> None:
        found = sum(1 for t in ids if t == self.pad_id)
        if found != images:
            raise ValidationError(f"{where}: the text contains {found - images} extra '<|image_pad|>' tokens; "
                                  "send images as image parts, not as placeholder text", param=where)

    def pairs(self, pairs: Sequence[tuple[Side, Side]], template_kwargs: dict[str, Any] | None = None) -> list[Prompt]:
        """Cross-encoder prompts: the template (if any) over both sides' texts; media = query's, then document's
        images (or the other way round when the template puts the document first)."""
        if self.template is not None:
            check_template_kwargs(template_kwargs)
        query_first = self.template is None or _query_first(self.template)
        texts, media_parts = [], []
        for query, document in pairs:
            (q_text, q_images), (d_text, d_images) = self.side_text(query), self.side_text(document)
            if self.template is None:
                texts.append(q_text + d_text)
            else:
                texts.append(render_score_prompt(self.template, q_text, d_text, self.special_tokens, template_kwargs))
            media_parts.append(q_images + d_images if query_first else d_images + q_images)
        encoded = self.tokenizer(texts, add_special_tokens=True)["input_ids"]
        seen: dict = {}
        prompts = []
        for i, (ids, parts) in enumerate(zip(encoded, media_parts)):
            self._check_placeholders(ids, len(parts), f"pair {i}")
            if not parts and len(ids) > self.max_model_len:
                raise too_long_error(len(ids), self.max_model_len)
            prompts.append(self._prompt(ids, parts, seen, self.max_model_len))
        return prompts

    def generative(self, query: Side, items: Sequence[Side], item_first: bool = False,
                   add_special_tokens: bool = True) -> list[Prompt]:
        """query tokens (with special tokens) + item tokens (without), or item first; each side's images in the
        order its tokens come. A text-only prompt keeps its first max_model_len - 1 tokens (SPEC §5.5); one with
        images is refused when too long. Token id lists have no place for an image's placeholder: refused here."""
        for where, side in [("query", query), *((f"items[{k}]", item) for k, item in enumerate(items))]:
            if not isinstance(side, (str, Content)):
                raise ValidationError(f"{where}: token ids cannot be scored together with multimodal inputs; send "
                                      "text (or {\"content\": [...]})", param=where.split("[")[0])
        q_text, q_images = self.side_text(query)
        q_ids = self.tokenizer(q_text, add_special_tokens=add_special_tokens)["input_ids"]
        self._check_placeholders(q_ids, len(q_images), "query")
        item_sides = [self.side_text(item) for item in items]
        item_ids = self.tokenizer([t for t, _ in item_sides], add_special_tokens=False)["input_ids"]
        keep = self.max_model_len - 1  # room for the one generated token
        seen: dict = {}
        prompts = []
        for k, (ids, (_, images)) in enumerate(zip(item_ids, item_sides)):
            self._check_placeholders(ids, len(images), f"items[{k}]")
            whole, parts = (ids + q_ids, images + q_images) if item_first else (q_ids + ids, q_images + images)
            prompts.append(self._prompt(whole, parts, seen, keep) if parts else Prompt(tuple(whole[:keep])))
        if any(len(p) == 0 for p in prompts):
            raise ValidationError("A generative scoring prompt is empty: give a query or non-empty items.")
        return prompts


def colvision_prompts(inputs: ColVisionInputs, sides: Sequence[Side], where: str) -> list[Prompt]:
    """Late-interaction prompts of ColPali/ColQwen2, one per side: text through the processor's query form, an
    image through its image form (models/vision/colpali.py)."""
    prompts: list[Prompt | None] = [None] * len(sides)
    text_rows = []
    for i, side in enumerate(sides):
        texts, images = _parts(side)
        ColVisionInputs.check_parts(texts, images, f"{where}[{i}]")
        if images:
            p = inputs.image(images[0].image, images[0].options)
            prompts[i] = Prompt(tuple(p.input_ids), _types(p.token_type_ids), p.media(images[0].key))
        else:
            text_rows.append((i, "\n".join(texts)))
    for (i, _), p in zip(text_rows, inputs.texts([t for _, t in text_rows])):
        prompts[i] = Prompt(tuple(p.input_ids), _types(p.token_type_ids))
    return prompts  # type: ignore[return-value]


def _types(types: list[int] | None) -> tuple[int, ...] | None:
    return tuple(types) if types is not None else None

