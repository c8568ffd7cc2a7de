"""Image bytes → a fully decoded RGB `ImagePart`, safely.

* Formats: an allow-list (PNG, JPEG, WebP, GIF, BMP) passed to Pillow, so no other of Pillow's ~40 format parsers
  ever runs on client bytes. A known format outside the list is named in the refusal; anything else is "not an image".
* Decompression bombs: `Image.open` parses only the header, and the declared width x height is checked against
  --max-image-pixels before any pixel is decoded. Pillow's process-wide `Image.MAX_IMAGE_PIXELS` is left as it is
  (changing it would change every other Pillow user in the process); when its own, larger, limit fires first
  it is answered the same way.
* Truncated or corrupt data: Pillow raises while loading (scorekit never sets `ImageFile.LOAD_TRUNCATED_IMAGES`)
  and the answer is a 400, never a half-grey image.
* Animated GIF / WebP: the first frame, as vLLM and Hugging Face image processors read them.
* RGBA is composited on white, other modes converted with Pillow's `convert("RGB")`: vLLM's `convert_image_mode`.
"""

from __future__ import annotations

import hashlib
import io

from PIL import Image, UnidentifiedImageError

from scorekit.errors import TooLarge, ValidationError
from scorekit.media.content import ImagePart
from scorekit.media.policy import MediaConfig

ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP")

# Formats Pillow (or other tools) could read but scorekit refuses: named in the error so the client knows the
# bytes were an image, just not one accepted here. (magic prefix, name)
_OTHER_FORMATS = (
    (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"), (b"\x00\x00\x01\x00", "ICO"), (b"8BPS", "PSD"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG 2000"), (b"\xffO\xffQ", "JPEG 2000"), (b"qoif", "QOI"),
    (b"\x76\x2f\x31\x01", "OpenEXR"), (b"DDS ", "DDS"), (b"%PDF", "PDF"), (b"\x0a\x05\x01\x08", "PCX"),
)


def _other_format(data: bytes) -> str | None:
    for magic, name in _OTHER_FORMATS:
        if data.startswith(magic):
            return name
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"avif", b"avis", b"hevc"):
        return "HEIF/AVIF"
    head = data[:256].lstrip().lower()
    if head.startswith(b"<svg") or (head.startswith(b"<?xml") and b"<svg" in data[:1024].lower()):
        return "SVG"
    return None


def decode_image(data: bytes, config: MediaConfig) -> ImagePart:
    digest = hashlib.sha256(data).hexdigest()
    try:
        image = Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS)
    except Image.DecompressionBombError:
        raise _too_many_pixels("more than Pillow's own limit of", config, 2 * Image.MAX_IMAGE_PIXELS) from None
    except UnidentifiedImageError:
        other = _other_format(data)
        if other:
            raise ValidationError(f"image format {other} is not supported; send {', '.join(ALLOWED_FORMATS)}") from None
        raise ValidationError("the image data is not an image scorekit can read (not PNG, JPEG, WebP, GIF or "
                              "BMP, or its header is corrupt)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:  # a header that starts right and breaks
        raise ValidationError(f"the image header is corrupt: {exc}") from None
    with image:
        width, height = image.size
        if width < 1 or height < 1:
            raise ValidationError(f"the image has no pixels ({width} x {height})")
        if width * height > config.max_image_pixels:
            raise _too_many_pixels(f"{width} x {height} =", config, width * height)
        try:
            image.load()  # the whole first frame now: truncation shows here, and no lazy file handle survives
            rgb = _to_rgb(image)
        except Image.DecompressionBombError:
            raise _too_many_pixels("more than Pillow's own limit of", config, 2 * Image.MAX_IMAGE_PIXELS) from None
        except (OSError, SyntaxError, ValueError, EOFError) as exc:
            raise ValidationError(f"the {image.format} image is truncated or corrupt: {exc}") from None
    return ImagePart(image=rgb, digest=digest)


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode == "RGB":
        return image.copy()  # detached from the file object the `with` closes
    if image.mode == "RGBA":
        background = Image.new("RGB", image.size, (255, 255, 255))
        background.paste(image, mask=image.getchannel("A"))
        return background
    return image.convert("RGB")


def _too_many_pixels(what: str, config: MediaConfig, pixels: int | None = None) -> TooLarge:
    count = f" {pixels}" if pixels is not None else ""
    return TooLarge(f"image of {what}{count} pixels is over --max-image-pixels ({config.max_image_pixels}); "
                    "it was refused before decoding", param="image_url")
