"""The image flags of `scorekit serve` / `run-batch` build the MediaConfig the server uses; bad ones stop the
server before any model loads."""

from __future__ import annotations

import pytest

from scorekit import cli
from scorekit.cli import _media_config, build_parser
from scorekit.media.policy import MediaConfig


def test_defaults_are_the_configs():
    assert _media_config(build_parser().parse_args(["serve"])) == MediaConfig()


@pytest.mark.parametrize("sep", ["-", "_"])
def test_every_flag_in_both_spellings(tmp_path, sep):
    f = lambda name: "--" + name.replace("_", sep)  # noqa: E731
    args = build_parser().parse_args([
        "serve", f("allowed_local_media_path"), str(tmp_path), f("allowed_media_domains"), "a.com", "B.org",
        f("trust_request_mm_kwargs"), f("limit_mm_per_prompt"), '{"image": 2}', f("max_images_per_request"), "5",
        f("media_fetch_timeout"), "1.5", f("max_image_bytes"), "1000", f("max_image_pixels"), "4096",
        f("max_media_redirects"), "0", f("media_io_threads"), "2", f("mm_processor_kwargs"), '{"max_pixels": 9}'])
    assert _media_config(args) == MediaConfig(
        allowed_local_media_path=str(tmp_path), allowed_media_domains=("a.com", "b.org"), trust_request_mm_kwargs=True,
        max_images_per_prompt=2, max_images_per_request=5, media_fetch_timeout=1.5, max_image_bytes=1000,
        max_image_pixels=4096, max_media_redirects=0, media_io_threads=2, mm_processor_kwargs={"max_pixels": 9})


@pytest.mark.parametrize("argv, message", [
    (["--allowed-local-media-path", "/no/such/dir"], "Invalid --allowed-local-media-path"),
    (["--max-image-pixels", "0"], "max_image_pixels must be a positive integer"),
    (["--limit-mm-per-prompt", '{"video": 1}'], "images only"),
    (["--mm-processor-kwargs", '[1]'], "mm_processor_kwargs must be a JSON object"),
])
def test_bad_flags_stop_the_server_before_loading(argv, message, capsys):
    assert cli.main(["serve", *argv]) == 2
    assert message in capsys.readouterr().err
