"""media/resolve.py: content parts validated before anything is fetched, images of a request fetched in
parallel, errors that say where they happened, and the async variant keeping the event loop free."""

from __future__ import annotations

import asyncio
import base64
import time

import pytest
from PIL import Image

from scorekit.errors import TooLarge, ValidationError
from scorekit.media.content import Content, ImagePart
from scorekit.media.policy import MediaConfig, limit_mm_per_prompt
from scorekit.media.resolve import resolve_content, resolve_inputs, resolve_inputs_async
from tests.media.images import png

CONFIG = MediaConfig()


def image_part(url: str) -> dict:
    return {"type": "image_url", "image_url": {"url": url}}


def data_url(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode()


def test_text_and_image_parts_in_order():
    item = {"content": [{"type": "text", "text": "a red square"}, image_part(data_url(png(color=(255, 0, 0))))]}
    content = resolve_content(item, CONFIG, offline=False)
    assert isinstance(content, Content)
    assert content.texts == ["a red square"] and len(content.images) == 1
    assert content.images[0].image.getpixel((0, 0)) == (255, 0, 0)
    assert content.sent == tuple(item["content"])  # what /rerank echoes


def test_strings_pass_through_and_mixed_lists_keep_positions():
    items = ["plain", {"content": [{"type": "text", "text": "t"}]}, "also plain"]
    out = resolve_inputs(items, CONFIG)
    assert out[0] == "plain" and out[2] == "also plain" and out[1] == Content(parts=("t",))


def test_typeless_parts_and_bare_string_image_url_as_vllm_takes():
    out = resolve_content({"content": [{"text": "x"}, {"image_url": data_url(png())}]}, CONFIG, offline=False)
    assert out.texts == ["x"] and len(out.images) == 1


@pytest.mark.parametrize("kind", ["input_audio", "audio_url", "video_url", "image_embeds"])
def test_unsupported_part_types_are_named(kind):
    with pytest.raises(ValidationError, match=f"input\\[0\\]: content\\[1\\]: content part type '{kind}' is not supported"):
        resolve_inputs([{"content": [{"type": "text", "text": "x"}, {"type": kind, kind: {}}]}], CONFIG)


@pytest.mark.parametrize("item, message", [
    ({"content": "not a list"}, "`content` must be a list"),
    ({"content": []}, "at least one part"),
    ({"content": ["bare string"]}, "must be an object"),
    ({"content": [{"type": "text", "text": 3}]}, "string `text`"),
    ({"content": [{"type": "image_url", "image_url": {"uri": "x"}}]}, "needs `image_url`"),
    ({"content": [{"type": "image_url", "image_url": {"url": "x", "size": 3}}]}, "not \\['size'\\]"),
    ({"content": [{"type": "image_url", "image_url": {"url": "x", "detail": "max"}}]}, "detail must be one of"),
    ({"content": [{"type": "hologram"}]}, "'hologram' is not supported"),
])
def test_malformed_parts(item, message):
    with pytest.raises(ValidationError, match=message):
        resolve_inputs([item], CONFIG)


def test_image_pil_offline_only():
    image = Image.new("RGBA", (5, 5), (0, 255, 0, 255))
    item = {"content": [{"type": "image_pil", "image_pil": image}]}
    part = resolve_content(item, CONFIG, offline=True).images[0]
    assert isinstance(part, ImagePart) and part.image.mode == "RGB" and part.image.getpixel((0, 0)) == (0, 255, 0)
    assert part == resolve_content(item, CONFIG, offline=True).images[0]  # same pixels, same digest
    with pytest.raises(ValidationError, match="'image_pil' is for the offline LLM API"):
        resolve_content(item, CONFIG, offline=False)


def test_image_counts_are_checked_before_anything_is_fetched(media_server):
    media_server.files["/a.png"] = (png(), "image/png")
    many = [{"content": [image_part(media_server.url("/a.png"))] * 3} for _ in range(2)]
    with pytest.raises(TooLarge, match=r"6 images in one request exceed --max-images-per-request \(5\)"):
        resolve_inputs(many, MediaConfig(max_images_per_request=5))
    with pytest.raises(TooLarge, match=r"input\[0\]: 3 images in one input exceed --limit-mm-per-prompt \(image: 2\)"):
        resolve_inputs(many, MediaConfig(max_images_per_prompt=2))
    assert media_server.hits == []
    assert len(resolve_inputs(many, MediaConfig(max_images_per_request=6))[1].images) == 3


def test_limit_mm_per_prompt_takes_vllms_json():
    assert limit_mm_per_prompt({"image": 2, "video": 0}) == 2 and limit_mm_per_prompt(None) is None
    with pytest.raises(ValueError, match="images only"):
        limit_mm_per_prompt({"audio": 1})


def test_images_are_fetched_in_parallel(media_server):
    media_server.files["/a.png"] = (png(), "image/png")
    items = [{"content": [image_part(media_server.url("/slow?delay=0.6"))]} for _ in range(4)]
    # /slow answers "late" (not an image) after 0.6 s: four one after the other would take 2.4 s.
    start = time.perf_counter()
    with pytest.raises(ValidationError, match=r"docs\[0\].content\[0\]: the image data is not an image"):
        resolve_inputs(items, MediaConfig(media_io_threads=4), names=[f"docs[{i}]" for i in range(4)])
    assert time.perf_counter() - start < 1.5
    assert sorted(media_server.hits) == ["/slow?delay=0.6"] * 4


def test_async_variant_leaves_the_event_loop_free(media_server):
    media_server.files["/a.png"] = (png(color=(1, 2, 3)), "image/png")

    async def main():
        ticks = 0

        async def ticker():  # counts how often the event loop got to run something else
            nonlocal ticks
            while True:
                await asyncio.sleep(0.02)
                ticks += 1

        task = asyncio.create_task(ticker())
        start = time.perf_counter()
        out = await resolve_inputs_async(
            ["q", {"content": [image_part(media_server.url("/slow?delay=0.5&file=/a.png"))]}], CONFIG)
        elapsed = time.perf_counter() - start
        task.cancel()
        return out, ticks, elapsed

    out, ticks, elapsed = asyncio.run(main())
    assert out[0] == "q" and out[1].images[0].image.getpixel((0, 0)) == (1, 2, 3)
    assert elapsed >= 0.5 and ticks >= 10  # ~25 if the loop was free for the whole wait; 0 if it was blocked


def test_async_failure_is_relabelled_and_raised(media_server):
    async def main():
        return await resolve_inputs_async([{"content": [image_part(media_server.url("/nope.png"))]}], CONFIG,
                                          names=["documents[0]"])

    with pytest.raises(ValidationError, match=r"documents\[0\].content\[0\]: image URL .* answered HTTP 404"):
        asyncio.run(main())
