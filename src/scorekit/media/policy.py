"""Where images may come from and how big they may be: one frozen object, each default written once here.

`scorekit serve` builds it from its flags (the names are vLLM's where vLLM has one: `--allowed-local-media-path`,
`--allowed-media-domains`, `--trust-request-mm-kwargs`, `--limit-mm-per-prompt`), `LLM(...)` from keywords of the
same names. Every limit is enforced before the expensive step it protects: bytes while they stream in, pixels from
the image header before a single pixel is decoded, the image count before anything is fetched.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class MediaConfig:
    # file:// images are read only from inside this directory (symlinks and `..` resolved first); None: refused.
    allowed_local_media_path: str | None = None
    # http(s) images only from these host names (exact match, or a subdomain of one); empty: any host.
    allowed_media_domains: tuple[str, ...] = ()
    # Seconds for the whole fetch of one http(s) image: connecting, each read, and the full body together
    # (vLLM's VLLM_IMAGE_FETCH_TIMEOUT is 5 s).
    media_fetch_timeout: float = 5.0
    # Bytes of one encoded image (a download, a data: URL once base64-decoded, a local file). Above it: 413.
    max_image_bytes: int = 20 * 1024 * 1024
    # Redirects followed per http(s) image; each hop's host is checked against allowed_media_domains.
    max_media_redirects: int = 3
    # Pixels (width x height) of one image, read from its header before decoding: a 100 kB PNG can declare
    # 50,000 x 50,000 pixels (7.5 GB of RGB). 8192 x 4096 decoded is 100 MB of RGB.
    max_image_pixels: int = 8192 * 4096
    # Images in one request, across all its queries and documents: with max_image_pixels this bounds the
    # decoded memory of a request (16 x 100 MB) whatever its body holds.
    max_images_per_request: int = 16
    # Images in one input (one query or document's content); vLLM's --limit-mm-per-prompt '{"image": N}'.
    # None: only max_images_per_request applies.
    max_images_per_prompt: int | None = None
    # Per-request mm_processor_kwargs are refused unless the operator trusts clients with them (vLLM's flag).
    trust_request_mm_kwargs: bool = False
    # The model's own mm_processor_kwargs (vLLM's `--mm-processor-kwargs` / `LLM(mm_processor_kwargs=)`): every
    # image is processed with them, a request's (when trusted) over them. Keys are checked against the model's
    # processor when the model loads (scoring/vl_inputs.py `processor_options`).
    mm_processor_kwargs: dict[str, Any] | None = field(default=None, hash=False)
    # Threads that fetch and decode images (shared by all requests of a process): also bounds how many images
    # are being decoded at once, so concurrent requests cannot multiply the decode memory.
    media_io_threads: int = 4

    def __post_init__(self):
        for name in ("max_image_bytes", "max_image_pixels", "max_images_per_request", "media_io_threads"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be a positive integer")
        if self.mm_processor_kwargs is not None and not isinstance(self.mm_processor_kwargs, dict):
            raise ValueError("mm_processor_kwargs must be a JSON object (a dict)")
        if self.max_media_redirects < 0:
            raise ValueError("max_media_redirects must be 0 (no redirects) or more")
        if self.max_images_per_prompt is not None and self.max_images_per_prompt < 0:
            raise ValueError("max_images_per_prompt must be 0 or more")
        if not self.media_fetch_timeout > 0:
            raise ValueError("media_fetch_timeout must be a positive number of seconds")
        if isinstance(self.allowed_media_domains, str):  # a bare string would be split into characters
            object.__setattr__(self, "allowed_media_domains", (self.allowed_media_domains,))
        domains = tuple(d.strip().lower().rstrip(".") for d in self.allowed_media_domains)
        if any(not d for d in domains):
            raise ValueError("allowed_media_domains holds an empty name")
        object.__setattr__(self, "allowed_media_domains", domains)
        if self.allowed_local_media_path is not None:
            root = Path(self.allowed_local_media_path)
            if not root.is_dir():
                # vLLM refuses to start the same way: a typo must not silently turn local files off.
                raise ValueError(f"Invalid --allowed-local-media-path: {root} does not exist or is not a directory.")

    @property
    def local_root(self) -> Path | None:
        """The allowed directory with symlinks resolved, or None when local files are off."""
        return None if self.allowed_local_media_path is None else Path(self.allowed_local_media_path).resolve()

    def domain_allowed(self, host: str) -> bool:
        if not self.allowed_media_domains:
            return True
        host = host.lower().rstrip(".")
        return any(host == d or host.endswith("." + d) for d in self.allowed_media_domains)


def limit_mm_per_prompt(value: dict[str, Any] | None) -> int | None:
    """vLLM's `--limit-mm-per-prompt '{"image": N}'` as max_images_per_prompt. Other modalities can only be 0:
    scorekit takes no audio or video, and a limit above 0 would promise otherwise."""
    if not value:
        return None
    other = {k: v for k, v in value.items() if k != "image" and v}
    if other:
        raise ValueError(f"--limit-mm-per-prompt: scorekit takes images only, not {sorted(other)}")
    image = value.get("image")
    if image is None:
        return None
    if not isinstance(image, int) or isinstance(image, bool) or image < 0:
        raise ValueError("--limit-mm-per-prompt: `image` must be a non-negative integer")
    return image


MEDIA_FIELDS = tuple(f.name for f in fields(MediaConfig))
