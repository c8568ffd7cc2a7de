"""The batches of one group, shared with idle model threads: data parallelism inside one large call.

The model thread that planned a group (its owner) publishes the group's batches here and runs them itself
too; an idle model thread may take one batch at a time. Results travel back to the owner, which alone writes
the group's outputs, progress and stats, so no part of a group is written by two threads at once.
"""

from __future__ import annotations

import queue
from collections import deque
from typing import Callable, Generic, Iterator, Sequence, TypeVar

T = TypeVar("T")


class SharedJobs(Generic[T]):
    def __init__(self, jobs: Sequence[Callable[[], T]], urgency: tuple[int, int]):
        self.urgency = urgency  # (priority, arrival) of the group's most urgent caller: helpers serve it first
        self._total = len(jobs)
        self._pending = deque(enumerate(jobs))
        self._finished: queue.SimpleQueue = queue.SimpleQueue()  # (index, value, exception) from helpers

    @property
    def has_pending(self) -> bool:
        return bool(self._pending)

    def _take(self) -> tuple[int, Callable[[], T]] | None:
        try:
            return self._pending.popleft()  # atomic: owner and helpers never get the same job
        except IndexError:
            return None

    def help(self) -> None:
        """A helper thread: run one pending job, if any is left, and hand its result to the owner."""
        job = self._take()
        if job is None:
            return
        index, fn = job
        try:
            self._finished.put((index, fn(), None))
        except BaseException as exc:  # noqa: BLE001 - the owner re-raises it in its own thread
            self._finished.put((index, None, exc))

    def abandon(self) -> None:
        """The owner gives up (an error, or it stopped reading): jobs nobody has started are dropped."""
        self._pending.clear()

    def results(self) -> Iterator[tuple[int, T]]:
        """The owner: run jobs until none is left, then wait for the helpers' ones; yields (job index, result)
        in the order they finish. A job's exception is raised here."""
        for _ in range(self._total):
            job = self._take()
            if job is not None:
                index, fn = job
                yield index, fn()
                continue
            index, value, exc = self._finished.get()
            if exc is not None:
                raise exc
            yield index, value
