"""Batching that costs nothing when idle: a lone request is scored at once, and requests
that arrive while a batch is being scored form the next batch.

``@serve.batch`` waits up to ``batch_wait_timeout_s`` for a batch to fill (5 ms here,
which a lone request paid in full), and with no wait it forms a new batch for every
arrival while the previous one runs, so batches stay small under load. Here one worker
task takes everything waiting (whole requests, up to ``max_items`` transactions; a
request larger than that goes alone), scores it, and looks again: the batch size follows
the load with no timer.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


@dataclass
class _Waiting(Generic[T, R]):
    items: Sequence[T]
    future: asyncio.Future[list[R]] = field(repr=False)


class Batcher(Generic[T, R]):
    """``await submit(items)`` answers ``run``'s results for ``items``; ``run`` gets the
    items of every request waiting together, in arrival order, and answers one result per
    item in that order. An exception in ``run`` is every request's of that batch."""

    def __init__(self, run: Callable[[list[T]], Awaitable[list[R]]], max_items: int) -> None:
        self._run = run
        self.max_items = max_items
        self._waiting: deque[_Waiting[T, R]] = deque()
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # batches run (for tests and the bench)

    async def submit(self, items: Sequence[T]) -> list[R]:
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(items, future))
        if self._worker is None or self._worker.done():
            self._worker = asyncio.create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        while self._waiting:
            taken = [self._waiting.popleft()]
            count = len(taken[0].items)
            while self._waiting and count + len(self._waiting[0].items) <= self.max_items:
                count += len(self._waiting[0].items)
                taken.append(self._waiting.popleft())
            taken = [w for w in taken if not w.future.done()]  # cancelled: client gone
            if not taken:
                continue
            items = [item for w in taken for item in w.items]
            self.batches += 1
            try:
                results = await self._run(items)
            except Exception as exc:
                for w in taken:
                    if not w.future.done():
                        w.future.set_exception(exc)
                continue
            start = 0
            for w in taken:
                end = start + len(w.items)
                if not w.future.done():
                    w.future.set_result(results[start:end])
                start = end
