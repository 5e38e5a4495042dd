"""Consuming events at least once: offsets are committed only after the caller's effect.

A record that is not valid JSON of the expected contract goes to the ``dlq`` topic with the
reason and its original bytes, and the consumer moves on. A record may carry several events
(a batch of predictions, ``Event.decode``): each is handed on with the record's offset, and
a malformed batch goes to the ``dlq`` whole. The dead letter is acknowledged by
the broker before the offset that skips the record is committed, so nothing is lost, and
its ``event_id`` derives from (topic, partition, offset, group), so a redelivery after a
crash produces the same dead letter id.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from kafka import KafkaConsumer, OffsetAndMetadata, TopicPartition
from kafka.consumer.fetcher import ConsumerRecord
from kafka.errors import CommitFailedError, KafkaError
from pydantic import ValidationError

from driftloop.events import DeadLetter, Event
from driftloop.kafka._clients import connect_consumer
from driftloop.kafka._metrics import consumer_metrics
from driftloop.kafka._producer import EventProducer
from driftloop.settings import Settings

E = TypeVar("E", bound=Event)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Received(Generic[E]):
    """A valid event and where it came from."""

    event: E
    topic: str
    partition: int
    offset: int


class Batch(list[Received[E]]):
    """The valid events of one poll, with where the poll started and ended per partition."""

    def __init__(
        self, events: list[Received[E]], first: dict[int, int], next_: dict[int, int]
    ) -> None:
        super().__init__(events)
        self.first_offsets = first
        self.next_offsets = next_


@dataclass(frozen=True)
class BatchResult:
    """Records of one poll: received, handed on (valid), dead-lettered."""

    received: int
    handled: int
    dead_lettered: int
    committed: bool


Handler = Callable[["Batch[E]"], None]


def dead_letter_for(record: ConsumerRecord, group: str, error: Exception) -> DeadLetter:
    """The dead letter for a record that failed to parse or validate."""
    if isinstance(error, ValidationError):
        errors: list[dict[str, Any]] = [
            {"field": ".".join(str(p) for p in e["loc"]) or "<record>", "message": e["msg"]}
            for e in error.errors(include_url=False, include_input=False)
        ]
        reason = "invalid record: " + "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    else:
        errors = []
        reason = f"{type(error).__name__}: {error}"
    return DeadLetter(
        source_topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        consumer_group=group,
        reason=reason[:2000],
        errors=errors,
        key_b64=base64.b64encode(record.key).decode() if record.key is not None else None,
        value_b64=base64.b64encode(record.value or b"").decode(),
    )


class EventConsumer(Generic[E]):
    """Reads one contract from one logical topic as part of a consumer group."""

    def __init__(
        self,
        settings: Settings,
        contract: type[E],
        group_id: str,
        *,
        dlq: EventProducer | None = None,
        consumer: KafkaConsumer | None = None,
        max_records: int = 500,
        linger_s: float = 0.0,
    ) -> None:
        self._settings = settings
        self._contract = contract
        self._group = group_id
        self._topic = settings.topic(contract.topic)
        self._max_records = max_records
        self._linger_s = linger_s
        self._consumer = consumer or connect_consumer(
            settings, group_id, max_poll_records=max_records
        )
        self._consumer.subscribe([self._topic])
        self._own_dlq = dlq is None
        self._dlq = dlq or EventProducer(settings)
        self._metrics = consumer_metrics()

    @property
    def topic(self) -> str:
        return self._topic

    def assign_from(self, offsets: dict[int, int]) -> None:
        """Own every partition of the topic (no group rebalancing) and start each at the
        given offset, or at the beginning where none is given: for consumers whose state
        and position live in one checkpoint of their own."""
        self._consumer.unsubscribe()
        partitions = sorted(self._consumer.partitions_for_topic(self._topic) or ())
        if not partitions:
            raise RuntimeError(f"topic {self._topic} has no partitions (does it exist?)")
        tps = [TopicPartition(self._topic, p) for p in partitions]
        self._consumer.assign(tps)
        for tp in tps:
            if tp.partition in offsets:
                self._consumer.seek(tp, offsets[tp.partition])
            else:
                self._consumer.seek_to_beginning(tp)

    def _poll(self, timeout_s: float) -> dict[TopicPartition, list[ConsumerRecord]]:
        """One poll, or with ``linger_s`` several until ``max_records`` or the linger is up."""
        try:
            polled: dict[TopicPartition, list[ConsumerRecord]] = self._consumer.poll(
                timeout_ms=int(timeout_s * 1000), max_records=self._max_records
            )
        except KafkaError as exc:
            if not exc.retriable:
                raise
            # The broker is away (a restart, a coordinator move): nothing was handed out, so
            # waiting out the poll's timeout and polling again loses nothing.
            log.warning("poll failed, retrying: %r", exc)
            time.sleep(timeout_s)
            return {}
        if not polled or self._linger_s <= 0:
            return polled
        deadline = time.monotonic() + self._linger_s
        count = sum(len(r) for r in polled.values())
        while count < self._max_records and (left := deadline - time.monotonic()) > 0:
            try:
                more = self._consumer.poll(
                    timeout_ms=max(1, int(left * 1000)), max_records=self._max_records - count
                )
            except KafkaError as exc:
                if not exc.retriable:
                    raise
                # Records already handed out must reach the handler before anything else.
                log.warning("poll failed while lingering, handling what arrived: %r", exc)
                break
            for tp, records in more.items():
                polled.setdefault(tp, []).extend(records)
                count += len(records)
        return polled

    def poll_batch(self, handler: Handler[E], timeout_s: float = 1.0) -> BatchResult:
        """Poll, route bad records to the DLQ, run ``handler``, then commit.

        ``handler`` gets a :class:`Batch` (a list of the valid events) for every non-empty
        poll, even one whose records were all dead-lettered, so a handler that checkpoints
        positions sees every offset. If ``handler`` raises, nothing is committed and the
        exception propagates: the batch is delivered again to whoever consumes next.
        """
        polled = self._poll(timeout_s)
        if not polled:
            return BatchResult(0, 0, 0, committed=False)
        good: list[Received[E]] = []
        dead: list[DeadLetter] = []
        for records in polled.values():
            for record in records:
                try:
                    events = self._contract.decode(record.value or b"")
                except (ValidationError, ValueError) as exc:
                    dead.append(dead_letter_for(record, self._group, exc))
                    continue
                good.extend(
                    Received(event, record.topic, record.partition, record.offset)
                    for event in events
                )
        if dead:
            futures = [self._dlq.send(letter) for letter in dead]
            for future in futures:
                # No timeout of our own: the producer's delivery timeout bounds the wait, so a
                # broker restart delays the batch instead of losing or skipping the record.
                future.get()
            for letter in dead:
                log.warning(
                    "dead-lettered %s[%d]@%d: %s",
                    letter.source_topic,
                    letter.partition,
                    letter.offset,
                    letter.reason,
                )
        handler(
            Batch(
                good,
                {tp.partition: records[0].offset for tp, records in polled.items()},
                {tp.partition: records[-1].offset + 1 for tp, records in polled.items()},
            )
        )
        offsets = {
            tp: OffsetAndMetadata(records[-1].offset + 1, "", -1) for tp, records in polled.items()
        }
        committed = self._commit(offsets)
        received = sum(len(r) for r in polled.values())
        self._metrics.record(self._topic, self._group, received, received - len(dead), len(dead))
        return BatchResult(received, received - len(dead), len(dead), committed)

    def _commit(self, offsets: dict[TopicPartition, OffsetAndMetadata]) -> bool:
        try:
            self._consumer.commit(offsets)
        except CommitFailedError as exc:
            # The group rebalanced while we worked: the new owner re-reads these records and
            # the idempotent effects absorb the repeat.
            log.warning("offset commit failed after a rebalance: %s", exc)
            return False
        except KafkaError as exc:
            # The broker or coordinator is away. The next successful commit covers these
            # offsets too; a crash before it means a redelivery, which effects absorb.
            log.warning("offset commit failed, will be covered by the next one: %r", exc)
            return False
        return True

    def run(self, handler: Handler[E], stop: threading.Event | None = None) -> None:
        """Poll and handle until ``stop`` is set."""
        stop = stop or threading.Event()
        while not stop.is_set():
            self.poll_batch(handler)

    def lag(self) -> int:
        """Records in the assigned partitions not yet consumed (committed positions vs ends)."""
        assigned = list(self._consumer.assignment())
        if not assigned:
            return 0
        ends = self._consumer.end_offsets(assigned)
        return sum(max(0, ends[tp] - self._consumer.position(tp)) for tp in assigned)

    def close(self) -> None:
        self._consumer.close(autocommit=False)
        if self._own_dlq:
            self._dlq.close()
