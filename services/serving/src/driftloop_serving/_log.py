"""The prediction log: every scored transaction to the ``predictions`` topic, off the
request path.

Requests only ``offer`` events to a bounded in-memory queue (never blocking), the
predictions of one scored batch in one offer. One background thread connects a producer,
takes what is queued (up to ``batch_max`` predictions) and writes it as one
:class:`PredictionBatch` record per partition its predictions' transaction ids fall in
(where each would go alone): a record per prediction cost kafka-python about 116 µs
each, as much as scoring the payment (bench/serving.py). kafka-python batches the
records per partition (``linger``).
While Kafka is unreachable the thread keeps trying to connect and events wait in the
queue; when the queue is full, new events are dropped and counted (``queue_full``), as
are events the producer gave up on (``delivery_failed``, after its delivery timeout).
Once Kafka answers again, logging resumes by itself: the producer reconnects, or the
thread connects one.

``connected`` is what ``/healthz`` reports: a producer exists and its latest delivery
did not fail. A broker lost mid-life therefore shows one delivery timeout after it went
away (30 s by default), and shows again as connected at the first delivery after it came
back. kafka-python reconnects a producer by itself (measured: logging resumed within a
second of the broker becoming reachable, tests/integration/test_serving_log.py), so the
producer is never rebuilt.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from functools import partial
from typing import Any

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from driftloop.events import Prediction, PredictionBatch
from driftloop.kafka import KafkaUnavailable, connect_producer
from driftloop.settings import Settings

log = logging.getLogger(__name__)
Drop = Callable[[str, int], None]  # (reason, count)


class PredictionLog:
    """A non-blocking, batched, self-healing producer of :class:`Prediction` events.

    ``capacity``, ``sent`` and ``dropped`` count predictions, not records."""

    def __init__(
        self,
        settings: Settings,
        *,
        capacity: int = 10_000,
        linger_ms: int = 20,
        batch_max: int = 500,
        record_max: int = 500,
        retry_s: float = 1.0,
        on_drop: Drop | None = None,
        on_sent: Callable[[int], None] | None = None,
        delivery_timeout_ms: int = 30_000,
        proxy_url: str | None = None,
    ) -> None:
        """``delivery_timeout_ms`` bounds how long a prediction may wait for Kafka before it
        is dropped (at least ``linger_ms`` + 1 s); ``proxy_url`` (``socks5://host:port``)
        is a proxy the producer reaches every broker through; ``record_max``: most
        predictions in one record (500 of the fraud model's, about 830 bytes each, are
        0.42 MB: under the 1 MB that Kafka and its clients accept by default)."""
        if delivery_timeout_ms < linger_ms + 1_000:
            raise ValueError("delivery_timeout_ms must be at least linger_ms + 1000")
        self._settings = settings
        self._topic = settings.topic(Prediction.topic)
        self._capacity = capacity
        self._pending: deque[list[Prediction]] = deque()  # offers, oldest first
        self._queued = 0  # predictions in _pending
        self._ready = threading.Condition()
        self._linger_ms = linger_ms
        self._batch_max = batch_max
        self._record_max = record_max
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
        return self._queued

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
            self._thread.start()

    def offer(self, events: Iterable[Prediction]) -> int:
        """Queue events for Kafka (a scored batch's: they travel together); return how
        many were dropped because the queue is full (those beyond its room)."""
        events = list(events)
        with self._ready:
            kept = events[: max(0, self._capacity - self._queued)]
            if kept:
                self._pending.append(kept)
                self._queued += len(kept)
                self._ready.notify()
        dropped = len(events) - len(kept)
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
            offers = self._take()
            if offers:
                self._send(self._producer, offers)
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

    def _take(self, block: bool = True) -> list[list[Prediction]]:
        """Offers queued (waiting up to 0.2 s for one if ``block``), up to ``batch_max``
        predictions unless the first offer alone holds more."""
        taken: list[list[Prediction]] = []
        with self._ready:
            if block:
                self._ready.wait_for(lambda: bool(self._pending), timeout=0.2)
            count = 0
            while self._pending and (not taken or count + len(self._pending[0]) <= self._batch_max):
                offer = self._pending.popleft()
                taken.append(offer)
                count += len(offer)
            self._queued -= count
        return taken

    def _send(self, producer: KafkaProducer, offers: list[list[Prediction]]) -> None:
        """The offers taken together, as one record per partition (per ``record_max``
        predictions): the telemetry thread offers a round's batches one after another, a
        lone payment's prediction each at one client."""
        predictions = [prediction for offer in offers for prediction in offer]
        if not predictions:
            return
        try:
            groups = self._by_partition(producer, predictions)
        except Exception as exc:  # the topic's metadata did not come: Kafka is away
            self._failed(len(predictions), exc)
            return
        for partition, group in groups.items():  # in the order offered, within a partition
            for start in range(0, len(group), self._record_max):
                self._send_record(producer, partition, group[start : start + self._record_max])

    def _send_record(
        self, producer: KafkaProducer, partition: int, predictions: list[Prediction]
    ) -> None:
        record = PredictionBatch.of(predictions)
        try:
            future = producer.send(
                self._topic, value=record.to_bytes(),
                key=record.partition_key().encode(), partition=partition,
            )  # fmt: skip
        except Exception as exc:  # metadata or buffer wait ran out: Kafka is away
            self._failed(len(predictions), exc)
            return
        future.add_callback(partial(self._delivered, len(predictions)))
        future.add_errback(partial(self._failed, len(predictions)))

    def _by_partition(
        self, producer: KafkaProducer, predictions: list[Prediction]
    ) -> dict[int, list[Prediction]]:
        """The predictions grouped by the partition each would be written to alone: its
        key's (the transaction id's), as the producer's default partitioner (Kafka's
        murmur2, as in Java) places a key, so a payment's predictions share a partition
        whether logged alone or in batches."""
        partitions = sorted(producer.partitions_for(self._topic))
        groups: dict[int, list[Prediction]] = {}
        for p in predictions:
            index = (murmur2(p.partition_key().encode()) & 0x7FFFFFFF) % len(partitions)
            groups.setdefault(partitions[index], []).append(p)
        return groups

    def _delivered(self, count: int, _metadata: Any) -> None:
        with self._counts_lock:
            self.sent += count
            recovered, self._failing = self._failing, False
        if recovered:
            log.info("prediction log: Kafka acknowledges again; topic %s", self._topic)
        if self._on_sent is not None:
            self._on_sent(count)

    def _failed(self, count: int, exc: BaseException) -> None:
        with self._counts_lock:
            failing, self._failing = self._failing, True
        if not failing:
            log.warning("prediction log: delivery failed (%r); dropping until Kafka is back", exc)
        self._drop("delivery_failed", count)

    def _drop(self, reason: str, count: int) -> None:
        with self._counts_lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + count
        if self._on_drop is not None:
            self._on_drop(reason, count)
