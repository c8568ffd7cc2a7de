"""The bytes of an image URL: `data:` (base64), `file://` (inside --allowed-local-media-path only) or http(s)
(timeouts, a byte limit while streaming, a redirect limit, an optional domain allow-list).

Blocking by design: the caller runs these on a worker thread (media/resolve.py), never on the event loop. Every
refusal is a ValidationError (400) or TooLarge (413) whose message names the problem and the flag that governs it.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from pathlib import Path
from urllib.parse import unquote, urljoin, urlsplit

import httpx

from scorekit.errors import TooLarge, ValidationError
from scorekit.media.policy import MediaConfig

log = logging.getLogger(__name__)

def _short(url: str) -> str:
    """A URL as an error message shows it: data: URLs hold megabytes of base64."""
    return url if len(url) <= 80 else url[:77] + "..."


def fetch_bytes(url: str, config: MediaConfig) -> bytes:
    if not isinstance(url, str) or not url:
        raise ValidationError("image_url.url must be a non-empty string")
    scheme = url.split(":", 1)[0].strip().lower() if ":" in url[:16] else ""  # not urlsplit: data: URLs are long
    if scheme == "data":
        return data_url_bytes(url, config)
    if scheme == "file":
        return local_file_bytes(url, config)
    if scheme in ("http", "https"):
        return http_bytes(url, config)
    raise ValidationError(f"image URL {_short(url)!r}: unsupported scheme {scheme or '(none)'!r}; "
                          "use http(s)://, data:image/...;base64, or file:// (with --allowed-local-media-path)")


# -- data: ------------------------------------------------------------------------------------------------------
def data_url_bytes(url: str, config: MediaConfig) -> bytes:
    header, comma, payload = url[len("data:"):].partition(",")
    if not comma:
        raise ValidationError("data: URL has no ',' before its data; expected data:image/<format>;base64,<data>")
    media_type, *params = header.split(";")
    media_type = media_type.strip().lower()
    if media_type and not media_type.startswith("image/"):
        raise ValidationError(f"data: URL of type {media_type!r} is not an image; expected data:image/<format>;base64,...")
    if "base64" not in (p.strip().lower() for p in params):
        raise ValidationError("data: URL is not base64-encoded; expected data:image/<format>;base64,<data>")
    # Size from the encoded length, before decoding anything: base64 carries 3 bytes per 4 characters.
    if (len(payload) // 4) * 3 > config.max_image_bytes + 3:
        raise TooLarge(f"data: image of about {(len(payload) // 4) * 3} bytes exceeds --max-image-bytes "
                       f"({config.max_image_bytes})", param="image_url")
    try:
        data = base64.b64decode(payload.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValidationError("data: URL holds invalid base64") from None
    _check_size(len(data), config, "data: image")
    return data


# -- file:// ----------------------------------------------------------------------------------------------------
def local_file_bytes(url: str, config: MediaConfig) -> bytes:
    root = config.local_root
    if root is None:
        raise ValidationError("file:// image URLs are disabled: start the server with --allowed-local-media-path DIR "
                              "to allow images from inside DIR")
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ValidationError(f"file:// URL {_short(url)!r} names a remote host; only file:///absolute/path is read")
    path = Path(unquote(parts.path))
    # resolve() follows every symlink and `..`: what is checked is the file that would really be opened.
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        real = None
    if real is None or not real.is_relative_to(root):
        # Same message whether the file exists or not: a client must not probe the server's file system.
        raise ValidationError(f"file:// path {str(path)!r} is not inside --allowed-local-media-path or does not exist")
    if not real.is_file():
        raise ValidationError(f"file:// path {str(path)!r} is not a regular file")
    _check_size(real.stat().st_size, config, f"file {str(path)!r}")
    with real.open("rb") as f:
        data = f.read(config.max_image_bytes + 1)  # the file may grow after stat
    _check_size(len(data), config, f"file {str(path)!r}")
    return data


# -- http(s) ----------------------------------------------------------------------------------------------------
_CLIENT: httpx.Client | None = None


def _client() -> httpx.Client:
    """One connection pool for the process (created on first use; httpx.Client is thread-safe)."""
    global _CLIENT
    if _CLIENT is None:
        _CLIENT = httpx.Client(follow_redirects=False, trust_env=False,
                               # identity: the byte limit counts what is decoded, and Pillow reads no gzip.
                               headers={"User-Agent": "scorekit-media-fetch", "Accept": "image/*",
                                        "Accept-Encoding": "identity"})
    return _CLIENT


def http_bytes(url: str, config: MediaConfig) -> bytes:
    deadline = time.monotonic() + config.media_fetch_timeout
    # Redirects are followed by hand, so every hop's host is checked against the allow-list (httpx's own
    # following would fetch from wherever the first server points).
    for hop in range(config.max_media_redirects + 1):
        _check_domain(url, config)
        left = deadline - time.monotonic()
        if left <= 0:
            raise _timeout(url, config)
        timeout = httpx.Timeout(left)
        try:
            with _client().stream("GET", url, timeout=timeout) as response:
                if response.is_redirect:
                    location = response.headers.get("location")
                    if not location:
                        raise ValidationError(f"image URL {_short(url)!r}: redirect without a Location")
                    url = urljoin(url, location)
                    continue
                if response.status_code != 200:
                    raise ValidationError(f"image URL {_short(url)!r} answered HTTP {response.status_code}")
                return _read_body(response, url, config, deadline)
        except httpx.TimeoutException:
            raise _timeout(url, config) from None
        except httpx.HTTPError as exc:
            # The client hears the kind of failure only; httpx's own text (addresses, OS errors) goes to the log.
            log.info("image URL %r could not be fetched: %r", _short(url), exc)
            raise ValidationError(f"image URL {_short(url)!r} could not be fetched ({type(exc).__name__})") from None
    raise ValidationError(f"image URL redirected more than --max-media-redirects ({config.max_media_redirects}) times")


def _read_body(response: httpx.Response, url: str, config: MediaConfig, deadline: float) -> bytes:
    declared = response.headers.get("content-length")
    if declared and declared.isdigit():
        _check_size(int(declared), config, f"image at {_short(url)!r}")
    chunks: list[bytes] = []
    size = 0
    # raw: a gzip body is not inflated past the limit. No chunk size: httpx would buffer up to it before
    # yielding, and a server trickling bytes would never reach the deadline check below.
    for chunk in response.iter_raw():
        size += len(chunk)
        _check_size(size, config, f"image at {_short(url)!r}")  # stops reading at the limit, whatever was declared
        chunks.append(chunk)
        if time.monotonic() > deadline:  # a server trickling bytes in under the read timeout
            raise _timeout(url, config)
    return b"".join(chunks)


def _check_domain(url: str, config: MediaConfig) -> None:
    host = urlsplit(url).hostname or ""
    if not host:
        raise ValidationError(f"image URL {_short(url)!r} has no host")
    if not config.domain_allowed(host):
        raise ValidationError(f"image URL host {host!r} is not in --allowed-media-domains")


def _timeout(url: str, config: MediaConfig) -> ValidationError:
    return ValidationError(f"image URL {_short(url)!r} did not arrive within --media-fetch-timeout "
                           f"({config.media_fetch_timeout:g} s)")


def _check_size(size: int, config: MediaConfig, what: str) -> None:
    if size > config.max_image_bytes:
        raise TooLarge(f"{what} is over --max-image-bytes ({config.max_image_bytes} bytes)", param="image_url")
