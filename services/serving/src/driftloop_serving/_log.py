"""The prediction log: every scored transaction to the ``predictions`` topic, off the
request path.

Requests only ``offer`` events to a bounded in-memory queue (never blocking). One
background thread connects a producer, takes what is queued in batches and hands it to
kafka-python, which batches per partition (``linger``). While Kafka is unreachable the
thread keeps trying to connect and events wait in the queue; when the queue is full, new
events are dropped and counted (``queue_full``), as are events the producer gave up on
(``delivery_failed``, after its delivery timeout). Once Kafka answers again, logging
resumes by itself: the producer reconnects, or the thread connects one.

``connected`` is what ``/healthz`` reports: a producer exists and its latest delivery
did not fail. A broker lost mid-life therefore shows one delivery timeout after it went
away (30 s by default), and shows again as connected at the first delivery after it came
back. kafka-python reconnects a producer by itself (measured: logging resumed within a
second of the broker becoming reachable, tests/integration/test_serving_log.py), so the
producer is never rebuilt.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from kafka import KafkaProducer

from driftloop.events import Prediction
from driftloop.kafka import KafkaUnavailable, connect_producer
from driftloop.settings import Settings

log = logging.getLogger(__name__)
Drop = Callable[[str, int], None]  # (reason, count)


class PredictionLog:
    """A non-blocking, batched, self-healing producer of :class:`Prediction` events."""

    def __init__(
        self,
        settings: Settings,
        *,
        capacity: int = 10_000,
        linger_ms: int = 20,
        batch_max: int = 500,
        retry_s: float = 1.0,
        on_drop: Drop | None = None,
        on_sent: Callable[[int], None] | None = None,
        delivery_timeout_ms: int = 30_000,
        proxy_url: str | None = None,
    ) -> None:
        """``delivery_timeout_ms`` bounds how long a prediction may wait for Kafka before it
        is dropped (at least ``linger_ms`` + 1 s); ``proxy_url`` (``socks5://host:port``)
        is a proxy the producer reaches every broker through."""
        if delivery_timeout_ms < linger_ms + 1_000:
            raise ValueError("delivery_timeout_ms must be at least linger_ms + 1000")
        self._settings = settings
        self._topic = settings.topic(Prediction.topic)
        self._queue: queue.Queue[Prediction] = queue.Queue(maxsize=capacity)
        self._linger_ms = linger_ms
        self._batch_max = batch_max
        self._retry_s = retry_s
        self._on_drop = on_drop
        self._on_sent = on_sent
        self._delivery_timeout_ms = delivery_timeout_ms
        self._proxy_url = proxy_url
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: KafkaProducer | None = None
        self._counts_lock = threading.Lock()
        self._failing = False  # the latest delivery failed
        self.sent = 0
        self.dropped: dict[str, int] = {}

    @property
    def topic(self) -> str:
        return self._topic

    @property
    def connected(self) -> bool:
        return self._producer is not None and not self._failing

    @property
    def queued(self) -> int:
        return self._queue.qsize()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def offer(self, events: Iterable[Prediction]) -> int:
        """Queue events for Kafka; return how many were dropped because the queue is full."""
        dropped = 0
        for event in events:
            try:
                self._queue.put_nowait(event)
            except queue.Full:
                dropped += 1
        if dropped:
            self._drop("queue_full", dropped)
        return dropped

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop taking from the queue, send what was taken, close the producer."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout_s)
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=timeout_s)
            except Exception as exc:  # closing is best effort
                log.warning("closing the prediction producer: %r", exc)

    # --- the background thread

    def _run(self) -> None:
        last_warning = 0.0
        while not self._stop.is_set():
            if self._producer is None:
                try:
                    self._producer = self._connect()
                    log.info("prediction log connected; topic %s", self._topic)
                except KafkaUnavailable as exc:
                    if time.monotonic() - last_warning > 60:
                        log.warning("prediction log: %s; %d queued", exc, self.queued)
                        last_warning = time.monotonic()
                    self._stop.wait(self._retry_s)
                    continue
            batch = self._take()
            if batch:
                self._send(self._producer, batch)
        if self._producer is not None:
            self._send(self._producer, self._take(block=False))

    def _connect(self) -> KafkaProducer:
        # kafka-python requires delivery >= linger + request timeout
        request_timeout_ms = min(10_000, (self._delivery_timeout_ms - self._linger_ms) // 2)
        return connect_producer(
            self._settings,
            linger_ms=self._linger_ms,
            max_block_ms=5_000,
            # its default backs off up to 30 s between attempts: after a long outage,
            # logging would resume up to 30 s after Kafka did
            reconnect_backoff_max_ms=1_000,
            request_timeout_ms=request_timeout_ms,
            delivery_timeout_ms=self._delivery_timeout_ms,
            proxy_url=self._proxy_url,
        )

    def _take(self, block: bool = True) -> list[Prediction]:
        batch: list[Prediction] = []
        if block:
            try:
                batch.append(self._queue.get(timeout=0.2))
            except queue.Empty:
                return batch
        while len(batch) < self._batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _send(self, producer: KafkaProducer, batch: list[Prediction]) -> None:
        for event in batch:
            try:
                future = producer.send(
                    self._topic, value=event.to_bytes(), key=event.partition_key().encode()
                )
            except Exception as exc:  # metadata or buffer wait ran out: Kafka is away
                self._failed(exc)
                continue
            future.add_callback(self._delivered)
            future.add_errback(self._failed)

    def _delivered(self, _metadata: Any) -> None:
        with self._counts_lock:
            self.sent += 1
            recovered, self._failing = self._failing, False
        if recovered:
            log.info("prediction log: Kafka acknowledges again; topic %s", self._topic)
        if self._on_sent is not None:
            self._on_sent(1)

    def _failed(self, exc: BaseException) -> None:
        with self._counts_lock:
            failing, self._failing = self._failing, True
        if not failing:
            log.warning("prediction log: delivery failed (%r); dropping until Kafka is back", exc)
        self._drop("delivery_failed", 1)

    def _drop(self, reason: str, count: int) -> None:
        with self._counts_lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        if self._on_drop is not None:
            self._on_drop(reason, count)
