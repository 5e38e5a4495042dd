"""Asking the serving endpoint for a score before a payment goes through.

Calls run on a few threads so a slow endpoint does not cap the stream at one round trip per
payment, but items come back in the order they were submitted: each is released only after
its own call has finished (answered, failed or timed out). Every call carries the
endpoint's API key (``headers``, from ``driftloop.apikey.client_headers``). A call refused
(no connection, or a 502/503/504 from an overloaded or restarting endpoint) or cut off by a
server error (a 500: Ray Serve's answer when the replica handling the call dies) is retried
after a short back-off, up to ``retries`` times — scoring is idempotent, a retried call only logs
its prediction twice under the same transaction id. A timeout is not retried: the
caller's time budget is spent. A failed call is counted, never raised, with its reason
(``failures``: "timeout", "HTTP <status>", "no connection" after the retries, or the
exception's name).

With ``batch`` > 1, payments are sent ``batch`` at a time to the endpoint's batch route
(``<url>/batch``), a partly filled batch at most ``linger_s`` after its first payment: what
an acquirer that gathers its payments does, and a fraction of the serving CPU per payment
(a call costs Serve's proxy and replica ~25 ms of CPU here, a payment in a batch ~0.5 ms).
A batch is answered, retried or failed whole.
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Generic, TypeVar

import httpx

T = TypeVar("T")
_RETRIED = frozenset({500, 502, 503, 504})


def failure_summary(failures: Mapping[str, int]) -> str:
    """``HTTP 503 2, timeout 1``: failed payments by reason, in one order."""
    return ", ".join(f"{reason} {count}" for reason, count in sorted(failures.items()))


class Predictor(Generic[T]):
    """POSTs JSON payloads to ``url`` with at most ``concurrency`` calls in flight."""

    def __init__(
        self,
        url: str,
        timeout_s: float,
        concurrency: int,
        retries: int = 2,
        headers: Mapping[str, str] | None = None,
        batch: int = 1,
        linger_s: float = 0.1,
    ) -> None:
        self._url = url if batch == 1 else f"{url}/batch"
        self._batch = batch
        self._linger_s = linger_s
        self._pending: list[tuple[dict[str, Any], T]] = []
        self._pending_since = 0.0
        self._retries = retries
        self._concurrency = max(1, concurrency)
        self._client = httpx.Client(
            headers=dict(headers or {}),
            timeout=timeout_s,
            limits=httpx.Limits(
                max_connections=self._concurrency, max_keepalive_connections=self._concurrency
            ),
        )
        self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="predict")
        self._in_flight: deque[tuple[Future[str | None], list[T]]] = deque()
        self.ok = 0
        self.failed = 0
        self.failures: Counter[str] = Counter()  # reason -> payments
        self.retried = 0  # calls sent again after a refusal
        self._retried_lock = threading.Lock()

    def _post(self, payload: dict[str, Any]) -> str | None:
        """None when answered, else why not."""
        why = "no connection"
        for attempt in range(self._retries + 1):
            if attempt:
                with self._retried_lock:
                    self.retried += 1
                time.sleep(0.2 * 2**attempt)
            try:
                response = self._client.post(self._url, json=payload)
            except (httpx.ConnectError, httpx.RemoteProtocolError):
                why = "no connection"
                continue  # never reached the endpoint's handler
            except httpx.TimeoutException:
                return "timeout"
            except Exception as exc:  # anything else: counted, not raised
                return type(exc).__name__
            if response.status_code not in _RETRIED:
                return None if response.is_success else f"HTTP {response.status_code}"
            why = f"HTTP {response.status_code}"
        return why

    def submit(self, payload: dict[str, Any], item: T) -> list[T]:
        """Score ``item`` (at once, or with its batch); return the items whose calls are
        done, in order."""
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append((payload, item))
        if len(self._pending) < self._batch:
            return self._release(block=False)
        return self._send()

    def poll(self) -> list[T]:
        """Send a partly filled batch that has waited ``linger_s``; return the items whose
        calls are done, in order."""
        if self._pending and time.monotonic() - self._pending_since >= self._linger_s:
            return self._send()
        return self._release(block=False)

    def drain(self) -> list[T]:
        """Send what waits, wait for every call in flight; return their items in order."""
        released = self._send() if self._pending else []
        while self._in_flight:
            released.extend(self._release(block=True))
        return released

    def _send(self) -> list[T]:
        payloads, items = [p for p, _ in self._pending], [i for _, i in self._pending]
        self._pending = []
        body = payloads[0] if self._batch == 1 else {"transactions": payloads}
        self._in_flight.append((self._pool.submit(self._post, body), items))
        return self._release(block=len(self._in_flight) >= self._concurrency)

    def _release(self, block: bool) -> list[T]:
        released: list[T] = []
        while self._in_flight and (block or self._in_flight[0][0].done()):
            future, items = self._in_flight.popleft()
            why = future.result()
            if why is None:
                self.ok += len(items)
            else:
                self.failed += len(items)
                self.failures[why] += len(items)
            released.extend(items)
            block = False
        return released

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self._client.close()
