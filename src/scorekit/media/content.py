"""One multimodal score input once its images are fetched and decoded: vLLM's `{"content": [part, ...]}`.

A `Content` is **one** input (a query or a document), all of its parts together, in the order they were sent.
Text parts are kept as strings; image parts are decoded RGB images with a digest of their source bytes, which is
what identifies an image to the engine (deduplication, the output cache): two requests that send the same bytes,
by URL or as base64, send the same image.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from PIL import Image


# Image processor settings of one image (mm_processor_kwargs once validated): sorted (name, value) pairs.
ProcessorOptions = tuple[tuple[str, Any], ...]


@dataclass(frozen=True, eq=False)
class ImagePart:
    image: Image.Image  # decoded, converted to RGB, fully loaded (no lazy file handle)
    digest: str  # sha256 hex of the bytes the image was decoded from
    # The request's (or the model's) mm_processor_kwargs, validated by the model's input builder
    # (scoring/vl_inputs.py): the image is processed with them, and they are part of its identity.
    options: ProcessorOptions = ()

    @property
    def key(self) -> tuple[str, ProcessorOptions]:
        """What the engine's media keys hold: the same bytes processed with other settings are another input."""
        return (self.digest, self.options)

    def __eq__(self, other) -> bool:
        return isinstance(other, ImagePart) and other.key == self.key

    def __hash__(self) -> int:
        return hash(self.key)


@dataclass(frozen=True)
class Content:
    parts: tuple[str | ImagePart, ...]
    # The content parts exactly as the client sent them: /rerank echoes them as `document.multi_modal`.
    sent: tuple[Any, ...] = field(default=(), compare=False, hash=False)

    @property
    def texts(self) -> list[str]:
        return [p for p in self.parts if isinstance(p, str)]

    @property
    def images(self) -> list[ImagePart]:
        return [p for p in self.parts if isinstance(p, ImagePart)]

    @property
    def text(self) -> str:
        """The text parts joined with newlines, as vLLM joins them for a score template."""
        return "\n".join(self.texts)


def with_options(items: list[Any], options: ProcessorOptions) -> list[Any]:
    """`items` with every image of every Content processed under `options` (others unchanged)."""
    if not options:
        return list(items)
    return [Content(tuple(replace(p, options=options) if isinstance(p, ImagePart) else p for p in item.parts),
                    item.sent) if isinstance(item, Content) else item for item in items]
