"""Qwen2-VL / Qwen2.5-VL / Qwen3-VL as generative scorers and converted rerankers, on tiny random models
(tests/multimodal/vl_models.py).

Reference: `transformers`' own *ForConditionalGeneration forward, one prompt at a time (no padding; the model
computes its M-RoPE positions itself), logits at the last position. scorekit runs the same prompts batched,
right-padded, text-only rows mixed with image rows. Tolerance 1e-5 on probabilities and logit differences (fp32).
"""

from __future__ import annotations

import pytest
import torch

from scorekit.engine.prompt import Prompt
from scorekit.engine.runner import collate
from scorekit.models.decoder_heads import LabelTokenHead
from scorekit.models.model_info import Conversion
from scorekit.models.vision.qwen_vl import (IMAGE_PLACEHOLDER, QwenVLBackbone, expand_image_pads, process_images,
                                           prompt_media)
from tests.multimodal.vl_models import random_image, tiny_qwen_vl

TOL = 1e-5
FAMILIES = ["qwen2_vl", "qwen2_5_vl", "qwen3_vl"]


def _prompt_text(document: str, images: int) -> str:
    """A reranker-style prompt with the document's image placeholders prepended to its text (SPEC §8)."""
    return ("<|im_start|>user\n<Query>: a cat in the snow\n<Document>: " + IMAGE_PLACEHOLDER * images + document
            + "<|im_end|>\n<|im_start|>assistant\n")


@pytest.fixture(scope="module", params=FAMILIES)
def tiny(request):
    return tiny_qwen_vl(request.param)


@pytest.fixture(scope="module")
def prompts(tiny):
    """(token ids, images) rows: text only, one image, two images of different sizes, text only again."""
    docs = [("a plain text document", []), ("", [random_image(1)]),
            ("two pictures", [random_image(2, (40, 100)), random_image(3, (64, 64))]), ("short", [])]
    pad = tiny.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = tiny.model.config.vision_config.spatial_merge_size
    rows = []
    for text, pictures in docs:
        images = process_images(tiny.image_processor, pictures)
        ids = tiny.tokenizer(_prompt_text(text, len(pictures)))["input_ids"]
        rows.append((expand_image_pads(ids, pad, [i.tokens(merge) for i in images]), images))
    return rows


def _reference_last_logits(tiny, ids, images) -> torch.Tensor:
    """transformers' forward on one unpadded prompt: next-token logits at its last position."""
    input_ids = torch.tensor([ids])
    inputs = {"input_ids": input_ids, "attention_mask": torch.ones_like(input_ids),
              "mm_token_type_ids": (input_ids == tiny.model.config.image_token_id).int()}
    if images:
        inputs["pixel_values"] = torch.cat([i.pixel_values for i in images])
        inputs["image_grid_thw"] = torch.cat([i.image_grid_thw for i in images])
    with torch.no_grad():
        return tiny.model(**inputs).logits[0, -1]


def _last_hidden(backbone, rows) -> torch.Tensor:
    """scorekit: the rows as engine prompts with media, collated by the engine (right padding, pad id 0: any id
    may pad), through the backbone; the hidden state at each row's last real position."""
    prompts = [Prompt(tuple(ids), media=prompt_media(images, [f"{i}-{k}" for k in range(len(images))]))
               for i, (ids, images) in enumerate(rows)]
    batch = collate(prompts, pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        hidden = backbone.hidden_states(batch.input_ids, batch.attention_mask, media=batch.media)
    return hidden[torch.arange(len(rows)), batch.last_index]


def _labels(tiny) -> list[int]:
    return tiny.tokenizer.convert_tokens_to_ids(["yes", "no"])


def test_placeholders_expand_to_the_image_grid(tiny, prompts):
    merge = tiny.model.config.vision_config.spatial_merge_size
    pad = tiny.model.config.image_token_id
    for ids, images in prompts:
        assert sum(t == pad for t in ids) == sum(int(i.image_grid_thw.prod()) // merge**2 for i in images)
    first, second = prompts[2][1]  # images of different shapes: different grids (M-RoPE height and width)
    assert first.image_grid_thw.tolist() != second.image_grid_thw.tolist()
    with pytest.raises(ValueError, match="1 image placeholders for 2 images"):
        expand_image_pads([5, pad, 6], pad, [4, 4])


def test_generative_score_with_images_matches_transformers(tiny, prompts):
    """P(yes | {yes, no}) at the last position: softmax over the label logits, as generative_score computes it."""
    backbone, labels = QwenVLBackbone(tiny.model), _labels(tiny)
    last = _last_hidden(backbone, prompts)
    got = torch.softmax(backbone.logits(last, torch.tensor(labels)).float(), dim=-1)[:, 0]
    want = torch.stack([torch.softmax(_reference_last_logits(tiny, ids, im)[labels], -1)[0] for ids, im in prompts])
    assert torch.allclose(got, want, atol=TOL), (got, want)
    # apply_softmax=False: the true probability, over the whole vocabulary
    full = torch.log_softmax(backbone.logits(last).float(), dim=-1)[:, labels[0]].exp()
    want_full = torch.stack([torch.softmax(_reference_last_logits(tiny, ids, im), -1)[labels[0]] for ids, im in prompts])
    assert torch.allclose(full, want_full, atol=TOL)
    assert got.max() - got.min() > 1e-4  # the rows differ: a constant would not pass


def test_converted_reranker_with_images_matches_transformers(tiny, prompts):
    """The Qwen3-VL-Reranker recipe's head (classifier_from_token ["no", "yes"], from_2_way_softmax, which
    is_original_qwen3_reranker implies): sigmoid(l_yes - l_no) at the last position."""
    backbone = QwenVLBackbone(tiny.model)
    head = LabelTokenHead.from_conversion(Conversion("from_2_way_softmax", ["no", "yes"]), tiny.tokenizer)
    got = torch.sigmoid(head(backbone, _last_hidden(backbone, prompts))[:, 0])
    yes, no = _labels(tiny)
    want = []
    for ids, images in prompts:
        logits = _reference_last_logits(tiny, ids, images)
        want.append(torch.sigmoid(logits[yes] - logits[no]))
    assert torch.allclose(got, torch.stack(want), atol=TOL)


def test_scores_do_not_depend_on_the_batch(tiny, prompts):
    """Each row alone, all rows together, and the rows reversed give the same hidden states: image features go
    to their own row, and M-RoPE positions are each row's own under right padding."""
    backbone = QwenVLBackbone(tiny.model)
    together = _last_hidden(backbone, prompts)
    reversed_rows = _last_hidden(backbone, prompts[::-1]).flip(0)
    alone = torch.cat([_last_hidden(backbone, [row]) for row in prompts])
    assert torch.allclose(together, alone, atol=TOL) and torch.allclose(reversed_rows, alone, atol=TOL)


def test_an_image_count_that_does_not_match_the_tokens_is_refused(tiny, prompts):
    backbone = QwenVLBackbone(tiny.model)
    ids, images = prompts[1]
    with pytest.raises(ValueError, match="image tokens"):
        _last_hidden(backbone, [(ids, [])])
