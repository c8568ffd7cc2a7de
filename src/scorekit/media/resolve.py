"""vLLM's multimodal score input `{"content": [part, ...]}` → a `Content` with every image fetched and decoded.

Two steps, so that every cheap check runs before any expensive one:
1. `parse_content` validates the parts (types, fields) and counts the images, without touching a URL;
2. the images of all inputs of a request are fetched and decoded at once on a shared thread pool
   (media/sources.py, media/decode.py): in parallel with each other, and, from the server, off the event loop
   and beside the engine's model threads.

Parts: `{"type": "text", "text": s}`, `{"type": "image_url", "image_url": {"url": u}}` (OpenAI's shape; a bare
string `image_url` too, as vLLM takes), and offline only `{"type": "image_pil", "image_pil": PIL.Image}` (vLLM's
LLM takes decoded images). `input_audio`, `audio_url`, `video_url`, `image_embeds` are refused by name: no model
served here takes them.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Sequence

from PIL import Image

from scorekit.errors import ScoreKitError, TooLarge, ValidationError
from scorekit.media.content import Content, ImagePart
from scorekit.media.decode import decode_image
from scorekit.media.policy import MediaConfig
from scorekit.media.sources import fetch_bytes

_UNSUPPORTED = {
    "input_audio": "audio", "audio_url": "audio", "video_url": "video", "image_embeds": "precomputed image embeddings",
    "input_image": "OpenAI Responses-style images (use image_url)", "file": "files",
}
_DETAIL = ("auto", "low", "high")  # OpenAI's image_url.detail: accepted, and changes nothing (vLLM ignores it too)


@dataclass(frozen=True)
class _ImageSource:
    url: str | None = None
    pil: Image.Image | None = None


def is_multimodal(item: Any) -> bool:
    return isinstance(item, dict) and "content" in item


def parse_content(item: dict, config: MediaConfig, *, offline: bool) -> list[str | _ImageSource]:
    """The parts of one input, validated, with images still unfetched."""
    content = item.get("content") if isinstance(item, dict) else None
    if not isinstance(content, list):
        raise ValidationError("a multimodal input is {\"content\": [part, ...]}: `content` must be a list")
    if not content:
        raise ValidationError("`content` must hold at least one part")
    parts: list[str | _ImageSource] = []
    for i, part in enumerate(content):
        try:
            parts.append(_parse_part(part, offline))
        except ValidationError as exc:
            raise ValidationError(f"content[{i}]: {exc.message}") from None
    images = sum(isinstance(p, _ImageSource) for p in parts)
    if config.max_images_per_prompt is not None and images > config.max_images_per_prompt:
        raise TooLarge(f"{images} images in one input exceed --limit-mm-per-prompt "
                       f"(image: {config.max_images_per_prompt})", param="content")
    return parts


def _parse_part(part: Any, offline: bool) -> str | _ImageSource:
    if not isinstance(part, dict):
        raise ValidationError(f"a content part must be an object, not {type(part).__name__}")
    kind = part.get("type")
    if kind is None:  # vLLM also takes a part that is just {"image_url": ...} or {"text": ...}
        known = [k for k in ("text", "image_url", "image_pil", *_UNSUPPORTED) if k in part]
        if len(known) != 1:
            raise ValidationError("a content part needs a `type` (text or image_url)")
        kind = known[0]
    if kind in _UNSUPPORTED:
        raise ValidationError(f"content part type {kind!r} is not supported: scorekit's models take no "
                              f"{_UNSUPPORTED[kind]}; send text and image_url parts")
    if kind == "text":
        text = part.get("text")
        if not isinstance(text, str):
            raise ValidationError("a text part needs a string `text`")
        return text
    if kind == "image_url":
        spec = part.get("image_url")
        if isinstance(spec, str):
            return _ImageSource(url=spec)
        if not isinstance(spec, dict) or not isinstance(spec.get("url"), str):
            raise ValidationError("an image_url part needs `image_url`: {\"url\": \"...\"}")
        extra = set(spec) - {"url", "detail"}
        if extra:
            raise ValidationError(f"image_url takes `url` (and OpenAI's `detail`), not {sorted(extra)}")
        if spec.get("detail", "auto") not in _DETAIL:
            raise ValidationError(f"image_url.detail must be one of {list(_DETAIL)}")
        return _ImageSource(url=spec["url"])
    if kind == "image_pil":
        if not offline:
            raise ValidationError("content part type 'image_pil' is for the offline LLM API; over HTTP send image_url")
        image = part.get("image_pil")
        if not isinstance(image, Image.Image):
            raise ValidationError("an image_pil part needs a PIL.Image.Image in `image_pil`")
        return _ImageSource(pil=image)
    raise ValidationError(f"content part type {kind!r} is not supported; use text or image_url")


# -- fetching and decoding ---------------------------------------------------------------------------------------
def load_image(source: _ImageSource, config: MediaConfig) -> ImagePart:
    """Blocking: fetch + decode one image (runs on the media thread pool)."""
    if source.pil is not None:
        return _from_pil(source.pil, config)
    return decode_image(fetch_bytes(source.url, config), config)


def _from_pil(image: Image.Image, config: MediaConfig) -> ImagePart:
    width, height = image.size
    if width * height > config.max_image_pixels:
        raise TooLarge(f"image of {width} x {height} pixels is over --max-image-pixels ({config.max_image_pixels})",
                       param="image_pil")
    rgb = image.convert("RGB") if image.mode != "RGB" else image.copy()
    # No source bytes here: the digest is of the decoded pixels (and their size), which identify the image as well.
    digest = hashlib.sha256(f"pil:{width}x{height}:".encode() + rgb.tobytes()).hexdigest()
    return ImagePart(image=rgb, digest=digest)


_POOLS: dict[int, ThreadPoolExecutor] = {}
_POOLS_LOCK = threading.Lock()


def media_pool(config: MediaConfig) -> ThreadPoolExecutor:
    """One pool per thread count for the process: all requests share it, so at most `media_io_threads` images
    are being fetched or decoded at any moment, however many requests arrive together."""
    with _POOLS_LOCK:
        pool = _POOLS.get(config.media_io_threads)
        if pool is None:
            pool = _POOLS[config.media_io_threads] = ThreadPoolExecutor(config.media_io_threads,
                                                                        thread_name_prefix="scorekit-media")
        return pool


def _where(names: Sequence[str] | None, i: int) -> str:
    return names[i] if names is not None else f"input[{i}]"


def _relabel(exc: ScoreKitError, where: str) -> ScoreKitError:
    """The same error with where it happened in front (`documents[3].content[1]: ...`)."""
    return type(exc)(f"{where}: {exc.message}", param=exc.param)


def _plan(items: Sequence[Any], config: MediaConfig, offline: bool, names: Sequence[str] | None):
    """Parse every multimodal input and check the request's image count, before anything is fetched."""
    parsed: dict[int, list[str | _ImageSource]] = {}
    for i, item in enumerate(items):
        if isinstance(item, Content) or not is_multimodal(item):
            continue
        try:
            parsed[i] = parse_content(item, config, offline=offline)
        except ScoreKitError as exc:
            raise _relabel(exc, _where(names, i)) from None
    total = sum(isinstance(p, _ImageSource) for parts in parsed.values() for p in parts)
    if total > config.max_images_per_request:
        raise TooLarge(f"{total} images in one request exceed --max-images-per-request "
                       f"({config.max_images_per_request}); split the request", param="content")
    return parsed


def _assemble(items: Sequence[Any], parsed, loaded: dict[tuple[int, int], ImagePart]) -> list[Any]:
    out = list(items)
    for i, parts in parsed.items():
        out[i] = Content(parts=tuple(loaded[(i, j)] if isinstance(p, _ImageSource) else p for j, p in enumerate(parts)),
                         sent=tuple(items[i]["content"]))
    return out


def _jobs(parsed) -> list[tuple[tuple[int, int], _ImageSource]]:
    return [((i, j), p) for i, parts in parsed.items() for j, p in enumerate(parts) if isinstance(p, _ImageSource)]


def resolve_inputs(items: Sequence[Any], config: MediaConfig, *, offline: bool = True,
                   names: Sequence[str] | None = None) -> list[Any]:
    """Blocking. Every multimodal input of `items` becomes a `Content`; strings (and anything else) pass through
    unchanged. The images of all inputs are fetched and decoded in parallel; the first failure is raised with
    where it happened (`names[i]`, default `input[i]`), and images not yet started are not fetched."""
    parsed = _plan(items, config, offline, names)
    jobs = _jobs(parsed)
    if not jobs:
        return _assemble(items, parsed, {})
    pool = media_pool(config)
    futures: dict[tuple[int, int], Future] = {key: pool.submit(load_image, src, config) for key, src in jobs}
    loaded: dict[tuple[int, int], ImagePart] = {}
    try:
        for (i, j), future in futures.items():
            try:
                loaded[(i, j)] = future.result()
            except ScoreKitError as exc:
                raise _relabel(exc, f"{_where(names, i)}.content[{j}]") from None
    finally:
        for future in futures.values():
            future.cancel()  # only those not started: a running fetch ends by its own timeout
    return _assemble(items, parsed, loaded)


async def resolve_inputs_async(items: Sequence[Any], config: MediaConfig, *, offline: bool = False,
                               names: Sequence[str] | None = None) -> list[Any]:
    """`resolve_inputs` for the server: the event loop only parses; fetching and decoding run on the media
    thread pool, and the loop serves other requests meanwhile."""
    parsed = _plan(items, config, offline, names)
    jobs = _jobs(parsed)
    if not jobs:
        return _assemble(items, parsed, {})
    loop = asyncio.get_running_loop()
    pool = media_pool(config)
    futures = {key: loop.run_in_executor(pool, load_image, src, config) for key, src in jobs}
    loaded: dict[tuple[int, int], ImagePart] = {}
    try:
        for (i, j), future in futures.items():
            try:
                loaded[(i, j)] = await future
            except ScoreKitError as exc:
                raise _relabel(exc, f"{_where(names, i)}.content[{j}]") from None
    finally:
        for future in futures.values():
            if not future.done():
                future.cancel()  # not started: never runs; running: its result is dropped
            elif not future.cancelled():
                future.exception()  # marks a failure as read: asyncio would log it as "never retrieved"
    return _assemble(items, parsed, loaded)


def resolve_content(item: dict, config: MediaConfig, *, offline: bool) -> Content:
    """One multimodal input → its Content (blocking)."""
    if not is_multimodal(item):
        raise ValidationError("a multimodal input is {\"content\": [part, ...]}")
    return resolve_inputs([item], config, offline=offline, names=["input"])[0]
