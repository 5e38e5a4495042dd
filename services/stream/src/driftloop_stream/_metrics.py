"""The stream service's Prometheus metrics."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


@dataclass(frozen=True)
class StreamMetrics:
    registry: CollectorRegistry
    events: Counter
    rows: Counter
    late: Counter
    push_seconds: Histogram
    batch_events: Histogram
    lag: Gauge
    events_per_second: Gauge
    customers: Gauge
    labelled: Counter
    served: Counter

    @classmethod
    def create(cls) -> StreamMetrics:
        r = CollectorRegistry()
        return cls(
            registry=r,
            events=Counter("driftloop_stream_events", "Transactions applied", registry=r),
            rows=Counter("driftloop_stream_feature_rows", "Feature rows written", registry=r),
            labelled=Counter(
                "driftloop_stream_labelled_rows",
                "Transactions joined with their labels",
                registry=r,
            ),
            served=Counter(
                "driftloop_stream_served_rows",
                "Predictions whose served features were logged for training",
                registry=r,
            ),
            late=Counter(
                "driftloop_stream_late_events", "Events beyond the lateness (DLQ)", registry=r
            ),
            push_seconds=Histogram(
                "driftloop_stream_push_seconds",
                "Offline write + online push per batch",
                ["store"],
                registry=r,
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            ),
            batch_events=Histogram(
                "driftloop_stream_batch_events",
                "Events per micro-batch",
                registry=r,
                buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000),
            ),
            lag=Gauge(
                "driftloop_stream_consumer_lag", "Records behind the topic's end", registry=r
            ),
            events_per_second=Gauge(
                "driftloop_stream_events_per_second",
                "Events applied per second over the last batch",
                registry=r,
            ),
            customers=Gauge(
                "driftloop_stream_customers", "Customers with window state", registry=r
            ),
        )
