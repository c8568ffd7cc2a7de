"""mm_processor_kwargs offline (LLM(mm_processor_kwargs=) and per call): min_pixels/max_pixels change how many
tokens a Qwen-VL image takes, and the score equals transformers' on the image processed with the same bounds;
two calls with different kwargs never share a cached output; unknown keys and bad values are refused by name.
Also Scorer.embedding_size on Qwen-VL and llm.embed refused on ColQwen2 (no pooled embedding)."""

from __future__ import annotations

import pytest
import torch

from scorekit import LLM
from scorekit.errors import UnsupportedTask, ValidationError
from scorekit.models.vision.qwen_vl import expand_image_pads
from tests.multimodal.vl_models import QWEN_IMAGE, random_image, tiny_colqwen2, tiny_qwen_vl

TOL = 1e-5
RERANKER = {"architectures": ["Qwen2VLForSequenceClassification"], "classifier_from_token": ["no", "yes"],
            "method": "from_2_way_softmax"}
SMALL = {"max_pixels": 56 * 56 * 2}  # a 200 x 150 image: 2 merged tokens instead of 12


def _pil(seed, size=(200, 150)):
    return {"content": [{"type": "image_pil", "image_pil": random_image(seed, size)}]}


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    tiny = tiny_qwen_vl("qwen2_vl")
    return tiny, str(tiny.save(tmp_path_factory.mktemp("qwen-kw")))


def _reference(tiny, text, image, size=None):
    extra = {"size": size} if size else {}
    out = tiny.image_processor(images=[image], return_tensors="pt", **extra)
    merge = tiny.model.config.vision_config.spatial_merge_size
    pad = tiny.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    ids = expand_image_pads(tiny.tokenizer(text)["input_ids"], pad, [int(out["image_grid_thw"].prod()) // merge**2])
    ids = torch.tensor([ids])
    with torch.no_grad():
        logits = tiny.model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=out["pixel_values"],
                            image_grid_thw=out["image_grid_thw"],
                            mm_token_type_ids=(ids == tiny.model.config.image_token_id).int()).logits[0, -1]
    yes, no = tiny.tokenizer.convert_tokens_to_ids(["yes", "no"])
    return float(torch.sigmoid(logits[yes] - logits[no])), ids.shape[1]


def test_max_pixels_changes_image_tokens_and_equals_transformers(qwen):
    tiny, folder = qwen
    llm = LLM(folder, hf_overrides=RERANKER)  # output cache on: a second call with other kwargs must not hit it
    default = llm.score("a cat", [_pil(1)])[0]
    small = llm.score("a cat", [_pil(1)], mm_processor_kwargs=SMALL)[0]
    ref_default, n_default = _reference(tiny, "a cat" + QWEN_IMAGE, random_image(1, (200, 150)))
    size = {"shortest_edge": int(tiny.image_processor.size["shortest_edge"]), "longest_edge": SMALL["max_pixels"]}
    ref_small, n_small = _reference(tiny, "a cat" + QWEN_IMAGE, random_image(1, (200, 150)), size)
    assert n_small < n_default
    assert (len(default.prompt_token_ids), len(small.prompt_token_ids)) == (n_default, n_small)
    assert default.outputs.score == pytest.approx(ref_default, abs=TOL)
    assert small.outputs.score == pytest.approx(ref_small, abs=TOL)
    assert abs(small.outputs.score - default.outputs.score) > 1e-6
    again = llm.score("a cat", [_pil(1)])[0]  # the default again: its own cached output, not the small one
    assert again.outputs.score == default.outputs.score and len(again.prompt_token_ids) == n_default


def test_model_level_kwargs_are_the_default_and_a_call_overrides_them(qwen):
    tiny, folder = qwen
    llm = LLM(folder, hf_overrides=RERANKER, mm_processor_kwargs=SMALL)
    plain = LLM(folder, hf_overrides=RERANKER)
    assert llm.score("a cat", [_pil(2)])[0].outputs.score == pytest.approx(
        plain.score("a cat", [_pil(2)], mm_processor_kwargs=SMALL)[0].outputs.score, abs=1e-7)
    wide = {"max_pixels": int(tiny.image_processor.size["longest_edge"])}
    assert llm.score("a cat", [_pil(2)], mm_processor_kwargs=wide)[0].outputs.score == pytest.approx(
        plain.score("a cat", [_pil(2)])[0].outputs.score, abs=1e-7)


@pytest.mark.parametrize("kwargs, fragment", [
    ({"size": {"longest_edge": 1000}}, "'size' is not a setting"),
    ({"max_pixels": "many"}, "max_pixels must be a positive integer"),
    ({"min_pixels": 0}, "min_pixels must be a positive integer"),
    ({"min_pixels": 10**6, "max_pixels": 10**5}, "is over max_pixels"),
    ({"min_pixels": 10**9, "max_pixels": 10**9}, "over max_model_len"),
])
def test_bad_kwargs_are_refused_by_name(qwen, kwargs, fragment):
    _, folder = qwen
    llm = LLM(folder, hf_overrides=RERANKER)
    with pytest.raises(ValidationError, match=fragment):
        llm.score("a cat", [_pil(1)], mm_processor_kwargs=kwargs)
    with pytest.raises(ValueError, match=fragment):
        LLM(folder, hf_overrides=RERANKER, mm_processor_kwargs=kwargs)


def test_qwen_vl_embedding_size_is_its_hidden_width(qwen):
    tiny, folder = qwen
    llm = LLM(folder)
    assert llm.scorer().embedding_size == tiny.model.config.text_config.hidden_size


def test_colqwen2_kwargs_change_page_tokens_and_embed_is_refused(tmp_path):
    tiny = tiny_colqwen2()
    llm = LLM(str(tiny.save(tmp_path / "colqwen2")))
    page = random_image(3, (200, 150))
    wide = llm.encode([_pil(3)], pooling_task="token_embed")[0].outputs.data
    small = llm.encode([_pil(3)], pooling_task="token_embed", mm_processor_kwargs={"max_pixels": 56 * 56})[0]
    size = {"shortest_edge": int(tiny.image_processor.size["shortest_edge"]), "longest_edge": 56 * 56}
    with torch.no_grad():
        batch = tiny.processor.process_images([page], return_tensors="pt", size=size)
        ref = tiny.model(**batch).embeddings[0]
    assert small.outputs.data.shape[0] < wide.shape[0]
    assert torch.allclose(small.outputs.data, ref[batch["attention_mask"][0].bool()], atol=TOL)
    with pytest.raises(UnsupportedTask, match="no pooled embedding"):
        llm.embed([_pil(3)])
    with pytest.raises(ValidationError, match="'min_pixel' is not a setting"):
        llm.encode([_pil(3)], pooling_task="token_embed", mm_processor_kwargs={"min_pixel": 3})


def test_siglip2_max_num_patches_changes_resolution_and_equals_transformers(siglip2_dir, clip_dir):
    from transformers import AutoModel, AutoProcessor

    from tests.multimodal.conftest import draw

    llm = LLM(str(siglip2_dir))
    picture = {"content": [{"type": "image_pil", "image_pil": draw(5, (96, 64))}]}
    default = llm.embed([picture])[0]
    few = llm.embed([picture], mm_processor_kwargs={"max_num_patches": 16})[0]
    processor, model = AutoProcessor.from_pretrained(str(siglip2_dir)), AutoModel.from_pretrained(str(siglip2_dir))
    with torch.no_grad():
        inputs = processor(images=[draw(5, (96, 64))], return_tensors="pt", max_num_patches=16)
        out = model.eval().get_image_features(**inputs)
        ref = torch.nn.functional.normalize(out if isinstance(out, torch.Tensor) else out.pooler_output, dim=-1)[0]
    assert torch.allclose(torch.tensor(few.outputs.embedding), ref, atol=TOL)
    assert not torch.allclose(torch.tensor(few.outputs.embedding), torch.tensor(default.outputs.embedding), atol=1e-4)
    with pytest.raises(ValidationError, match="'size' is not a setting of Siglip2Model"):
        llm.embed([picture], mm_processor_kwargs={"size": 3})
    with pytest.raises(ValidationError, match="'size' is not a setting of CLIPModel.*takes none"):
        LLM(str(clip_dir)).embed([picture], mm_processor_kwargs={"size": {"shortest_edge": 64}})
