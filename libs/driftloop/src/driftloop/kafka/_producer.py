"""Publishing events: one idempotent, ``acks=all`` producer per process."""

from __future__ import annotations

from types import TracebackType
from typing import Any, Self

from kafka import KafkaProducer
from kafka.producer.future import FutureRecordMetadata

from driftloop.events import Event
from driftloop.kafka._clients import connect_producer
from driftloop.settings import Settings


class EventProducer:
    """Sends contract events to their topics, keyed so that one key keeps its order."""

    def __init__(self, settings: Settings, producer: KafkaProducer | None = None) -> None:
        self._settings = settings
        self._producer = producer or connect_producer(settings)

    def send(self, event: Event) -> FutureRecordMetadata:
        """Queue ``event`` on its topic; the future resolves once every in-sync replica has it."""
        return self.send_raw(event.topic, event.to_bytes(), event.partition_key().encode())

    def send_raw(self, topic: str, value: bytes, key: bytes | None = None) -> FutureRecordMetadata:
        """Queue raw bytes on a logical topic (for replays and for tests of bad input)."""
        future: FutureRecordMetadata = self._producer.send(
            self._settings.topic(topic), value=value, key=key
        )
        return future

    def publish(self, event: Event, timeout_s: float | None = None) -> Any:
        """Send and wait for the broker's acknowledgement; return the record metadata."""
        return self.send(event).get(timeout=timeout_s or self._settings.kafka_timeout_s * 3)

    def flush(self, timeout_s: float | None = None) -> None:
        self._producer.flush(timeout=timeout_s)

    def close(self, timeout_s: float | None = None) -> None:
        self._producer.close(timeout=timeout_s)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
