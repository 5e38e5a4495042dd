"""The replica's batching: a lone request is scored at once, requests that arrive while a
batch is scored form the next batch (whole, up to ``max_items``), failures stay within
their batch, and a request whose client left is skipped."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from driftloop_serving._batcher import Batcher


class Gate:
    """A ``run`` that records each batch and waits until the test opens it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.open = asyncio.Event()
        self.fail_on: int | None = None

    async def run(self, items: list[int]) -> list[str]:
        self.batches.append(items)
        await self.open.wait()
        if self.fail_on in items:
            raise RuntimeError(f"item {self.fail_on}")
        return [f"scored {i}" for i in items]


def test_a_lone_request_is_scored_at_once():
    async def scenario() -> None:
        gate = Gate()
        gate.open.set()
        batcher = Batcher(gate.run, max_items=8)
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await batcher.submit([1]) == ["scored 1"]
        assert loop.time() - started < 0.05  # no timer to wait for
        assert gate.batches == [[1]]

    asyncio.run(scenario())


def test_requests_arriving_during_a_batch_are_scored_together_next():
    async def scenario() -> None:
        gate = Gate()
        batcher = Batcher(gate.run, max_items=8)
        first = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0)  # the first batch starts and waits at the gate
        later = [asyncio.create_task(batcher.submit([i, i + 10])) for i in (1, 2, 3)]
        await asyncio.sleep(0)
        assert gate.batches == [[0]]
        gate.open.set()
        assert await first == ["scored 0"]
        answers = await asyncio.gather(*later)
        assert answers == [[f"scored {i}", f"scored {i + 10}"] for i in (1, 2, 3)]
        assert gate.batches == [[0], [1, 11, 2, 12, 3, 13]]

    asyncio.run(scenario())


def test_batches_take_whole_requests_up_to_max_items():
    async def scenario() -> None:
        gate = Gate()
        batcher = Batcher(gate.run, max_items=5)
        blocker = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0)
        sizes = [3, 2, 3, 7, 1]  # 7 is more than a batch holds: it goes alone
        items, start = [], 100
        for size in sizes:
            items.append(list(range(start, start + size)))
            start += 100
        waiting = [asyncio.create_task(batcher.submit(i)) for i in items]
        await asyncio.sleep(0)
        gate.open.set()
        await blocker
        answers = await asyncio.gather(*waiting)
        assert [len(a) for a in answers] == sizes
        assert [len(b) for b in gate.batches] == [1, 5, 3, 7, 1]

    asyncio.run(scenario())


def test_a_failing_batch_fails_its_requests_only():
    async def scenario() -> None:
        gate = Gate()
        gate.fail_on = 2
        batcher = Batcher(gate.run, max_items=8)
        blocker = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0)
        doomed = [asyncio.create_task(batcher.submit([i])) for i in (1, 2)]
        await asyncio.sleep(0)
        gate.open.set()
        await blocker
        for task in doomed:
            with pytest.raises(RuntimeError, match="item 2"):
                await task
        assert await batcher.submit([3]) == ["scored 3"]  # the next batch is unaffected

    asyncio.run(scenario())


def test_a_request_whose_client_left_is_not_scored():
    async def scenario() -> None:
        gate = Gate()
        batcher = Batcher(gate.run, max_items=8)
        blocker = asyncio.create_task(batcher.submit([0]))
        await asyncio.sleep(0)
        gone = asyncio.create_task(batcher.submit([1]))
        kept = asyncio.create_task(batcher.submit([2]))
        await asyncio.sleep(0)
        gone.cancel()
        gate.open.set()
        await blocker
        assert await kept == ["scored 2"]
        assert gate.batches == [[0], [2]]

    asyncio.run(scenario())


def test_a_lone_request_is_scored_in_its_own_task_and_later_ones_by_the_worker():
    async def scenario() -> None:
        tasks: list[asyncio.Task[Any] | None] = []
        gate = asyncio.Event()

        async def run(items: list[int]) -> list[int]:
            tasks.append(asyncio.current_task())
            await gate.wait()
            return items

        batcher = Batcher(run, max_items=8)
        alone = asyncio.create_task(batcher.submit([1]))
        await asyncio.sleep(0)
        assert tasks == [alone]  # no worker task, no turn of the loop in between
        later = [asyncio.create_task(batcher.submit([i])) for i in (2, 3)]
        await asyncio.sleep(0)
        gate.set()
        assert await alone == [1]
        assert await asyncio.gather(*later) == [[2], [3]]
        assert len(tasks) == 2 and tasks[1] not in (alone, *later)  # the worker's batch
        assert batcher.batches == 2

    asyncio.run(scenario())
