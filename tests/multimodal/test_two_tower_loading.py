"""Two-tower loading refuses what it cannot serve exactly, and concurrent mixed requests share batches without
changing any vector."""

from __future__ import annotations

import hashlib
import shutil

import pytest
import torch

from scorekit import LLM
from scorekit.errors import ModelLoadError
from scorekit.media.content import Content, ImagePart
from tests.multimodal.conftest import draw, png_bytes


def image_content(seed: int) -> Content:
    image = draw(seed)
    return Content((ImagePart(image, hashlib.sha256(png_bytes(image)).hexdigest()),))


def test_a_missing_weight_is_a_load_error(clip_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    folder = tmp_path / "clip-missing"
    shutil.copytree(clip_dir, folder)
    state = load_file(str(folder / "model.safetensors"))
    dropped = next(k for k in state if "visual_projection" in k)
    del state[dropped]
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
    with pytest.raises(ModelLoadError, match="visual_projection"):
        LLM(str(folder))


@pytest.mark.parametrize("options, words", [({"task": "classify"}, "embed' only"), ({"quantization": "int8"}, "int8"),
                                            ({"max_model_len": 32}, "padded to 64")])
def test_options_that_do_not_apply_are_refused(siglip_dir, options, words):
    with pytest.raises(ModelLoadError, match=words):
        LLM(str(siglip_dir), **options)


def test_concurrent_mixed_requests_get_the_vectors_they_get_alone(clip_dir):
    llm = LLM(str(clip_dir), score_cache_bytes=0)
    first = ["a red square", image_content(1), image_content(2), "the sea"]
    second = [image_content(3), "a cat", image_content(1)]
    alone = [torch.tensor([o.outputs.embedding for o in llm.embed(x, use_tqdm=False)]) for x in (first, second)]
    scorer = llm.scorer()
    jobs = [llm.engine.submit(scorer.embed(x, normalize=True)) for x in (first, second)]  # in flight together
    together = [torch.stack(job.result().outputs) for job in jobs]
    for a, t in zip(alone, together):
        assert torch.allclose(a, t, atol=1e-5)
    assert torch.allclose(together[0][1], together[1][2], atol=1e-6)  # the same image in both requests
