"""A loopback HTTP server the media tests start: images, redirects, slow and oversized answers, and a log of
the paths asked for (to show that a refused request fetched nothing)."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class MediaServer:
    def __init__(self):
        self.files: dict[str, tuple[bytes, str]] = {}  # path -> (body, content type)
        self.hits: list[str] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()


def _handler(media: MediaServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):  # quiet test output
            pass

        def do_GET(self):
            media.hits.append(self.path)
            path, _, query = self.path.partition("?")
            params = dict(p.split("=", 1) for p in query.split("&") if "=" in p)
            if path.startswith("/redirect/"):  # /redirect/N?to=PATH: N more hops, then PATH
                left = int(path.rsplit("/", 1)[1])
                target = f"/redirect/{left - 1}?to={params['to']}" if left > 1 else params["to"]
                if "host" in params:
                    target = f"http://{params['host']}:{media.port}{target}"
                self._answer(302, b"", extra={"Location": target})
            elif path == "/slow":  # headers only after `delay` seconds; the body is `file` (or not an image)
                time.sleep(float(params.get("delay", "3")))
                body, kind = media.files.get(params.get("file", ""), (b"late", "image/png"))
                self._answer(200, body, kind)
            elif path == "/trickle":  # a byte every 0.1 s, for a long time: each read is quick, the whole is not
                self.send_response(200)
                self.send_header("Content-Length", "1000")
                self.end_headers()
                try:
                    for _ in range(1000):
                        self.wfile.write(b"x")
                        self.wfile.flush()
                        time.sleep(0.1)
                except (BrokenPipeError, ConnectionResetError):
                    pass
            elif path == "/endless":  # chunked, no Content-Length: only counting while reading can stop it
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"\x00" * 65536
                try:
                    for _ in range(10_000):  # 640 MB at most, were nothing to stop reading
                        self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except (BrokenPipeError, ConnectionResetError):
                    pass
            elif path in media.files:
                body, kind = media.files[path]
                self._answer(200, body, kind)
            else:
                self._answer(404, b"not found", "text/plain")

        def _answer(self, status: int, body: bytes, kind: str = "application/octet-stream", extra=None):
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up first (timeouts under test)
                pass

    return Handler
