"""Admission of ``/predict/batch`` by payments in flight, before a body is read.

Serve's request limits (``max_ongoing_requests``, ``max_queued_requests``) count a batch
of 256 payments like one: limits deep enough for closed-loop clients of single payments
let batches queue for seconds, and a replica busy parsing and scoring them answers even its
refusals late. The gate counts what a batch costs instead: the payments its
``Content-Length`` stands for (``PAYMENT_BYTES`` a payment, at most ``max_request_items``;
a body without a length counts as a full batch). A batch that would take the payments in
flight beyond the budget is refused with 503, ``Retry-After: 1`` and ``BATCH_FULL`` before
its body is read, which costs the event loop next to nothing. A batch is always admitted
when none is in flight, so no size of batch is refused forever.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from starlette.types import ASGIApp, Receive, Scope, Send

# A payment's compact JSON in a batch is ~250-280 bytes with ids of a dozen characters:
# the estimate errs toward counting a batch as bigger than it is.
PAYMENT_BYTES = 250
BATCH_FULL = "batch capacity full: retry after a second"
_BODY = json.dumps({"detail": BATCH_FULL}).encode()
_HEADERS = [
    (b"content-type", b"application/json"),
    (b"retry-after", b"1"),
    (b"content-length", str(len(_BODY)).encode()),
]


def payments_of(scope: Scope, most: int) -> int:
    """The payments a batch request's ``Content-Length`` stands for, 1 to ``most``."""
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                length = int(value)
            except ValueError:
                return most
            return max(1, min(most, -(-length // PAYMENT_BYTES)))
    return most


class BatchGate:
    """ASGI middleware: admits a ``/predict/batch`` request while the payments of the
    batches in flight, its own included, stay within ``budget`` (or none is in flight);
    refuses it otherwise. Other routes pass untouched."""

    def __init__(self, app: ASGIApp, budget: int, most: int) -> None:
        self.app = app
        self.budget = budget
        self.most = most
        self.in_flight = 0  # payments of the admitted batches not yet answered

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].endswith("/predict/batch"):
            await self.app(scope, receive, send)
            return
        payments = payments_of(scope, self.most)
        if self.in_flight and self.in_flight + payments > self.budget:
            await send({"type": "http.response.start", "status": 503, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": _BODY})
            return
        self.in_flight += payments
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= payments
