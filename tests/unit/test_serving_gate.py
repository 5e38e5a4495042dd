"""The replica's gate on /predict/batch: batches are admitted by the payments their
Content-Length stands for while those in flight stay within the budget, one more is
refused 503 with Retry-After before its body is read, a batch is admitted when none is in
flight whatever its size, and other routes pass untouched."""

from __future__ import annotations

import asyncio

import httpx
from driftloop_serving._gate import BATCH_FULL, PAYMENT_BYTES, BatchGate, payments_of
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


class Held:
    """Routes that read the body, then wait until the test opens them."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.read = 0  # bodies read

    async def handle(self, request: Request) -> JSONResponse:
        await request.body()
        self.read += 1
        await self.open.wait()
        return JSONResponse({"ok": True})


def _client(held: Held, budget: int) -> httpx.AsyncClient:
    routes = [
        Route(p, held.handle, methods=["POST"]) for p in ("/fraud/predict", "/fraud/predict/batch")
    ]
    app = BatchGate(Starlette(routes=routes), budget=budget, most=256)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://replica")


def _batch(payments: int) -> bytes:
    return b"x" * (payments * PAYMENT_BYTES)  # the gate reads no body: only its length


def test_batches_beyond_the_budget_are_refused_before_their_body_is_read():
    async def scenario() -> None:
        held = Held()
        async with _client(held, budget=300) as client:
            first = asyncio.create_task(client.post("/fraud/predict/batch", content=_batch(128)))
            second = asyncio.create_task(client.post("/fraud/predict/batch", content=_batch(128)))
            while held.read < 2:
                await asyncio.sleep(0.01)
            refused = await client.post("/fraud/predict/batch", content=_batch(128))
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json() == {"detail": BATCH_FULL}
            assert held.read == 2  # its body was never read
            # a smaller batch that fits the budget left is admitted, single payments always
            small = asyncio.create_task(client.post("/fraud/predict/batch", content=_batch(44)))
            single = asyncio.create_task(client.post("/fraud/predict", content=_batch(256)))
            while held.read < 4:
                await asyncio.sleep(0.01)
            held.open.set()
            answers = await asyncio.gather(first, second, small, single)
            assert [a.status_code for a in answers] == [200] * 4
            # the payments are given back with the answers
            assert (
                await client.post("/fraud/predict/batch", content=_batch(256))
            ).status_code == 200

    asyncio.run(scenario())


def test_a_batch_over_the_budget_is_admitted_when_none_is_in_flight():
    async def scenario() -> None:
        held = Held()
        held.open.set()
        async with _client(held, budget=16) as client:
            answer = await client.post("/fraud/predict/batch", content=_batch(256))
            assert answer.status_code == 200

    asyncio.run(scenario())


def test_a_batch_counts_its_content_length_in_payments_up_to_a_full_batch():
    def scope(*headers: tuple[bytes, bytes]) -> dict[str, object]:
        return {"type": "http", "headers": list(headers)}

    assert payments_of(scope((b"content-length", b"1")), 256) == 1
    assert payments_of(scope((b"content-length", str(PAYMENT_BYTES * 10).encode())), 256) == 10
    assert payments_of(scope((b"content-length", str(PAYMENT_BYTES * 10 + 1).encode())), 256) == 11
    assert payments_of(scope((b"content-length", b"99999999")), 256) == 256
    assert payments_of(scope(), 256) == 256  # no length (chunked): a full batch
    assert payments_of(scope((b"content-length", b"nonsense")), 256) == 256
