"""What every route needs: the loaded LLM, the server config, the metrics, and the bridge from a request
handler on the event loop to the engine's one door.

`run(job, request)` submits the job and awaits its future; nothing blocks the event loop and no thread waits
on the request's behalf. If the client goes away first, the job is cancelled: queued work is dropped at once
and running work stops at its next chunk (engine/job.py), and the request ends as a 499, not an error.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastapi import Request

from scorekit.config import ServerConfig
from scorekit.engine.job import Job
from scorekit.errors import ModelNotFound, ShuttingDown, TooLarge, ValidationError
from scorekit.server.errors import ClientDisconnected

log = logging.getLogger("scorekit.server")


def default_served_name(llm) -> str:
    """The folder or file name of the model (or its hub id): never an absolute path, which would tell every
    client where the server keeps its files."""
    name = llm.model_config.model or llm.loaded.location.name
    path = Path(name)
    return path.name if path.is_absolute() or path.exists() else name


@dataclass
class ServerState:
    llm: Any  # scorekit.LLM
    config: ServerConfig = field(default_factory=ServerConfig)
    metrics: Any = None  # server.metrics.Metrics
    in_flight: int = 0  # requests awaiting the engine now: exported as a metric

    def __post_init__(self):
        self.served_model_names = list(self.config.served_model_names) or [default_served_name(self.llm)]

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

    async def run(self, job: Job, request: Request) -> Any:
        """Submit `job` through the engine's door and await its result. A client that disconnects cancels it
        (ClientDisconnected: a 499)."""
        result = asyncio.wrap_future(job.future)
        watcher = asyncio.create_task(_disconnect(request.receive))

        def client_gone(task: asyncio.Task) -> None:
            if not task.cancelled():  # the client left (not: the request ended and its watcher was stopped)
                job.cancel()
                result.cancel()  # wakes the await below; the job's own later JobCancelled goes unread by design

        # A done-callback rather than asyncio.wait over both futures: one await per request on the event loop,
        # which every answered request crosses (bench/serve_load.py: 0.88x the old embeddings route at c=32
        # with asyncio.wait).
        watcher.add_done_callback(client_gone)
        self.in_flight += 1
        try:
            self.llm.engine.submit(job)
            return await result
        except asyncio.CancelledError:
            if watcher.done() and not watcher.cancelled():
                raise ClientDisconnected() from None
            # Otherwise uvicorn cancelled this task: at shutdown, once --timeout-graceful-shutdown has passed. The
            # work stops too, and the client gets a clean 503 it may retry elsewhere, not a dropped connection.
            job.cancel()
            raise ShuttingDown("The server is shutting down; retry the request.") from None
        finally:
            self.in_flight -= 1
            watcher.cancel()

    # -- request checks shared by the routes --------------------------------------------------------------
    def check_model(self, name: str | None, with_aliases: bool = False) -> None:
        if not name or name in self.served_model_names:
            return
        if with_aliases:
            raise ModelNotFound(f"The model `{name}` does not exist. Valid aliases: "
                                f"{', '.join(self.served_model_names)}.", param="model")
        raise ModelNotFound(f"The model `{name}` does not exist.")

    def check_inputs(self, count: int, field_name: str) -> None:
        """At most --max-client-batch-size inputs in one request (TEI's name for the limit)."""
        limit = self.config.max_client_batch_size
        if count > limit:
            raise TooLarge(f"{count} inputs in `{field_name}` exceed --max-client-batch-size ({limit}); "
                           "split the request.", param=field_name)

    def priority(self, value: int | None) -> int:
        """The request's `priority`, which only --scheduling-policy priority obeys (as in vLLM)."""
        if not value:
            return 0
        if self.llm.engine.config.scheduling_policy != "priority":
            raise ValidationError(f"Got priority {value} but Priority scheduling is not enabled: start the "
                                  "server with --scheduling-policy priority.", param="priority")
        return value

    def count_tokens(self, route: str, n: int) -> None:
        if self.metrics is not None:
            self.metrics.tokens.labels(route=route).inc(n)


async def _disconnect(receive) -> None:
    """Returns when the client has gone. The body has been read, so the next ASGI message is `http.disconnect`:
    one wait, not a poll (polling `Request.is_disconnected` cost more of the event loop than the rest of an
    embedding request's routing)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def get_state(request: Request) -> ServerState:
    # async, so FastAPI calls it on the event loop: a plain `def` dependency costs a thread-pool round trip.
    return request.app.state.scorekit


def check_cache_salt(salt: str | None) -> None:
    if salt is None:
        return
    if not salt or len(salt) > 128 or any(c in salt for c in "@/\\\x00"):
        raise ValidationError("cache_salt must be a non-empty string of at most 128 characters without "
                              "'@', '/', '\\' or NUL characters.", param="cache_salt")
