"""The prediction log in-process against the real broker: it never blocks its caller,
counts what it drops while Kafka is unreachable, and delivers by itself once Kafka is."""

from __future__ import annotations

import time
import uuid

from driftloop_serving import PredictionLog

from driftloop.events import Prediction
from driftloop.kafka import EventConsumer
from tests.integration import serving_support as support


def _events(n: int, tag: str) -> list[Prediction]:
    return [
        Prediction(
            request_id=f"{tag}-{i}", transaction_id=f"t-{i}", model_name="fraud",
            model_version="sha256-0123456789abcdef", score=0.25, decision=False,
            threshold=0.5, features={"amount_to_mean_7d": 1.5, "merchant_category": None},
            latency_ms=3.0,
        )
        for i in range(n)
    ]  # fmt: skip


def _read(settings, want: int, timeout_s: float = 60) -> list[Prediction]:
    got: list[Prediction] = []
    reader = EventConsumer(settings, Prediction, group_id=f"log-test-{uuid.uuid4().hex[:6]}")
    deadline = time.monotonic() + timeout_s
    try:
        while len(got) < want and time.monotonic() < deadline:
            reader.poll_batch(lambda batch: got.extend(r.event for r in batch), timeout_s=1)
        reader.poll_batch(lambda batch: got.extend(r.event for r in batch), timeout_s=1)
    finally:
        reader.close()
    return got


def test_unreachable_kafka_costs_callers_nothing_and_drops_are_counted(own_topics):
    port = support.closed_port()
    settings = own_topics.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{port}", "kafka_timeout_s": 1.0}
    )
    log = PredictionLog(settings, capacity=100, retry_s=0.2)
    log.start()
    try:
        started = time.perf_counter()
        dropped = sum(log.offer([event]) for event in _events(1000, "down"))
        offer_s = time.perf_counter() - started
        assert dropped == 900 and log.dropped == {"queue_full": 900}
        assert offer_s < 0.5, f"1000 offers took {offer_s:.3f} s"
        time.sleep(1.5)  # a few connection attempts
        assert not log.connected and log.queued == 100 and log.sent == 0
    finally:
        log.close(timeout_s=3)


def test_logging_resumes_by_itself_when_kafka_becomes_reachable(own_topics):
    port = support.closed_port()
    settings = own_topics.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{port}", "kafka_timeout_s": 1.0}
    )
    log = PredictionLog(settings, capacity=100, retry_s=0.2, linger_ms=5)
    log.start()
    relay = None
    try:
        assert log.offer(_events(30, "early")) == 0
        time.sleep(1.5)
        assert not log.connected and log.queued == 30
        broker = own_topics.kafka_bootstrap[0].rsplit(":", 1)
        relay = support.Relay(port, (broker[0], int(broker[1])))
        deadline = time.monotonic() + 30
        while log.sent < 30 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.connected and log.sent == 30
        assert log.offer(_events(20, "late")) == 0
        deadline = time.monotonic() + 30
        while log.sent < 50 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert log.sent == 50 and log.dropped == {}
    finally:
        log.close(timeout_s=5)
        if relay is not None:
            relay.close()
    got = _read(own_topics, 50)
    assert sorted(e.request_id for e in got) == sorted(
        [f"early-{i}" for i in range(30)] + [f"late-{i}" for i in range(20)]
    )
    assert got[0].features == {"amount_to_mean_7d": 1.5, "merchant_category": None}
