"""Image bytes the media tests send: real encodings made with Pillow, and hand-built hostile ones."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image


def encoded(image: Image.Image, fmt: str, **save) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **save)
    return buf.getvalue()


def png(width: int = 32, height: int = 24, color=(200, 30, 60)) -> bytes:
    return encoded(Image.new("RGB", (width, height), color), "PNG")


def noisy_jpeg(size: int = 256) -> bytes:
    """A JPEG whose scan data fills most of the file (noise does not compress), so cutting it truncates pixels."""
    return encoded(Image.effect_noise((size, size), 64).convert("RGB"), "JPEG", quality=95)


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def bomb_png(width: int, height: int) -> bytes:
    """A valid 1-bit greyscale PNG of width x height zero pixels: tens of kB on the wire, while decoding it to
    RGB would take 3 x width x height bytes. Built row by row so the test itself never holds the raw image."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", idat) + _chunk(b"IEND", b"")


def animated_gif() -> tuple[bytes, tuple[int, int, int]]:
    """A two-frame GIF, and the RGB colour of its first frame."""
    first, second = Image.new("RGB", (8, 8), (255, 0, 0)), Image.new("RGB", (8, 8), (0, 0, 255))
    return encoded(first, "GIF", save_all=True, append_images=[second], duration=100), (255, 0, 0)


def tiff() -> bytes:
    return encoded(Image.new("RGB", (4, 4), (1, 2, 3)), "TIFF")
