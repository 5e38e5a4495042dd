"""transactions → per-customer window aggregates → Feast (offline files, online push);
transactions + labels → the labelled history; predictions → the served-features log.

Each micro-batch: apply the events to the windows, write the feature rows as one offline
file named by the batch's offsets, push each touched customer's newest row online, then
checkpoint the events and offsets, and only then commit offsets to Kafka. A crash anywhere
replays the batch from the checkpoint: offline files of uncheckpointed batches are removed
and rewritten, online rows are overwritten with the same values.
"""

from __future__ import annotations

import base64
import logging
import re
import sqlite3
import threading
import time
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from driftloop.events import DeadLetter, Label, Prediction, Transaction
from driftloop.features import (
    CUSTOMER_AGGREGATES_SCHEMA,
    WINDOWS,
    Aggregator,
    TooLate,
    aggregate_rows_frame,
    delete_batch,
    list_batches,
    open_store,
    point_of,
    write_batch,
)
from driftloop.kafka import Batch, EventConsumer, EventProducer
from driftloop.metrics import serve_metrics
from driftloop_stream._checkpoint import Checkpoint, save_offsets
from driftloop_stream._labelled import HISTORY_SCHEMA, awaiting_rows, forget_older_than, match
from driftloop_stream._metrics import StreamMetrics
from driftloop_stream._served import SERVED_SCHEMA, served_frame
from driftloop_stream._settings import StreamSettings

if TYPE_CHECKING:
    from feast import FeatureStore

PUSH_SOURCE = "customer_aggregates_push"
_BATCH = re.compile(r"p(\d+)-(\d+)-(\d+)")
log = logging.getLogger(__name__)


def batch_name(first: dict[int, int], next_: dict[int, int], kind: str = "stream") -> str:
    return f"{kind}-" + "_".join(f"p{p}-{first[p]:012d}-{next_[p]:012d}" for p in sorted(first))


def batch_starts(name: str, kind: str = "stream") -> dict[int, int] | None:
    """{partition: first offset} of a batch file, None for other files (backfill)."""
    if not name.startswith(f"{kind}-"):
        return None
    return {int(p): int(first) for p, first, _ in _BATCH.findall(name)}


def _remove_unsaved(directory: str, saved: dict[str, dict[int, int]]) -> None:
    """Delete the files of ``directory`` written by batches never checkpointed (``saved``:
    batch kind → the offsets its checkpoint holds): their records are replayed and the
    files written again."""
    for name in list_batches(directory):
        for kind, offsets in saved.items():
            starts = batch_starts(name, kind)
            if starts and any(first >= offsets.get(p, 0) for p, first in starts.items()):
                delete_batch(directory, name)
                log.info("removed %s: its batch is replayed", name)
                break


class StreamService:
    def __init__(self, settings: StreamSettings, store: FeatureStore | None = None) -> None:
        self.settings = settings
        self.metrics = StreamMetrics.create()
        self.store = store or open_store(settings)
        self.checkpoint = Checkpoint(settings.checkpoint_path)
        self.aggregator = Aggregator(settings.stream_lateness_s)
        self.offline_dir = f"{settings.feature_data}/customer_aggregates"
        self.dlq = EventProducer(settings)
        self.consumer = EventConsumer(
            settings, Transaction, settings.stream_group, dlq=self.dlq,
            max_records=settings.stream_batch_max, linger_s=settings.stream_linger_s,
        )  # fmt: skip
        self.topic = self.consumer.topic
        self.labels = EventConsumer(
            settings, Label, f"{settings.stream_group}-labels", dlq=self.dlq,
            max_records=settings.stream_batch_max, linger_s=settings.stream_linger_s,
        )  # fmt: skip
        self.served = EventConsumer(
            settings, Prediction, f"{settings.stream_group}-served", dlq=self.dlq,
            max_records=settings.stream_batch_max, linger_s=settings.stream_linger_s,
        )  # fmt: skip
        self._restore()

    def _restore(self) -> None:
        restored = 0
        for customer, point in self.checkpoint.retained():
            self.aggregator.observe(customer, point)
            restored += 1
        offsets = self.checkpoint.offsets(self.topic)
        if not restored and not offsets:
            restored = self._seed()
        _remove_unsaved(self.offline_dir, {"stream": offsets})
        self.consumer.assign_from(offsets)
        label_offsets = self.checkpoint.offsets(self.labels.topic)
        _remove_unsaved(self.settings.labelled_dir, {"labels": label_offsets, "joined": offsets})
        self.labels.assign_from(label_offsets)
        served_offsets = self.checkpoint.offsets(self.served.topic)
        _remove_unsaved(self.settings.served_dir, {"served": served_offsets})
        self.served.assign_from(served_offsets)
        self.metrics.customers.set(len(self.aggregator.customers))
        log.info("restored %d events of %d customers; offsets %s", restored,
                 len(self.aggregator.customers), offsets or "from the beginning")  # fmt: skip

    def _seed(self) -> int:
        """On a first start, the windows continue the labelled history (the backfill the
        batch features came from), so a customer's 24-hour and 7-day aggregates do not drop
        to zero when the stream takes over. The seed goes into the checkpoint, so a
        restart restores it like any applied event."""
        import pandas as pd

        from driftloop.features import history_points

        path = self.settings.seed_history_path
        if not path.is_file():
            return 0
        frame = pd.read_parquet(path)
        if frame.empty:
            return 0
        span = WINDOWS["7d"] + self.settings.stream_lateness_s
        newest = frame["event_timestamp"].max()
        frame = frame[frame["event_timestamp"] > newest - pd.Timedelta(seconds=span)]
        applied = list(history_points(frame))
        for customer, point in applied:
            self.aggregator.observe(customer, point)
        horizons = {c: w.last_ts - span for c, w in self.aggregator.customers.items()}
        self.checkpoint.save(self.topic, applied, {}, horizons)
        log.info("seeded the windows with %d events of %s", len(applied), path)
        return len(applied)

    def handle(self, batch: Batch[Transaction]) -> None:
        started = time.perf_counter()
        rows: list[dict[str, object]] = []
        applied = []
        late: list[DeadLetter] = []
        for received in batch:
            txn = received.event
            point = point_of(txn)
            try:
                new_rows = self.aggregator.observe(txn.customer_id, point)
            except TooLate as exc:
                late.append(self._dead_letter(received.partition, received.offset, txn, exc))
                continue
            if new_rows:
                applied.append((txn.customer_id, point))
                rows.extend(new_rows)
        for future in [self.dlq.send(letter) for letter in late]:
            future.get()
        if rows:
            self._write(rows, batch)
        span = WINDOWS["7d"] + self.settings.stream_lateness_s
        touched = {customer for customer, _ in applied}
        horizons = {c: self.aggregator.customers[c].last_ts - span for c in touched}
        waiting = awaiting_rows([received.event for received in batch])
        name = batch_name(batch.first_offsets, batch.next_offsets, "joined")
        self.checkpoint.save(
            self.topic, applied, batch.next_offsets, horizons, waiting,
            then=lambda db: self._join(db, [], name),
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        m = self.metrics
        m.events.inc(len(applied))
        m.rows.inc(len(rows))
        m.late.inc(len(late))
        m.batch_events.observe(len(batch))
        m.customers.set(len(self.aggregator.customers))
        if elapsed > 0 and batch:
            m.events_per_second.set(len(batch) / elapsed)

    def handle_labels(self, batch: Batch[Label]) -> None:
        """Join the labels with the transactions that wait for them; write the labelled
        rows as one file named by the labels' offsets; then save those offsets."""
        db = self.checkpoint.db
        db.execute("BEGIN IMMEDIATE")
        try:
            name = batch_name(batch.first_offsets, batch.next_offsets, "labels")
            self._join(db, [received.event for received in batch], name)
            forget_older_than(db, self.settings.stream_label_horizon_s)
            save_offsets(db, self.labels.topic, batch.next_offsets)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def handle_served(self, batch: Batch[Prediction]) -> None:
        """Write a batch of predictions' served features (the answers': the serving
        version's and a canary's, not a shadow's) as one file named by their offsets; then
        save those offsets."""
        # A shadow's score answered nothing: what the endpoint served is the answers'.
        predictions = [r.event for r in batch if r.event.role != "shadow"]
        if predictions:
            name = batch_name(batch.first_offsets, batch.next_offsets, "served")
            write_batch(served_frame(predictions), self.settings.served_dir, name, SERVED_SCHEMA)
            self.metrics.served.inc(len(predictions))
        db = self.checkpoint.db
        db.execute("BEGIN IMMEDIATE")
        try:
            save_offsets(db, self.served.topic, batch.next_offsets)
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _join(self, db: sqlite3.Connection, labels: list[Label], name: str) -> None:
        """Inside the caller's transaction: join and write the rows that met their label
        (labels that just came, or transactions that just came to labels that waited)."""
        rows = match(db, labels)
        if not rows.empty:
            write_batch(rows, self.settings.labelled_dir, name, HISTORY_SCHEMA)
            self.metrics.labelled.inc(len(rows))

    def _write(self, rows: list[dict[str, object]], batch: Batch[Transaction]) -> None:
        from feast.data_source import PushMode  # Feast after driftloop.features (its _feast)

        frame = aggregate_rows_frame(rows, datetime.now(UTC))
        t0 = time.perf_counter()
        write_batch(
            frame,
            self.offline_dir,
            batch_name(batch.first_offsets, batch.next_offsets),
            CUSTOMER_AGGREGATES_SCHEMA,
        )
        t1 = time.perf_counter()
        newest = frame.sort_values(["event_timestamp", "created"]).groupby("customer_id").tail(1)
        self.store.push(PUSH_SOURCE, newest, to=PushMode.ONLINE)
        t2 = time.perf_counter()
        self.metrics.push_seconds.labels("offline").observe(t1 - t0)
        self.metrics.push_seconds.labels("online").observe(t2 - t1)

    def _dead_letter(
        self, partition: int, offset: int, txn: Transaction, exc: Exception
    ) -> DeadLetter:
        return DeadLetter(
            source_topic=self.topic, partition=partition, offset=offset,
            consumer_group=self.settings.stream_group, reason=f"late event: {exc}",
            value_b64=base64.b64encode(txn.to_bytes()).decode(),
        )  # fmt: skip

    def run(self, stop: threading.Event, exit_when_idle_s: float | None = None) -> None:
        server = serve_metrics(
            self.settings, self.settings.stream_metrics_port, self.metrics.registry
        )
        log.info("metrics on %s", server.url)
        idle_since = time.monotonic()
        next_lag = 0.0
        try:
            while not stop.is_set():
                result = self.consumer.poll_batch(self.handle, timeout_s=0.5)
                labels = self.labels.poll_batch(self.handle_labels, timeout_s=0.1)
                served = self.served.poll_batch(self.handle_served, timeout_s=0.1)
                now = time.monotonic()
                if result.received or labels.received or served.received:
                    idle_since = now
                elif exit_when_idle_s is not None and now - idle_since > exit_when_idle_s:
                    break
                if now >= next_lag:
                    self.metrics.lag.set(self.consumer.lag())
                    next_lag = now + 5
        finally:
            server.shutdown()

    def close(self) -> None:
        self.consumer.close()
        self.labels.close()
        self.served.close()
        self.dlq.close()
        self.checkpoint.close()
