"""The client of bench/reliability.py: keep-alive HTTP/1.1 over asyncio streams, any method and path, bounded.

Like bench/load_client.py's RawConnection it speaks HTTP/1.1 itself, because on a 2-core machine httpx would
take a large share of the CPU the server under test needs. Unlike it, a fault run also needs to send to many
routes over one connection, to stream a body in chunks (the server's byte counting, not its Content-Length
check), to give up on a request and close the socket mid-flight (FIN or RST), and to put a time limit on
every request so that a hanging server shows up as a timeout instead of a hanging benchmark.
"""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from dataclasses import dataclass

from load_client import read_body

CHUNK = 64 * 1024  # bytes per chunk of a chunked body


@dataclass
class Response:
    status: int  # 0 when no answer came: `error` says why (a timeout or a broken connection)
    body: bytes
    seconds: float
    error: str = ""

    @property
    def timed_out(self) -> bool:
        return self.error.startswith("timeout")


def request_bytes(method: str, path: str, body: bytes | None, host: str, chunked: bool = False,
                  content_type: str = "application/json") -> bytes:
    head = f"{method} {path} HTTP/1.1\r\nHost: {host}\r\n"
    if body is None:
        return (head + "\r\n").encode()
    head += f"Content-Type: {content_type}\r\n"
    if not chunked:
        return (head + f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    parts = [(head + "Transfer-Encoding: chunked\r\n\r\n").encode()]
    for at in range(0, len(body), CHUNK):
        piece = body[at:at + CHUNK]
        parts.append(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
    parts.append(b"0\r\n\r\n")
    return b"".join(parts)


class Connection:
    """One keep-alive connection to 127.0.0.1:port, one request at a time."""

    def __init__(self, port: int, host: str = "127.0.0.1"):
        self.host, self.port = host, port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None = None, *, timeout: float,
                      chunked: bool = False, content_type: str = "application/json") -> Response:
        data = request_bytes(method, path, body, f"{self.host}:{self.port}", chunked, content_type)
        start = time.perf_counter()
        # A reused connection may have been closed by the server while idle (uvicorn's keep-alive timeout):
        # that shows as an end of stream before any byte of the answer, and one retry on a fresh connection is
        # what every HTTP client does. A fresh connection that fails is reported.
        for attempt in range(2):
            reused = self._writer is not None
            try:
                status, payload = await asyncio.wait_for(self._exchange(data), timeout)
                return Response(status, payload, time.perf_counter() - start)
            except asyncio.TimeoutError:
                await self.close()
                return Response(0, b"", time.perf_counter() - start, f"timeout after {timeout:.0f} s")
            except _NoAnswer as exc:
                await self.close()
                if not reused or attempt:
                    return Response(0, b"", time.perf_counter() - start, f"no answer: {exc}")
            except (OSError, asyncio.IncompleteReadError, ValueError) as exc:
                await self.close()
                return Response(0, b"", time.perf_counter() - start, f"{type(exc).__name__}: {exc}")
        raise AssertionError("unreachable")

    async def _exchange(self, data: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        try:
            self._writer.write(data)
            # Not drained before reading: a server that answers 413 from the headers may read the rest of the
            # body only after answering, and waiting for the buffer to empty first would deadlock.
            head = await self._reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            if isinstance(exc, asyncio.IncompleteReadError) and exc.partial:
                raise
            raise _NoAnswer(f"{type(exc).__name__}: {exc}") from exc
        payload, done = await read_body(self._reader, head)
        if done:
            await self.close()
        return int(head[9:12]), payload

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = self._reader = None


class _NoAnswer(Exception):
    """The connection ended before the first byte of an answer."""


async def abandon(port: int, path: str, body: bytes, after: float, reset: bool, host: str = "127.0.0.1") -> bool:
    """Send a request on a new connection and close it `after` seconds later without reading the answer:
    with a TCP reset when `reset` (SO_LINGER 0, as a killed process or a proxy timing out does), else with
    an ordinary FIN. True when the server had already started answering by then (the close came too late to
    count as a disconnect)."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(request_bytes("POST", path, body, f"{host}:{port}"))
        await writer.drain()
        try:  # wait out `after`, noticing an answer that comes sooner
            answered = bool(await asyncio.wait_for(reader.read(1), after))
        except asyncio.TimeoutError:
            answered = False
    finally:
        if reset:
            sock = writer.get_extra_info("socket")
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        else:
            writer.close()
    return answered
