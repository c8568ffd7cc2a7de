"""CLIP, SigLIP and Siglip2 scores against transformers' own processor + get_text_features /
get_image_features + cosine, on the tiny random models of conftest.py (tolerance 1e-5)."""

from __future__ import annotations

import hashlib

import pytest
import torch

from scorekit import LLM
from scorekit.errors import ValidationError
from scorekit.media.content import Content, ImagePart
from tests.multimodal.conftest import draw, png_bytes

TEXTS = ["the cat sat on the mat", "a photo of the sea", "red square"]
TOL = 1e-5


def image_content(seed: int, size=(48, 40)) -> Content:
    image = draw(seed, size)
    return Content((ImagePart(image, hashlib.sha256(png_bytes(image)).hexdigest()),))


def reference(folder, texts, images, text_kwargs):
    """transformers alone: the folder's processor and model, unit features."""
    from transformers import AutoModel, AutoProcessor

    processor, model = AutoProcessor.from_pretrained(str(folder)), AutoModel.from_pretrained(str(folder)).eval()
    feats = lambda out: out if isinstance(out, torch.Tensor) else out.pooler_output  # noqa: E731
    with torch.no_grad():
        t = processor(text=texts, return_tensors="pt", **text_kwargs)
        text = feats(model.get_text_features(**t))
        i = processor(images=[c.images[0].image for c in images], return_tensors="pt")
        image = feats(model.get_image_features(**i))
    return torch.nn.functional.normalize(text, dim=-1), torch.nn.functional.normalize(image, dim=-1)


# SigLIP v1's processor pads nothing by default; the model was trained on max_length padding (its model card).
TEXT_KWARGS = {"clip_dir": {"padding": True}, "siglip_dir": {"padding": "max_length", "max_length": 64},
               "siglip2_dir": {}}


@pytest.fixture(scope="module", params=list(TEXT_KWARGS))
def family(request):
    folder = request.getfixturevalue(request.param)
    images = [image_content(s, size) for s, size in ((1, (48, 40)), (2, (30, 60)), (3, (64, 64)))]
    text_ref, image_ref = reference(folder, TEXTS, images, TEXT_KWARGS[request.param])
    return LLM(str(folder)), images, text_ref, image_ref


def test_text_to_image_scores_equal_transformers(family):
    llm, images, text_ref, image_ref = family
    for q, text in enumerate(TEXTS):
        got = [o.outputs.score for o in llm.score(text, images, use_tqdm=False)]
        assert got == pytest.approx((image_ref @ text_ref[q]).tolist(), abs=TOL)


def test_image_to_text_and_image_to_image_scores(family):
    llm, images, text_ref, image_ref = family
    got = [o.outputs.score for o in llm.score(images[0], TEXTS, use_tqdm=False)]
    assert got == pytest.approx((text_ref @ image_ref[0]).tolist(), abs=TOL)
    got = [o.outputs.score for o in llm.score(images[1], images, use_tqdm=False)]
    assert got == pytest.approx((image_ref @ image_ref[1]).tolist(), abs=TOL)
    assert got[1] == pytest.approx(1.0, abs=TOL)


def test_embed_mixed_inputs_is_batch_invariant(family):
    llm, images, text_ref, image_ref = family
    mixed = [images[2], TEXTS[0], images[0], TEXTS[2], TEXTS[1], images[1]]
    together = torch.tensor([o.outputs.embedding for o in llm.embed(mixed, use_tqdm=False)])
    alone = torch.tensor([llm.embed([x], use_tqdm=False)[0].outputs.embedding for x in mixed])
    assert torch.allclose(together, alone, atol=TOL)
    expected = torch.stack([image_ref[2], text_ref[0], image_ref[0], text_ref[2], text_ref[1], image_ref[1]])
    assert torch.allclose(together, expected, atol=TOL)


def test_rerank_and_usage_count_vision_tokens(family):
    llm, images, _, _ = family
    ranked = llm.rerank(TEXTS[0], images, use_tqdm=False)
    assert sorted(r.index for r in ranked) == [0, 1, 2]
    assert [r.relevance_score for r in ranked] == sorted((r.relevance_score for r in ranked), reverse=True)
    job = llm.scorer().score(TEXTS[0], images[:1])
    result = llm.engine.submit(job).result()
    inputs = llm.loaded.media_inputs
    text_tokens = len(result.prompt_token_ids[0]) - 1  # query ids + separator + (no) image ids
    assert result.prompt_tokens == text_tokens + 1 + inputs.image_tokens


def test_same_image_sent_twice_runs_once(clip_dir):
    llm = LLM(str(clip_dir), score_cache_bytes=0)
    first, again = image_content(5), image_content(5)  # decoded twice: equal by digest
    before = llm.engine.stats.deduplicated
    out = llm.score("red square", [first, again, image_content(6)], use_tqdm=False)
    assert out[0].outputs.score == out[1].outputs.score != out[2].outputs.score
    assert llm.engine.stats.deduplicated - before == 1


def test_text_and_image_in_one_input_is_refused(clip_dir):
    llm = LLM(str(clip_dir))
    both = Content(("a cat",) + image_content(1).parts)
    with pytest.raises(ValidationError, match="separate towers"):
        llm.score("a cat", [both], use_tqdm=False)


def test_image_on_a_text_only_model_keeps_vllms_message(minilm_llm):
    with pytest.raises(ValidationError, match="MultiModalParam is not supported for BertModel"):
        minilm_llm.score("a cat", [image_content(1)], use_tqdm=False)
    with pytest.raises(ValidationError, match="MultiModalParam is not supported"):
        minilm_llm.embed([image_content(1)], use_tqdm=False)


def test_llm_takes_vllms_content_dicts(clip_dir):
    """`{"content": [...]}` (a data: URL or a PIL image) scores as the resolved Content of the same image."""
    import base64

    llm = LLM(str(clip_dir), score_cache_bytes=0)
    image = draw(7)
    url = "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()
    as_url = {"content": [{"type": "image_url", "image_url": {"url": url}}]}
    as_pil = {"content": [{"type": "image_pil", "image_pil": image}]}
    direct = llm.score("a cat", [image_content(7)], use_tqdm=False)[0].outputs.score
    got = [o.outputs.score for o in llm.score("a cat", [as_url, as_pil], use_tqdm=False)]
    assert got == pytest.approx([direct, direct], abs=TOL)
    ranked = llm.rerank({"content": [{"type": "text", "text": "a cat"}]}, [as_url, "a dog"], use_tqdm=False)
    assert sorted(r.index for r in ranked) == [0, 1]
    vector = llm.embed(as_url, use_tqdm=False)[0].outputs.embedding
    assert sum(v * v for v in vector) == pytest.approx(1.0, abs=TOL)
