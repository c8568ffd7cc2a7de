"""What every route needs: the loaded LLM, the request worker threads, the served names and the metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Callable, TypeVar

from fastapi import Request

from scorekit.engine.cancel import CancelScope
from scorekit.engine.worker import ModelWorker
from scorekit.errors import ModelNotFound, ValidationError
from scorekit.server.metrics import Metrics

T = TypeVar("T")
log = logging.getLogger("scorekit.server")


@dataclass
class ServerState:
    llm: Any  # scorekit.LLM
    served_model_names: list[str]
    worker: ModelWorker = field(default_factory=ModelWorker)
    metrics: Metrics | None = None

    @property
    def model_name(self) -> str:
        return self.served_model_names[0]

    @property
    def info(self):
        return self.llm.info

    @property
    def tokenizer(self):
        return self.llm.loaded.tokenizer

    def scorer(self):
        return self.llm.scorer()

    async def run(self, fn: Callable[..., T], *args: Any, request: Request | None = None, **kwargs: Any) -> T:
        """Model and tokenizer work runs on worker threads, never on the event loop. With `request`, work
        still queued in the engine is dropped when that client disconnects."""
        if request is None:
            return await self.worker.call(fn, *args, **kwargs)
        async with _cancelled_on_disconnect(request) as scope:
            return await self.worker.call(fn, *args, scope=scope, **kwargs)

    async def wait(self, item, request: Request) -> Any:
        """The result of engine work submitted straight from the event loop (an engine WorkItem), without a
        worker thread in between; dropped before it runs when the client disconnects or this task is cancelled."""
        async with _cancelled_on_disconnect(request) as scope:
            scope.add(item)
            try:
                return await asyncio.wrap_future(item.future)
            except asyncio.CancelledError:
                item.cancel()
                raise

    def check_model(self, name: str | None, with_aliases: bool = False) -> None:
        if not name or name in self.served_model_names:
            return
        if with_aliases:
            raise ModelNotFound(f"The model `{name}` does not exist. Valid aliases: "
                                f"{', '.join(self.served_model_names)}.", param="model")
        raise ModelNotFound(f"The model `{name}` does not exist.")

    def count_tokens(self, route: str, n: int) -> None:
        if self.metrics is not None:
            self.metrics.tokens.labels(route=route).inc(n)


@contextlib.asynccontextmanager
async def _cancelled_on_disconnect(request: Request):
    """A CancelScope that is cancelled if the client goes away while the block runs."""
    scope = CancelScope()
    watcher = asyncio.create_task(_cancel_on_disconnect(request.receive, scope))
    try:
        yield scope
    finally:
        watcher.cancel()


async def _cancel_on_disconnect(receive, scope: CancelScope) -> None:
    """Runs while the request's work does. The body has been read, so the next ASGI message is
    `http.disconnect`, which the server sends when the client goes away: one wait, not a poll (polling
    `Request.is_disconnected` cost more of the event loop than the rest of an embedding request's routing)."""
    while (await receive())["type"] != "http.disconnect":
        pass
    dropped = scope.cancel()
    log.info("client went away: dropped %d queued engine submissions", dropped)


async def get_state(request: Request) -> ServerState:
    # async, so FastAPI calls it on the event loop: a plain `def` dependency costs a thread-pool round trip.
    return request.app.state.scorekit


def check_cache_salt(salt: str | None) -> None:
    if salt is None:
        return
    if not salt or len(salt) > 128 or any(c in salt for c in "@/\\\x00"):
        raise ValidationError("cache_salt must be a non-empty string of at most 128 characters without "
                              "'@', '/', '\\' or NUL characters.", param="cache_salt")

