"""The bridge between the asyncio server and the engine: request work runs on worker threads, never on the
event loop.

Many threads, so that concurrent requests tokenise and wait at the same time: the engine's scheduler then
merges their model work into shared batches on its model threads. Each call may carry a CancelScope that
the engine sees through a context variable.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import functools
from typing import Any, Callable, TypeVar

from scorekit.engine.cancel import CancelScope, current_scope

T = TypeVar("T")


def _in_scope(scope: CancelScope | None, fn: Callable[[], T]) -> T:
    current_scope.set(scope)
    return fn()


class ModelWorker:
    def __init__(self, threads: int = 32):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=threads, thread_name_prefix="scorekit-request")
        self.pending = 0  # calls waiting or running: exported as a metric

    async def call(self, fn: Callable[..., T], *args: Any, scope: CancelScope | None = None, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        context = contextvars.copy_context()  # a fresh context per call: scopes never leak between requests
        work = functools.partial(context.run, _in_scope, scope, functools.partial(fn, *args, **kwargs))
        self.pending += 1
        try:
            return await loop.run_in_executor(self._pool, work)
        finally:
            self.pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
