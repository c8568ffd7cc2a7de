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


# -- prompts built from Content (scoring/multimodal_prompts.py) ---------------------------------------------------

def _content(*parts):
    from scorekit.media.content import Content, ImagePart

    return Content(tuple(ImagePart(p, f"digest-{id(p)}") if not isinstance(p, str) else p for p in parts))


def _text_expanded(tiny, text: str, images) -> str:
    """The processor's way: each image's placeholder widened in the text itself, before tokenising."""
    merge = tiny.model.config.vision_config.spatial_merge_size
    for image in images:
        text = text.replace("<|image_pad|>", "<|placeholder|>" * image.tokens(merge), 1)
    return text.replace("<|placeholder|>", "<|image_pad|>")


def test_reranker_template_with_an_image_in_the_document_matches_transformers(tiny):
    """The Qwen3-VL-Reranker recipe end to end below the Scorer: qwen3_vl_reranker.jinja, the document's image
    placeholder prepended to its text, media merged into the pair's prompt, LabelTokenHead ["no", "yes"]."""
    from scorekit.scoring.multimodal_prompts import QwenVLPrompts
    from scorekit.scoring.templates import load_template

    template = load_template("qwen3_vl_reranker")
    builder = QwenVLPrompts(tiny.tokenizer, tiny.image_processor, 512, template)
    cat = random_image(7, (48, 80))
    pairs = [("A cat standing in the snow.", "This product was excellent."),
             ("A cat standing in the snow.", _content(cat)),
             ("A cat standing in the snow.", _content("This product was excellent.", cat)),
             (_content("which one?", random_image(8)), _content(cat))]
    prompts = builder.pairs(pairs, {"instruction": "Find the picture."})
    assert [p.media is None for p in prompts] == [True, False, False, False]
    assert prompts[1].media == prompts[2].media  # the same image: the same media key (the ids tell the prompts apart)
    backbone = QwenVLBackbone(tiny.model)
    head = LabelTokenHead.from_conversion(Conversion("from_2_way_softmax", ["no", "yes"]), tiny.tokenizer)
    batch = collate(prompts, pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        hidden = backbone.hidden_states(batch.input_ids, batch.attention_mask, media=batch.media)
    got = torch.sigmoid(head(backbone, hidden[torch.arange(len(prompts)), batch.last_index])[:, 0])
    yes, no = _labels(tiny)
    for k, ((query, document), prompt) in enumerate(zip(pairs, prompts)):
        q_text, q_parts = builder.side_text(query)
        d_text, d_parts = builder.side_text(document)
        images = process_images(tiny.image_processor, [p.image for p in q_parts + d_parts])
        text = _text_expanded(tiny, render_with(template, q_text, d_text), images)
        ids = tiny.tokenizer(text)["input_ids"]
        assert list(prompt.input_ids) == ids  # id-level expansion = the processor's text-level expansion
        assert ("<Document>:" + IMAGE_PLACEHOLDER) in render_with(template, q_text, d_text) or not d_parts
        logits = _reference_last_logits(tiny, ids, images)
        assert float(got[k]) == pytest.approx(float(torch.sigmoid(logits[yes] - logits[no])), abs=TOL)


def render_with(template, query, document):
    from scorekit.scoring.templates import render_score_prompt

    return render_score_prompt(template, query, document, {}, {"instruction": "Find the picture."})


def test_generative_prompts_with_images_match_transformers(tiny):
    from scorekit.scoring.multimodal_prompts import QwenVLPrompts

    builder = QwenVLPrompts(tiny.tokenizer, tiny.image_processor, 512)
    picture = random_image(9)
    items = [" Answer:", _content(picture, " Is it a cat? Answer:"), _content("two", random_image(10), picture)]
    query = _content("Look: ", random_image(11))
    for item_first in (False, True):
        prompts = builder.generative(query, items, item_first=item_first)
        backbone, labels = QwenVLBackbone(tiny.model), _labels(tiny)
        batch = collate(prompts, pad_id=0, device=torch.device("cpu"))
        with torch.no_grad():
            hidden = backbone.hidden_states(batch.input_ids, batch.attention_mask, media=batch.media)
        got = torch.softmax(backbone.logits(hidden[torch.arange(len(prompts)), batch.last_index],
                                            torch.tensor(labels)), -1)[:, 0]
        q_text, q_parts = builder.side_text(query)
        for k, item in enumerate(items):
            i_text, i_parts = builder.side_text(item)
            q_ids, i_ids = tiny.tokenizer(q_text)["input_ids"], tiny.tokenizer(i_text, add_special_tokens=False)["input_ids"]
            parts = i_parts + q_parts if item_first else q_parts + i_parts
            images = process_images(tiny.image_processor, [p.image for p in parts])
            ids = expand_image_pads(i_ids + q_ids if item_first else q_ids + i_ids, tiny.model.config.image_token_id,
                                    [i.tokens(2) for i in images])
            assert list(prompts[k].input_ids) == ids
            want = torch.softmax(_reference_last_logits(tiny, ids, images)[labels], -1)[0]
            assert float(got[k]) == pytest.approx(float(want), abs=TOL)


def test_placeholder_text_without_an_image_is_refused(tiny):
    from scorekit.scoring.multimodal_prompts import QwenVLPrompts

    builder = QwenVLPrompts(tiny.tokenizer, tiny.image_processor, 512)
    with pytest.raises(ValueError, match="extra '<\\|image_pad\\|>'"):
        builder.pairs([("q", "a fake <|image_pad|> token")])


def test_an_image_prompt_over_the_limit_is_refused_not_cut(tiny):
    from scorekit.scoring.multimodal_prompts import QwenVLPrompts

    builder = QwenVLPrompts(tiny.tokenizer, tiny.image_processor, 40)
    with pytest.raises(ValueError, match="maximum context length is 40"):
        builder.pairs([("a query", _content("a long document " * 3, random_image(12)))])
    text_only = builder.generative("a query " * 20, [" item"])  # text keeps its first 39 tokens, silently
    assert len(text_only[0]) == 39


def test_scoring_model_passes_the_batch_media_to_the_backbone(tiny, prompts):
    """ScoringModel.classify and next_token on a batch with media: the same scores as the backbone tests above."""
    from scorekit.models.model_info import ModelInfo
    from scorekit.models.scoring_model import ScoringModel

    backbone = QwenVLBackbone(tiny.model)
    head = LabelTokenHead.from_conversion(Conversion("from_2_way_softmax", ["no", "yes"]), tiny.tokenizer)
    info = ModelInfo(tiny.model.config.architectures[0] if tiny.model.config.architectures else "QwenVL",
                     tiny.model.config.model_type, "classify", 512, is_decoder=True)
    model = ScoringModel(info, backbone, torch.device("cpu"), torch.float32, decoder_head=head)
    engine_prompts = [Prompt(tuple(ids), media=prompt_media(images, [f"{i}-{k}" for k in range(len(images))]))
                      for i, (ids, images) in enumerate(prompts)]
    batch = collate(engine_prompts, pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        logits = torch.stack(model.classify(batch))[:, 0]
        labels = torch.stack(model.next_token(batch, tuple(_labels(tiny)), False))
    yes, no = _labels(tiny)
    for k, (ids, images) in enumerate(prompts):
        ref = _reference_last_logits(tiny, ids, images)
        assert float(logits[k]) == pytest.approx(float(ref[yes] - ref[no]), abs=TOL)
        assert labels[k].tolist() == pytest.approx(ref[[yes, no]].tolist(), abs=TOL)
