"""Live traffic: paced transactions to Kafka, delayed labels, optional scoring calls.

Traffic is generated on a virtual timeline of windows (so fraud bursts keep their spacing)
and sent in that order at ``rate`` events per second; each transaction's ``event_time`` is
the wall clock when it is sent. With ``time_warp`` > 1 each wall second carries
``time_warp`` virtual seconds and ``event_time`` is the virtual time: a day of traffic at a
realistic pace per customer passes in minutes, and every consumer that works in event
time (features, monitor windows, training windows) sees that day. Its label follows
``label_delay_s`` (wall seconds) later through a FIFO delay queue.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from kafka.producer.future import FutureRecordMetadata
from pydantic import BaseModel, ConfigDict, Field

from driftloop.apikey import client_headers
from driftloop.events import Label, Transaction, utcnow
from driftloop.kafka import EventProducer
from driftloop.settings import Settings
from driftloop_simulator._catalog import NS_PER_S, country_codes
from driftloop_simulator._generate import GeneratorConfig, stream_warmup, stream_window
from driftloop_simulator._pace import CustomerPacer
from driftloop_simulator._predict import Predictor, failure_summary
from driftloop_simulator._rows import Rows
from driftloop_simulator._scenarios import ActiveScenario, ScenarioChoice
from driftloop_simulator._world import World, WorldConfig, build_world

Draft = tuple[str, str, float, str, str, str, str, str, str | None, bool, str, int]
"""customer, merchant, amount, currency, category, channel, country, card country, device,
is_fraud, fraud pattern, virtual time (ns)."""


class StreamConfig(BaseModel):
    """How fast, how long, and where transactions and labels go."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    world: WorldConfig = WorldConfig()
    generator: GeneratorConfig = GeneratorConfig(fraud_delay_s=60)
    rate: float = Field(100.0, gt=0, description="transactions per second")
    duration_s: float | None = Field(None, gt=0)
    count: int | None = Field(None, ge=0)
    label_delay_s: float = Field(30.0, ge=0)
    drain_labels: bool = Field(True, description="at a normal end, wait for pending labels")
    predict_url: str | None = None
    predict_timeout_s: float = Field(2.0, gt=0)
    predict_concurrency: int = Field(4, ge=1)
    predict_batch: int = Field(
        1, ge=1, le=256, description="payments per call (>1: the endpoint's batch route)"
    )
    customer_gap_s: float = Field(
        0.0,
        ge=0,
        description="wall seconds at least between one customer's payments (see _pace): a "
        "warped stream's episodes otherwise outrun the stream service's features",
    )
    predict_retries: int = Field(2, ge=0, description="retries of a call the endpoint refused")
    progress_every_s: float = Field(5.0, gt=0)
    time_warp: float = Field(
        1.0, ge=1, description="virtual seconds per wall second; event_time is virtual if > 1"
    )
    run_id: str = Field(
        "", pattern=r"^[A-Za-z0-9.\-]{0,32}$", description="id part; default from start time"
    )
    draw_key: str = Field(
        "",
        max_length=64,
        description="what the traffic's random draws are keyed by (default: the run id): "
        "the same world seed and key give the same payments in the same order",
    )


@dataclass
class StreamStats:
    sent: int = 0
    labels_sent: int = 0
    labels_dropped: int = 0
    fraud_sent: int = 0
    predict_ok: int = 0
    predict_failed: int = 0
    predict_failures: dict[str, int] = field(default_factory=dict)
    """Failed payments by reason ("timeout", "HTTP 503", ...)."""
    predict_retried: int = 0
    send_errors: int = 0
    send_seconds: float = 0.0
    """From the start until the last transaction was handed to the producer."""
    elapsed_s: float = 0.0
    patterns: Counter[str] = field(default_factory=Counter)

    @property
    def rate(self) -> float:
        return self.sent / self.send_seconds if self.send_seconds > 0 else 0.0

    def take_predict_counts(self, predictor: Predictor[Any]) -> None:
        """The scoring calls' counts so far, from the predictor that made them."""
        self.predict_ok, self.predict_failed = predictor.ok, predictor.failed
        self.predict_failures = dict(predictor.failures)
        self.predict_retried = predictor.retried


def _drafts(world: World, rows: Rows) -> list[Draft]:
    return list(
        zip(
            world.c_id[rows.customer].tolist(),
            rows.merchant_id.tolist(),
            rows.amount.tolist(),
            rows.currency.tolist(),
            rows.merchant_category.tolist(),
            rows.channel.tolist(),
            rows.country.tolist(),
            country_codes()[world.c_home[rows.customer]].tolist(),
            rows.device_id.tolist(),
            rows.is_fraud.tolist(),
            rows.fraud_pattern.tolist(),
            rows.t.tolist(),
            strict=True,
        )
    )


def _timeline(
    world: World,
    config: StreamConfig,
    run_key: int,
    origin_ns: int,
    scenario: ActiveScenario | None,
) -> Iterator[Draft]:
    """Drafts in virtual-time order, one-second window after window, forever.

    Each window holds one wall second of payments. With a time warp, the event time it
    spans is shorter on a busy weekday (``GeneratorConfig.weekly``), so the stream keeps
    the volume per event-time day that the history before it had."""
    per_window = max(1, round(config.rate / (1.0 + config.generator.fraud_rate)))
    step = config.time_warp * NS_PER_S  # one wall second of traffic, in event time
    per_virtual_s = max(1, round(per_window / config.time_warp))
    carry = stream_warmup(world, config.generator, run_key, origin_ns, per_virtual_s)
    index, start = 0, origin_ns
    while True:
        factor = config.generator.day_factor(start) if config.time_warp > 1 else 1.0
        span = (start, start + int(step / factor))
        start = span[1]
        fresh = stream_window(world, config.generator, run_key, index, span, per_window, scenario)
        rows = Rows.concat([carry, fresh])
        due = rows.t < span[1]
        carry = rows.select(~due)
        now = rows.select(due)
        yield from _drafts(world, now.select(np.argsort(now.t, kind="stable")))
        index += 1


class _Sender:
    """Publishes transactions, queues their labels, and publishes labels once due."""

    def __init__(
        self, producer: EventProducer, delay_s: float, stats: StreamStats, warp: float = 1.0
    ) -> None:
        self._producer = producer
        self._delay_s = delay_s
        self._stats = stats
        # A label is stamped in the stream's event time: the delay after its payment, as
        # much event time as the wall delay spans (a time warp stretches it).
        self._label_after = timedelta(seconds=delay_s * warp)
        self._labels: deque[tuple[float, str, bool, datetime]] = deque()
        self._lock = threading.Lock()

    def _failed(self, _: Any) -> None:
        with self._lock:
            self._stats.send_errors += 1

    def _send(self, event: Transaction | Label) -> None:
        future: FutureRecordMetadata = self._producer.send(event)
        future.add_errback(self._failed)

    def transaction(self, tx: Transaction, is_fraud: bool, pattern: str) -> None:
        self._send(tx)
        due = time.monotonic() + self._delay_s
        self._labels.append((due, tx.transaction_id, is_fraud, tx.event_time + self._label_after))
        self._stats.sent += 1
        if is_fraud:
            self._stats.fraud_sent += 1
            self._stats.patterns[pattern] += 1

    def labels_due(self, now: float) -> None:
        while self._labels and self._labels[0][0] <= now:
            _, transaction_id, is_fraud, at = self._labels.popleft()
            self._send(Label(transaction_id=transaction_id, is_fraud=is_fraud, event_time=at))
            self._stats.labels_sent += 1

    @property
    def pending(self) -> int:
        return len(self._labels)

    def next_label_at(self) -> float | None:
        return self._labels[0][0] if self._labels else None

    def drop_pending(self) -> None:
        self._stats.labels_dropped += len(self._labels)
        self._labels.clear()


def _virtual_time(ns: int) -> datetime:
    return datetime.fromtimestamp(ns / NS_PER_S, UTC)


def _run_key(run_id: str) -> int:
    return zlib.crc32(run_id.encode())


def run_stream(
    settings: Settings,
    config: StreamConfig,
    *,
    scenario: ScenarioChoice | None = None,
    stop: threading.Event | None = None,
    echo: Callable[[str], None] = print,
) -> StreamStats:
    """Stream until ``count`` or ``duration_s`` is reached or ``stop`` is set, then flush.

    At a normal end the labels still queued are sent when due (``drain_labels``); after
    ``stop`` they are dropped and counted.
    """
    stop = stop or threading.Event()
    world = build_world(config.world)
    origin_ns, origin = time.time_ns(), time.monotonic()
    run_id = config.run_id or np.base_repr(origin_ns // 1_000_000, 36).lower()
    active = scenario.starting_at(origin_ns) if scenario else None
    timeline = _timeline(world, config, _run_key(config.draw_key or run_id), origin_ns, active)
    stats = StreamStats()
    producer = EventProducer(settings)
    sender = _Sender(producer, config.label_delay_s, stats, config.time_warp)
    predictor: Predictor[tuple[Transaction, bool, str]] | None = None
    if config.predict_url:
        predictor = Predictor(
            config.predict_url,
            config.predict_timeout_s,
            config.predict_concurrency,
            config.predict_retries,
            headers=client_headers(settings),
            batch=config.predict_batch,
        )
    pacer: CustomerPacer[tuple[Transaction, bool, str]] = CustomerPacer(config.customer_gap_s)

    def dispatch(items: list[tuple[Transaction, bool, str]]) -> None:
        for item in items:
            if predictor is None:
                sender.transaction(*item)
                continue
            for done in predictor.submit(item[0].model_dump(mode="json"), item):
                sender.transaction(*done)

    prefix = f"tx-s{config.world.seed}-{run_id}-"
    warped = None if config.time_warp == 1 else _virtual_time
    created, last_progress, last_sent = 0, origin, 0
    try:
        while not stop.is_set():
            now = time.monotonic()
            elapsed = now - origin
            if (config.count is not None and created >= config.count) or (
                config.duration_s is not None and elapsed >= config.duration_s
            ):
                break
            sender.labels_due(now)
            target = int(elapsed * config.rate) + 1
            if config.count is not None:
                target = min(target, config.count)
            # at most ~50 ms worth per pass, so limits and labels are checked often
            for _ in range(min(target - created, max(1, int(config.rate / 20)))):
                d = next(timeline)
                tx = Transaction(
                    transaction_id=f"{prefix}{created:09d}",
                    customer_id=d[0],
                    merchant_id=d[1],
                    amount=d[2],
                    currency=d[3],
                    merchant_category=d[4],
                    channel=d[5],
                    country=d[6],
                    card_country=d[7],
                    device_id=d[8],
                    event_time=utcnow() if warped is None else warped(d[11]),
                )
                created += 1
                dispatch(pacer.offer(tx.customer_id, (tx, d[9], d[10]), now))
            dispatch(pacer.due(time.monotonic()))
            if predictor is not None:
                for done in predictor.poll():
                    sender.transaction(*done)
            stats.send_seconds = time.monotonic() - origin
            if now - last_progress >= config.progress_every_s:
                if predictor is not None:
                    stats.take_predict_counts(predictor)
                recent = (stats.sent - last_sent) / (now - last_progress)
                echo(_progress(stats, recent, sender.pending))
                last_progress, last_sent = now, stats.sent
            if target <= created:
                wait = (created / config.rate) - (time.monotonic() - origin)
                label_at = sender.next_label_at()
                if label_at is not None:
                    wait = min(wait, label_at - time.monotonic())
                stop.wait(min(max(wait, 0.0), 0.05))
        dispatch(pacer.flush())
        if predictor is not None:
            for done in predictor.drain():
                sender.transaction(*done)
            stats.send_seconds = time.monotonic() - origin
        if config.drain_labels and not stop.is_set() and sender.pending:
            echo(f"waiting up to {config.label_delay_s:g} s for {sender.pending} pending labels")
            while sender.pending and not stop.is_set():
                sender.labels_due(time.monotonic())
                label_at = sender.next_label_at()
                if label_at is not None:
                    stop.wait(min(max(label_at - time.monotonic(), 0.0), 0.05))
        sender.drop_pending()
    finally:
        if predictor is not None:
            stats.take_predict_counts(predictor)
            predictor.close()
        producer.flush(timeout_s=settings.kafka_timeout_s * 3)
        producer.close(timeout_s=settings.kafka_timeout_s)
        stats.elapsed_s = time.monotonic() - origin
    echo(_progress(stats, stats.rate, 0) + " (done)")
    return stats


def _progress(stats: StreamStats, rate: float, pending: int) -> str:
    line = (
        f"sent {stats.sent} ({rate:.0f}/s), fraud {stats.fraud_sent}, "
        f"labels {stats.labels_sent} sent / {pending} pending"
    )
    if stats.labels_dropped:
        line += f" / {stats.labels_dropped} dropped"
    if stats.predict_ok or stats.predict_failed:
        line += f", predict {stats.predict_ok} ok / {stats.predict_failed} failed"
        if stats.predict_failures:
            line += f" ({failure_summary(stats.predict_failures)})"
    if stats.send_errors:
        line += f", kafka errors {stats.send_errors}"
    return line
