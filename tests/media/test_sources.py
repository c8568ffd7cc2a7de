"""media/sources.py: data: URLs, file:// inside the allowed directory only, http(s) from a loopback server the
test starts (redirects, timeouts, byte limits, the domain allow-list)."""

from __future__ import annotations

import base64
import os
import time

import pytest

from scorekit.errors import TooLarge, ValidationError
from scorekit.media.policy import MediaConfig
from scorekit.media.sources import fetch_bytes
from tests.media.images import png

IMAGE = png()


def data_url(data: bytes, kind: str = "image/png") -> str:
    return f"data:{kind};base64," + base64.b64encode(data).decode()


# -- data: --------------------------------------------------------------------------------------------------------
def test_data_url_round_trip():
    assert fetch_bytes(data_url(IMAGE), MediaConfig()) == IMAGE


@pytest.mark.parametrize("url, message", [
    ("data:image/png;base64,@@@@", "invalid base64"),
    ("data:image/png,rawbytes", "not base64-encoded"),
    ("data:text/plain;base64,aGVsbG8=", "'text/plain' is not an image"),
    ("data:image/png;base64", "no ','"),
])
def test_bad_data_urls(url, message):
    with pytest.raises(ValidationError, match=message):
        fetch_bytes(url, MediaConfig())


def test_oversized_data_url_is_refused_before_decoding():
    with pytest.raises(TooLarge, match=r"--max-image-bytes \(1000\)"):
        fetch_bytes(data_url(b"\x00" * 2000), MediaConfig(max_image_bytes=1000))


@pytest.mark.parametrize("url", ["ftp://example.com/a.png", "/etc/passwd", "gopher://x"])
def test_unsupported_schemes(url):
    with pytest.raises(ValidationError, match="unsupported scheme"):
        fetch_bytes(url, MediaConfig())


# -- file:// ------------------------------------------------------------------------------------------------------
def test_file_urls_are_off_without_the_flag(media_dir):
    with pytest.raises(ValidationError, match="--allowed-local-media-path"):
        fetch_bytes(f"file://{media_dir}/inside.png", MediaConfig())


def test_file_inside_the_allowed_directory(media_dir):
    config = MediaConfig(allowed_local_media_path=str(media_dir))
    assert fetch_bytes(f"file://{media_dir}/inside.png", config) == (media_dir / "inside.png").read_bytes()


@pytest.mark.parametrize("path", ["{root}/../secret.png", "{parent}/secret.png", "{root}/missing.png", "/etc/passwd"])
def test_files_outside_or_missing_get_one_answer(media_dir, path):
    config = MediaConfig(allowed_local_media_path=str(media_dir))
    url = "file://" + path.format(root=media_dir, parent=media_dir.parent)
    with pytest.raises(ValidationError, match="is not inside --allowed-local-media-path or does not exist"):
        fetch_bytes(url, config)


def test_symlink_escaping_the_directory_is_refused(media_dir):
    os.symlink(media_dir.parent / "secret.png", media_dir / "link.png")
    config = MediaConfig(allowed_local_media_path=str(media_dir))
    with pytest.raises(ValidationError, match="not inside --allowed-local-media-path"):
        fetch_bytes(f"file://{media_dir}/link.png", config)


def test_symlink_staying_inside_is_followed(media_dir):
    os.symlink(media_dir / "inside.png", media_dir / "alias.png")
    config = MediaConfig(allowed_local_media_path=str(media_dir))
    assert fetch_bytes(f"file://{media_dir}/alias.png", config) == (media_dir / "inside.png").read_bytes()


def test_allowed_directory_reached_through_a_symlink(media_dir, tmp_path):
    os.symlink(media_dir, tmp_path / "via")
    config = MediaConfig(allowed_local_media_path=str(tmp_path / "via"))
    assert fetch_bytes(f"file://{tmp_path}/via/inside.png", config)


def test_oversized_local_file(media_dir):
    config = MediaConfig(allowed_local_media_path=str(media_dir), max_image_bytes=10)
    with pytest.raises(TooLarge, match="--max-image-bytes"):
        fetch_bytes(f"file://{media_dir}/inside.png", config)


def test_remote_file_host_and_missing_directory(media_dir):
    config = MediaConfig(allowed_local_media_path=str(media_dir))
    with pytest.raises(ValidationError, match="remote host"):
        fetch_bytes(f"file://otherhost{media_dir}/inside.png", config)
    with pytest.raises(ValueError, match="Invalid --allowed-local-media-path"):
        MediaConfig(allowed_local_media_path=str(media_dir / "nope"))


# -- http(s) ------------------------------------------------------------------------------------------------------
def test_http_image(media_server):
    media_server.files["/a.png"] = (IMAGE, "image/png")
    assert fetch_bytes(media_server.url("/a.png"), MediaConfig()) == IMAGE


def test_http_redirects_up_to_the_limit(media_server):
    media_server.files["/a.png"] = (IMAGE, "image/png")
    config = MediaConfig(max_media_redirects=2)
    assert fetch_bytes(media_server.url("/redirect/2?to=/a.png"), config) == IMAGE
    with pytest.raises(ValidationError, match=r"more than --max-media-redirects \(2\)"):
        fetch_bytes(media_server.url("/redirect/3?to=/a.png"), config)


def test_http_domain_allow_list_checked_on_every_hop(media_server):
    media_server.files["/a.png"] = (IMAGE, "image/png")
    config = MediaConfig(allowed_media_domains=("127.0.0.1",))
    assert fetch_bytes(media_server.url("/a.png"), config) == IMAGE
    with pytest.raises(ValidationError, match="'localhost' is not in --allowed-media-domains"):
        fetch_bytes(media_server.url("/a.png", host="localhost"), config)
    media_server.hits.clear()
    with pytest.raises(ValidationError, match="'localhost' is not in --allowed-media-domains"):
        fetch_bytes(media_server.url("/redirect/1?to=/a.png&host=localhost"), config)
    assert media_server.hits == ["/redirect/1?to=/a.png&host=localhost"]  # the redirect target was not fetched


def test_subdomains_of_an_allowed_domain():
    config = MediaConfig(allowed_media_domains=("Example.com",))
    assert config.domain_allowed("example.com") and config.domain_allowed("img.example.com.")
    assert not config.domain_allowed("badexample.com") and not config.domain_allowed("example.com.evil.org")


def test_http_slow_headers_time_out(media_server):
    start = time.perf_counter()
    with pytest.raises(ValidationError, match=r"--media-fetch-timeout \(0.5 s\)"):
        fetch_bytes(media_server.url("/slow?delay=3"), MediaConfig(media_fetch_timeout=0.5))
    assert time.perf_counter() - start < 2


def test_http_trickling_body_times_out_as_a_whole(media_server):
    start = time.perf_counter()  # every read is quick; the body as a whole would take 100 s
    with pytest.raises(ValidationError, match="--media-fetch-timeout"):
        fetch_bytes(media_server.url("/trickle"), MediaConfig(media_fetch_timeout=1.0))
    assert time.perf_counter() - start < 3


def test_http_declared_oversize_is_refused_from_the_header(media_server):
    media_server.files["/big.png"] = (b"\x00" * 5000, "image/png")
    with pytest.raises(TooLarge, match=r"--max-image-bytes \(4000 bytes\)"):
        fetch_bytes(media_server.url("/big.png"), MediaConfig(max_image_bytes=4000))


def test_http_undeclared_oversize_stops_reading_at_the_limit(media_server):
    start = time.perf_counter()  # /endless would send 640 MB
    with pytest.raises(TooLarge, match="--max-image-bytes"):
        fetch_bytes(media_server.url("/endless"), MediaConfig(max_image_bytes=1 << 20))
    assert time.perf_counter() - start < 2


def test_http_error_status_and_unreachable_host(media_server):
    with pytest.raises(ValidationError, match="answered HTTP 404"):
        fetch_bytes(media_server.url("/missing.png"), MediaConfig())
    port = media_server.port
    media_server.__exit__()
    with pytest.raises(ValidationError, match=r"could not be fetched \(ConnectError\)$"):  # no OS error text
        fetch_bytes(f"http://127.0.0.1:{port}/a.png", MediaConfig(media_fetch_timeout=1))
