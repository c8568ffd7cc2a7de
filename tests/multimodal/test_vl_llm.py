"""LLM(folder) end to end on B2's tiny random VL models: ColPali MaxSim and a Qwen-VL converted reranker and
generative scorer take image Content; scores equal transformers' forward within 1e-5, batches are invariant,
usage counts the image tokens."""

from __future__ import annotations

import pytest
import torch

from scorekit import LLM
from scorekit.media.content import Content, ImagePart
from scorekit.models.vision.qwen_vl import process_images
from tests.multimodal.vl_models import QWEN_IMAGE, random_image, tiny_colpali, tiny_qwen_vl

TOL = 1e-5


def _image(seed: int) -> Content:
    return Content((ImagePart(random_image(seed), f"img-{seed}"),))


def _maxsim(q, d) -> float:
    return float((q @ d.T).max(dim=1).values.sum())


def test_colpali_score_equals_transformers(tmp_path):
    tiny = tiny_colpali()
    llm = LLM(str(tiny.save(tmp_path / "colpali")))
    query, image = "what is on this page?", random_image(1)
    docs = [_image(1), "a text page", _image(2)]
    out = llm.score(query, docs)
    with torch.no_grad():
        def tokens(batch):
            emb = tiny.model(**batch).embeddings[0]
            return emb[batch["attention_mask"][0].bool()]
        q = tokens(tiny.processor.process_queries([query], return_tensors="pt"))
        d = tokens(tiny.processor.process_images([image], return_tensors="pt"))
    assert out[0].outputs.score == pytest.approx(_maxsim(q, d), abs=TOL)
    alone = [llm.score(query, [d])[0].outputs.score for d in docs]
    assert [o.outputs.score for o in out] == pytest.approx(alone, abs=TOL)  # mixed batch = alone


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    tiny = tiny_qwen_vl("qwen2_vl")
    return tiny, str(tiny.save(tmp_path_factory.mktemp("qwen")))


def _last_logits(tiny, text: str, images) -> torch.Tensor:
    processed = process_images(tiny.image_processor, images)
    ids = tiny.tokenizer(text)["input_ids"]
    pad = tiny.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    merge = tiny.model.config.vision_config.spatial_merge_size
    from scorekit.models.vision.qwen_vl import expand_image_pads
    ids = torch.tensor([expand_image_pads(ids, pad, [i.tokens(merge) for i in processed])])
    inputs = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
              "mm_token_type_ids": (ids == tiny.model.config.image_token_id).int()}
    if processed:
        inputs["pixel_values"] = torch.cat([i.pixel_values for i in processed])
        inputs["image_grid_thw"] = torch.cat([i.image_grid_thw for i in processed])
    with torch.no_grad():
        return tiny.model(**inputs).logits[0, -1], ids.shape[1]


def test_qwen_vl_converted_reranker_with_an_image_document(qwen):
    tiny, folder = qwen
    llm = LLM(folder, hf_overrides={"architectures": ["Qwen2VLForSequenceClassification"],
                                    "classifier_from_token": ["no", "yes"], "method": "from_2_way_softmax"})
    query = "a cat in the snow"
    docs = ["plain text", _image(1), Content(("caption", ImagePart(random_image(2), "img-2")))]
    out = llm.score(query, docs)
    logits, n = _last_logits(tiny, query + QWEN_IMAGE, [random_image(1)])
    yes, no = tiny.tokenizer.convert_tokens_to_ids(["yes", "no"])
    assert out[1].outputs.score == pytest.approx(float(torch.sigmoid(logits[yes] - logits[no])), abs=TOL)
    assert len(out[1].prompt_token_ids) == n  # the image's expanded tokens are prompt tokens
    alone = [llm.score(query, [d])[0].outputs.score for d in docs]
    assert [o.outputs.score for o in out] == pytest.approx(alone, abs=TOL)


def test_qwen_vl_generative_score_with_an_image_item(qwen):
    tiny, folder = qwen
    llm = LLM(folder)
    yes, no = tiny.tokenizer.convert_tokens_to_ids(["yes", "no"])
    out = llm.generative_score("Is this a cat? ", [_image(3), "no picture"], [yes, no])
    logits, _ = _last_logits(tiny, "Is this a cat? " + QWEN_IMAGE, [random_image(3)])
    assert out[0].outputs.score == pytest.approx(float(torch.softmax(logits[[yes, no]], 0)[0]), abs=TOL)
