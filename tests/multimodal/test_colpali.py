"""ColPali / ColQwen2 late interaction on tiny random models (tests/multimodal/vl_models.py).

Reference: `transformers`' own forward on the processor's batches (`process_queries`, `process_images`), each
row's real-token embeddings, and MaxSim computed here by hand with einsum. Tolerance 1e-5 (fp32; the two sides
differ only in batching and padding).
"""

from __future__ import annotations

import pytest
import torch

from scorekit.engine.prompt import Prompt
from scorekit.engine.runner import collate
from scorekit.models.vision.colpali import ColVisionBackbone, ColVisionInputs
from scorekit.scoring import maths

from tests.multimodal.vl_models import random_image, tiny_colpali, tiny_colqwen2

QUERIES = ["what is on this page?", "a red chart"]
TOL = 1e-5


@pytest.fixture(scope="module", params=["colpali", "colqwen2"])
def tiny(request):
    return tiny_colpali() if request.param == "colpali" else tiny_colqwen2()


def _images():
    return [random_image(1), random_image(2, (40, 100)), random_image(3, (64, 64))]


def _reference_tokens(tiny, batch) -> list[torch.Tensor]:
    """transformers' embeddings of a processor batch, each row cut to its real tokens."""
    inputs = {k: v for k, v in batch.items() if k != "labels"}  # all the processor gives, as transformers' docs do
    with torch.no_grad():
        out = tiny.model(**inputs).embeddings
    return [row[mask.bool()] for row, mask in zip(out, batch["attention_mask"])]


def _manual_maxsim(q: torch.Tensor, d: torch.Tensor) -> float:
    return float(torch.einsum("nd,sd->ns", q, d).max(dim=1).values.sum())


def _run(backbone, prompts):
    """scorekit's backbone on the engine's batch of these prompts (engine collate: right padding, each row's media):
    ColVisionPrompts → [T, dim] each."""
    engine_prompts = [Prompt(tuple(p.input_ids), tuple(p.token_type_ids) if p.token_type_ids else None,
                             p.media(f"image-{i}")) for i, p in enumerate(prompts)]
    batch = collate(engine_prompts, pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        out = backbone.hidden_states(batch.input_ids, batch.attention_mask, batch.token_type_ids, media=batch.media)
    return [out[row, : len(p.input_ids)] for row, p in enumerate(prompts)]


def test_text_prompts_are_the_processors_queries(tiny):
    inputs = ColVisionInputs(tiny.processor, max_model_len=512)
    batch = tiny.processor.process_queries(QUERIES, return_tensors="pt")
    want = [row[m.bool()].tolist() for row, m in zip(batch["input_ids"], batch["attention_mask"])]
    assert [p.input_ids for p in inputs.texts(QUERIES)] == want


def test_maxsim_matches_transformers_one_query_many_images(tiny):
    backbone, inputs = ColVisionBackbone(tiny.model), ColVisionInputs(tiny.processor, max_model_len=512)
    images = _images()
    query_ref = _reference_tokens(tiny, tiny.processor.process_queries(QUERIES[:1], return_tensors="pt"))[0]
    doc_ref = _reference_tokens(tiny, tiny.processor.process_images(images, return_tensors="pt"))
    want = [_manual_maxsim(query_ref, d) for d in doc_ref]

    prompts = inputs.texts(QUERIES[:1]) + [inputs.image(image) for image in images]
    query, *docs = _run(backbone, prompts)
    got = [maths.maxsim(query, d) for d in docs]
    assert [len(d) for d in docs] == [len(d) for d in doc_ref]  # every image token is a document token
    assert got == pytest.approx(want, abs=TOL)
    assert max(want) - min(want) > 1e-3  # the images are told apart: a constant score would not pass


def test_maxsim_matches_transformers_zipped(tiny):
    backbone, inputs = ColVisionBackbone(tiny.model), ColVisionInputs(tiny.processor, max_model_len=512)
    images = _images()[:2]
    query_ref = _reference_tokens(tiny, tiny.processor.process_queries(QUERIES, return_tensors="pt"))
    doc_ref = _reference_tokens(tiny, tiny.processor.process_images(images, return_tensors="pt"))
    want = [_manual_maxsim(q, d) for q, d in zip(query_ref, doc_ref)]
    prompts = inputs.texts(QUERIES) + [inputs.image(image) for image in images]
    out = _run(backbone, prompts)
    got = [maths.maxsim(q, d) for q, d in zip(out[:2], out[2:])]
    assert got == pytest.approx(want, abs=TOL)


def test_embeddings_do_not_depend_on_the_batch(tiny):
    """An image document alone, or batched with text rows and other images (different padding, different
    image order), gets the same token embeddings."""
    backbone, inputs = ColVisionBackbone(tiny.model), ColVisionInputs(tiny.processor, max_model_len=512)
    a, b, c = (inputs.image(image) for image in _images())
    text = inputs.texts(["a much longer text document than the others, to pad rows", "x"])
    alone = _run(backbone, [b])[0]
    mixed = _run(backbone, [text[0], a, text[1], b, c])
    reordered = _run(backbone, [c, b, text[0]])
    assert torch.allclose(mixed[3], alone, atol=TOL) and torch.allclose(reordered[1], alone, atol=TOL)
    assert torch.allclose(mixed[0], _run(backbone, [text[0]])[0], atol=TOL)
    assert torch.allclose(alone.norm(dim=-1), torch.ones(len(alone)), atol=1e-5)  # unit vectors, as the model makes


def test_text_and_image_in_one_input_is_refused():
    with pytest.raises(ValueError, match="text or as one image"):
        ColVisionInputs.check_parts(["a caption"], [object()], "documents[0]")
    with pytest.raises(ValueError, match="one image per input, got 2"):
        ColVisionInputs.check_parts([], [object(), object()], "documents[1]")


def test_content_sides_become_prompts_with_media(tiny):
    """scoring/multimodal_prompts.colvision_prompts: strings and text Content through the query form, an image
    Content through the image form keyed by its digest; MaxSim over them equals the transformers reference."""
    from scorekit.media.content import Content, ImagePart
    from scorekit.scoring.multimodal_prompts import colvision_prompts

    inputs, backbone = ColVisionInputs(tiny.processor, max_model_len=512), ColVisionBackbone(tiny.model)
    image = _images()[0]
    sides = ["what is on this page?", Content((ImagePart(image, "d1"),)), Content(("a text page",))]
    prompts = colvision_prompts(inputs, sides, "documents")
    assert [p.media is not None for p in prompts] == [False, True, False]
    assert prompts[1].media.key == ("colvision-image", ("d1", ()))  # the digest, with no processor options
    batch = collate(prompts, pad_id=0, device=torch.device("cpu"))
    with torch.no_grad():
        out = backbone.hidden_states(batch.input_ids, batch.attention_mask, batch.token_type_ids, media=batch.media)
    query, doc = out[0, : len(prompts[0])], out[1, : len(prompts[1])]
    q_ref = _reference_tokens(tiny, tiny.processor.process_queries([sides[0]], return_tensors="pt"))[0]
    d_ref = _reference_tokens(tiny, tiny.processor.process_images([image], return_tensors="pt"))[0]
    assert maths.maxsim(query, doc) == pytest.approx(_manual_maxsim(q_ref, d_ref), abs=TOL)
    with pytest.raises(ValueError, match=r"documents\[0\].*not both"):
        colvision_prompts(inputs, [Content(("caption", ImagePart(image, "d1")))], "documents")
