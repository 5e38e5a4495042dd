"""Publishing drift events once: from the checkpoint's outbox, after a check of the topic.

An event is written to the outbox in the transaction that closes its window, then sent and
marked published with the offset the broker gave it. A crash between the broker's
acknowledgement and the mark leaves an event that may or may not be on the topic, so at
start-up the partitions are read from just after the last offset marked published, and an
event found there by its id is marked, not sent again.
"""

from __future__ import annotations

import json
import logging
import time

from kafka import TopicPartition

from driftloop.events import DriftEvent
from driftloop.kafka import EventProducer, connect_consumer
from driftloop.settings import Settings
from driftloop_monitor._checkpoint import Checkpoint

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, settings: Settings, checkpoint: Checkpoint, producer: EventProducer) -> None:
        self._settings = settings
        self._db = checkpoint.db
        self._producer = producer
        self.topic = settings.topic(DriftEvent.topic)
        self.published = 0

    def add(self, event: DriftEvent) -> bool:
        """Queue an event inside the caller's transaction; False if its id is known."""
        (seq,) = self._db.execute("SELECT coalesce(max(seq), 0) + 1 FROM outbox").fetchone()
        cursor = self._db.execute(
            "INSERT OR IGNORE INTO outbox (event_id, seq, payload) VALUES (?,?,?)",
            (event.event_id, seq, event.to_bytes()),
        )
        return cursor.rowcount == 1

    def pending(self) -> list[tuple[str, bytes]]:
        rows = self._db.execute(
            "SELECT event_id, payload FROM outbox WHERE published = 0 ORDER BY seq"
        )
        return [(str(i), bytes(p)) for i, p in rows]

    def flush(self) -> int:
        """Send every pending event, in order, each acknowledged before it is marked."""
        sent = 0
        for event_id, payload in self.pending():
            event = DriftEvent.model_validate_json(payload)
            meta = self._producer.send_raw(
                DriftEvent.topic, payload, event.partition_key().encode()
            ).get(timeout=self._settings.kafka_timeout_s * 3)
            self._mark(event_id, meta.partition, meta.offset)
            sent += 1
        self.published += sent
        return sent

    def _mark(self, event_id: str, partition: int, offset: int) -> None:
        self._db.execute(
            "UPDATE outbox SET published = 1, partition = ?, offset = ? WHERE event_id = ?",
            (partition, offset, event_id),
        )

    def recover(self) -> int:
        """Mark the pending events already on the topic; return how many were found."""
        pending = {event_id for event_id, _ in self.pending()}
        if not pending:
            return 0
        starts = dict(
            self._db.execute(
                "SELECT partition, max(offset) + 1 FROM outbox WHERE published = 1"
                " GROUP BY partition"
            ).fetchall()
        )
        found = 0
        for event_id, partition, offset in self._scan(starts):
            if event_id in pending:
                self._mark(event_id, partition, offset)
                pending.discard(event_id)
                found += 1
        log.info("outbox: %d pending event(s) were already published, %d to send",
                 found, len(pending))  # fmt: skip
        return found

    def _scan(self, starts: dict[int, int]) -> list[tuple[str, int, int]]:
        consumer = connect_consumer(self._settings, group_id=None)
        try:
            partitions = sorted(consumer.partitions_for_topic(self.topic) or ())
            tps = [TopicPartition(self.topic, p) for p in partitions]
            consumer.assign(tps)
            ends = consumer.end_offsets(tps)
            for tp in tps:
                consumer.seek(tp, starts.get(tp.partition, 0))
            out: list[tuple[str, int, int]] = []
            deadline = time.monotonic() + self._settings.kafka_timeout_s * 6
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {self.topic} to its end")
                for records in consumer.poll(timeout_ms=500).values():
                    for record in records:
                        try:
                            event_id = json.loads(record.value or b"{}").get("event_id")
                        except ValueError:
                            continue
                        out.append((str(event_id), record.partition, record.offset))
            return out
        finally:
            consumer.close(autocommit=False)
