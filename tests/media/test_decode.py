"""media/decode.py: real encodings decode to RGB; bombs, truncation, non-images and other formats are refused
with the error that names them, before (or instead of) decoding."""

from __future__ import annotations

import time

import pytest
from PIL import Image, ImageFile

from scorekit.errors import TooLarge, ValidationError
from scorekit.media.decode import decode_image
from scorekit.media.policy import MediaConfig
from tests.media.images import animated_gif, bomb_png, encoded, noisy_jpeg, png, tiff

CONFIG = MediaConfig()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP", "GIF"])
def test_allowed_formats_decode_to_loaded_rgb(fmt):
    data = encoded(Image.new("RGB", (16, 12), (0, 128, 255)), fmt)
    part = decode_image(data, CONFIG)
    assert part.image.mode == "RGB" and part.image.size == (16, 12)
    r, g, b = part.image.getpixel((3, 3))
    assert abs(r - 0) <= 8 and abs(g - 128) <= 8 and abs(b - 255) <= 8  # JPEG/WebP are lossy: small tolerance
    import hashlib
    assert part.digest == hashlib.sha256(data).hexdigest()


def test_rgba_is_composited_on_white_as_vllm_does():
    image = Image.new("RGBA", (4, 4), (255, 0, 0, 0))  # fully transparent red
    assert decode_image(encoded(image, "PNG"), CONFIG).image.getpixel((0, 0)) == (255, 255, 255)


def test_animated_gif_gives_its_first_frame():
    data, first_colour = animated_gif()
    assert decode_image(data, CONFIG).image.getpixel((1, 1)) == first_colour


def test_bomb_is_refused_from_its_header_without_decoding(monkeypatch):
    data = bomb_png(9_000, 9_000)  # 81 M pixels (243 MB of RGB) in a small file; under Pillow's own limit
    assert len(data) < 100_000
    loads = []
    monkeypatch.setattr(ImageFile.ImageFile, "load", lambda self: loads.append(1))
    start = time.perf_counter()
    with pytest.raises(TooLarge, match=r"9000 x 9000 = 81000000 pixels is over --max-image-pixels"):
        decode_image(data, CONFIG)
    assert time.perf_counter() - start < 0.5
    assert loads == []  # refused before a single pixel was decoded


def test_bomb_beyond_pillows_own_limit_is_the_same_413():
    with pytest.raises(TooLarge, match="--max-image-pixels"):
        decode_image(bomb_png(20_000, 20_000), MediaConfig(max_image_pixels=10**12))


def test_pixel_limit_is_the_configured_one():
    data = png(100, 100)
    assert decode_image(data, MediaConfig(max_image_pixels=10_000)).image.size == (100, 100)
    with pytest.raises(TooLarge, match=r"--max-image-pixels \(9999\)"):
        decode_image(data, MediaConfig(max_image_pixels=9_999))


@pytest.mark.parametrize("make", [noisy_jpeg, lambda: encoded(Image.effect_noise((128, 128), 64), "PNG")])
def test_truncated_image_is_a_400(make):
    data = make()
    with pytest.raises(ValidationError, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2], CONFIG)


def test_not_an_image_is_a_400():
    with pytest.raises(ValidationError, match="not an image scorekit can read"):
        decode_image(b"hello, I am a text file\n" * 10, CONFIG)


def test_known_other_format_is_named():
    with pytest.raises(ValidationError, match="image format TIFF is not supported"):
        decode_image(tiff(), CONFIG)
    with pytest.raises(ValidationError, match="image format SVG is not supported"):
        decode_image(b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>', CONFIG)


def test_same_bytes_same_digest_other_bytes_other_digest():
    a, b = decode_image(png(color=(1, 2, 3)), CONFIG), decode_image(png(color=(1, 2, 3)), CONFIG)
    c = decode_image(png(color=(3, 2, 1)), CONFIG)
    assert a == b and hash(a) == hash(b) and a != c
