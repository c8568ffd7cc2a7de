"""Fixtures of the media tests: a loopback HTTP server (tests/media/loopback.py) and a directory of local images."""

from __future__ import annotations

import pytest

from tests.media.loopback import MediaServer


@pytest.fixture
def media_server():
    with MediaServer() as server:
        yield server


@pytest.fixture
def media_dir(tmp_path):
    """An allowed directory with one PNG inside, and a secret PNG beside it (outside)."""
    from tests.media.images import png

    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "inside.png").write_bytes(png(color=(10, 20, 30)))
    (tmp_path / "secret.png").write_bytes(png(color=(99, 99, 99)))
    return allowed
