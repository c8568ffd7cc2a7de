"""The load generator of bench/serve_load.py: a separate process that keeps `concurrency` requests in flight.

On a 2-core machine the client takes its CPU from the same cores as the server it measures, so it should cost
as little as a load generator such as wrk does. The default client ("raw") speaks HTTP/1.1 itself over
`concurrency` keep-alive connections (asyncio streams on uvloop, one prebuilt request header per connection,
the response read by its Content-Length): ~0.1 ms of CPU per request. httpx's AsyncClient ("httpx", the
client of earlier runs) costs 1.0-1.4 ms per request here — a seventh of what the server itself spends.
Both servers under test get the same client, so the comparison between them is unchanged by the choice.
"""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable
from urllib.parse import urlsplit

import orjson

# One request: (body bytes) -> (HTTP status, response body).
Post = Callable[[bytes], Awaitable[tuple[int, bytes]]]


async def read_body(reader: asyncio.StreamReader, head: bytes) -> tuple[bytes, bool]:
    """The body that follows a response head, and whether the connection ends after it (no length, or
    `Connection: close`). Shared with bench/fault_client.py."""
    lowered = head.lower()
    at = lowered.find(b"\r\ncontent-length:")
    if at >= 0:
        payload = await reader.readexactly(int(lowered[at + 17:lowered.index(b"\r\n", at + 2)]))
    elif b"\r\ntransfer-encoding: chunked" in lowered:
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunks.append((await reader.readexactly(size + 2))[:size])  # each chunk ends in CRLF
            if size == 0:
                break
        payload = b"".join(chunks)
    else:  # no length: the body runs to the end of the connection
        return await reader.read(), True
    return payload, b"\r\nconnection: close" in lowered


class RawConnection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON bodies to one path, one request at a time."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        self.host, self.port = parts.hostname, parts.port or 80
        self._head = (f"POST {parts.path or '/'} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
                      f"Content-Type: application/json\r\nContent-Length: ").encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        self._writer.write(self._head + str(len(body)).encode() + b"\r\n\r\n" + body)
        head = await self._reader.readuntil(b"\r\n\r\n")
        payload, done = await read_body(self._reader, head)
        if done:
            await self.close()
        return int(head[9:12]), payload

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = self._reader = None


async def _run(url: str, texts: list[str], model: str, concurrency: int, warmup: int, max_seconds: float,
               client: str) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    failures = 0
    bodies = [orjson.dumps({"input": text, "model": model}) for text in texts]  # built before the clock starts

    async def one(post: Post, body: bytes) -> None:
        nonlocal failures
        start = time.perf_counter()
        try:
            status, payload = await post(body)
            ok = status == 200
            if not ok and len(errors) < 5:
                errors.append(f"HTTP {status}: {payload[:200]!r}")
        except Exception as exc:  # noqa: BLE001 - a failed request is counted and reported, not fatal
            ok = False
            if len(errors) < 5:
                errors.append(f"{type(exc).__name__}: {exc}")
        if ok:
            latencies.append(time.perf_counter() - start)
        else:
            failures += 1

    async with _posters(url, concurrency, client) as posts:
        # Warm-up: open the connections and let both sides settle; not counted.
        for k in range(0, warmup, concurrency):
            await asyncio.gather(*(one(post, bodies[(k + i) % len(bodies)]) for i, post in enumerate(posts)))
        latencies.clear()
        errors.clear()
        failures = 0

        next_index = 0
        deadline = time.perf_counter() + max_seconds

        async def worker(post: Post) -> None:
            nonlocal next_index
            while next_index < len(bodies) and time.perf_counter() < deadline:
                i = next_index
                next_index += 1
                await one(post, bodies[i])

        cpu0 = time.process_time()
        start = time.perf_counter()
        await asyncio.gather(*(worker(post) for post in posts))
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0
    return {"latencies": latencies, "failures": failures, "errors": errors, "wall": wall, "client_cpu": cpu,
            "sent": next_index, "timed_out": next_index < len(bodies)}


class _posters:
    """`concurrency` post functions, one per connection: raw keep-alive sockets, or one pooled httpx client."""

    def __init__(self, url: str, concurrency: int, client: str):
        self.url, self.concurrency, self.client = url, concurrency, client
        self._close: Callable[[], Awaitable[None]] | None = None

    async def __aenter__(self) -> list[Post]:
        if self.client == "raw":
            connections = [RawConnection(self.url) for _ in range(self.concurrency)]

            async def close_all() -> None:
                for c in connections:
                    await c.close()
            self._close = close_all
            return [c.post for c in connections]
        import httpx

        limits = httpx.Limits(max_connections=self.concurrency, max_keepalive_connections=self.concurrency)
        http = httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(60.0))
        self._close = http.aclose

        async def post(body: bytes) -> tuple[int, bytes]:
            resp = await http.post(self.url, content=body, headers={"Content-Type": "application/json"})
            return resp.status_code, resp.content
        return [post] * self.concurrency

    async def __aexit__(self, *exc) -> None:
        await self._close()


def client_main(conn, url: str, texts: list[str], model: str, concurrency: int, warmup: int, max_seconds: float,
                client: str) -> None:
    """Runs in a spawned process: sends the load and sends back latencies (s), wall seconds, errors, CPU seconds."""
    try:
        try:
            import uvloop
            runner = uvloop.run
        except ImportError:
            runner = asyncio.run
        conn.send(runner(_run(url, texts, model, concurrency, warmup, max_seconds, client)))
    except BaseException as exc:  # noqa: BLE001 - the parent must hear about it
        conn.send({"fatal": f"{type(exc).__name__}: {exc}"})
    finally:
        conn.close()
