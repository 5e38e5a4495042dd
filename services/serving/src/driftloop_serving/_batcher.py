"""Batching that costs nothing when idle: a lone request is scored at once, and requests
that arrive while a batch is being scored form the next batch.

``@serve.batch`` waits up to ``batch_wait_timeout_s`` for a batch to fill (5 ms here,
which a lone request paid in full), and with no wait it forms a new batch for every
arrival while the previous one runs, so batches stay small under load. Here a request
that finds nothing being scored and nothing waiting is scored at once in its own task;
one that finds a batch being scored waits, and when that batch is done a worker task
takes everything waiting (whole requests, up to ``max_items`` transactions; a request
larger than that goes alone), scores it, and looks again: the batch size follows the
load with no timer, and a lone request costs no task and no turn of the event loop.
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
        self._busy = False  # a batch is being scored (by a request's task or the worker)
        self._worker: asyncio.Task[None] | None = None
        self.batches = 0  # batches run (for tests and the bench)

    async def submit(self, items: Sequence[T]) -> list[R]:
        if not self._busy and not self._waiting:  # alone: scored now, in this task
            self._busy = True
            self.batches += 1
            try:
                return await self._run(list(items))
            finally:
                self._busy = False
                self._start_worker()  # for those that arrived meanwhile
        future: asyncio.Future[list[R]] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Waiting(items, future))
        self._start_worker()
        return await future

    def _start_worker(self) -> None:
        if self._waiting and not self._busy and (self._worker is None or self._worker.done()):
            self._worker = asyncio.create_task(self._drain())

    async def _drain(self) -> None:
        self._busy = True
        try:
            await self._drain_waiting()
        finally:
            self._busy = False

    async def _drain_waiting(self) -> None:
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
