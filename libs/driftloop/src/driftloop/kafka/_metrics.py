"""Prometheus counters shared by every consumer of the process (created on first use)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from prometheus_client import Counter


@dataclass(frozen=True)
class ConsumerMetrics:
    received: Counter
    handled: Counter
    dead_lettered: Counter

    def record(self, topic: str, group: str, received: int, handled: int, dead: int) -> None:
        self.received.labels(topic, group).inc(received)
        self.handled.labels(topic, group).inc(handled)
        self.dead_lettered.labels(topic, group).inc(dead)


@cache
def consumer_metrics() -> ConsumerMetrics:
    labels = ("topic", "group")
    return ConsumerMetrics(
        Counter("driftloop_consumer_records", "Records polled", labels),
        Counter("driftloop_consumer_handled", "Valid records handed to the effect", labels),
        Counter("driftloop_consumer_dead_lettered", "Records routed to the DLQ", labels),
    )
