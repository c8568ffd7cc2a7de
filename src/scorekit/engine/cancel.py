"""Cancellation scopes: work submitted on behalf of a request whose client went away is dropped before it runs.

The server opens a scope per request and cancels it on disconnect; every engine submission made inside that
request (in whichever worker thread) registers with the scope through a context variable, so the scoring
code in between never has to pass a token around.
"""

from __future__ import annotations

import threading
from contextvars import ContextVar


class CancelScope:
    def __init__(self):
        self._items: list = []
        self._lock = threading.Lock()
        self.cancelled = False

    def add(self, item) -> None:
        with self._lock:
            self._items.append(item)
            if self.cancelled:
                item.cancel()

    def cancel(self) -> int:
        """Cancel every registered item that has not started; returns how many were dropped."""
        with self._lock:
            self.cancelled = True
            return sum(1 for item in self._items if item.cancel())


current_scope: ContextVar[CancelScope | None] = ContextVar("scorekit_cancel_scope", default=None)
