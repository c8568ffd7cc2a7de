"""The bridge between the asyncio server and the model: work runs on one model thread, never on the event loop.

One thread owns the model so torch calls never interleave; the event loop stays free to accept requests.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
from typing import Any, Callable, TypeVar

T = TypeVar("T")


class ModelWorker:
    def __init__(self):
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorekit-model")
        self.pending = 0  # calls waiting or running: exported as the queue length metric

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        self.pending += 1
        try:
            return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))
        finally:
            self.pending -= 1

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
