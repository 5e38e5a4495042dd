"""The prediction log against the real broker, in-process and in a Serve replica: it never
blocks its caller, counts what it drops while Kafka is unreachable (never reached, or
lost mid-life), and delivers by itself once Kafka is reachable again."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from driftloop_serving import PredictionLog

from driftloop.events import Prediction, PredictionBatch
from driftloop.kafka import EventConsumer, EventProducer, Received
from tests.integration import serving_support as support

pytestmark = pytest.mark.timeout(120)


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


def _read(
    settings, want: int, timeout_s: float = 60, among: set[str] | None = None
) -> list[Prediction]:
    """The topic's predictions (those whose request id is ``among``, if given)."""
    return support.read_predictions(
        settings, want, lambda p: among is None or p.request_id in among, timeout_s
    )


def test_unreachable_kafka_costs_callers_nothing_and_drops_are_counted(own_topics):
    port = support.closed_port()
    settings = own_topics.model_copy(
        update={"kafka_bootstrap_servers": f"127.0.0.1:{port}", "kafka_timeout_s": 1.0}
    )
    log = PredictionLog(settings, capacity=100, retry_s=0.2)
    log.start()
    try:
        # an offer that waited for the broker would take at least the 1 s connection
        # timeout; how fast the 1000 offers are in total is the machine's, not asserted
        dropped, slowest = 0, 0.0
        for event in _events(1000, "down"):
            started = time.perf_counter()
            dropped += log.offer([event])
            slowest = max(slowest, time.perf_counter() - started)
        assert dropped == 900 and log.dropped == {"queue_full": 900}
        assert slowest < 0.5, f"an offer waited {slowest:.3f} s"
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


def test_a_scored_batch_is_one_record_per_partition_where_each_prediction_would_go(own_topics):
    """Offers (scored batches) of 60 predictions taken together are written as one record
    per partition their transaction ids fall in, each prediction in the partition a record
    of its own with the same transaction id goes to: a payment's predictions share one."""
    tag = uuid.uuid4().hex[:8]
    batched = [e.model_copy(update={"request_id": f"{tag}-b-{i}", "event_id": ""})
               for i, e in enumerate(_events(60, tag))]  # fmt: skip
    batched = [Prediction.model_validate(e.model_dump()) for e in batched]  # derive the ids
    log = PredictionLog(own_topics, linger_ms=5)
    try:
        # two offers waiting when the log starts: taken, and written, together
        assert log.offer(batched[:25]) == log.offer(batched[25:]) == 0
        log.start()
        _until(lambda: log.sent == 60, 30)
    finally:
        log.close(timeout_s=5)
    with EventProducer(own_topics) as producer:  # the same payments, a record each
        alone = {
            e.transaction_id: producer.publish(
                Prediction.model_validate(
                    e.model_dump() | {"request_id": f"{tag}-s", "event_id": ""}
                )
            ).partition
            for e in batched
        }
    records: list[Received[PredictionBatch]] = []
    reader = EventConsumer(own_topics, PredictionBatch, group_id=f"read-{tag}")
    deadline = time.monotonic() + 60
    try:
        while sum(len(r.event.predictions) for r in records) < 120:
            assert time.monotonic() < deadline, "not every record came back"
            reader.poll_batch(records.extend, timeout_s=1)
    finally:
        reader.close()
    batches = [r for r in records if r.event.predictions[0].request_id.startswith(f"{tag}-b-")]
    assert len(batches) == len(set(alone.values())) <= own_topics.topic_partitions
    assert sorted(p.event_id for r in batches for p in r.event.predictions) == sorted(
        e.event_id for e in batched
    )
    for r in batches:
        assert {alone[p.transaction_id] for p in r.event.predictions} == {r.partition}


def _until(condition, timeout_s: float, offer=None) -> float:
    """Seconds until ``condition()``; ``offer()`` meanwhile every 0.1 s (a request stream)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise AssertionError(f"not within {timeout_s} s")
        if offer is not None:
            offer()
        time.sleep(0.1)
    return time.monotonic() - started


def test_logging_recovers_when_kafka_goes_away_mid_life(own_topics):
    """Connected and delivering; then every connection to Kafka is cut (a SOCKS proxy in
    front of the real broker closes); then Kafka is reachable again. Nothing restarts."""
    port = support.closed_port()
    proxy = support.Socks5Proxy(port)
    drops: list[tuple[str, int]] = []
    log = PredictionLog(
        own_topics, capacity=1000, retry_s=0.2, linger_ms=5, delivery_timeout_ms=3_000,
        proxy_url=proxy.url, on_drop=lambda reason, n: drops.append((reason, n)),
    )  # fmt: skip
    offered: list[str] = []
    slowest = 0.0

    def offer() -> None:
        nonlocal slowest
        [event] = _events(1, f"stream{len(offered)}")
        started = time.perf_counter()
        log.offer([event])
        slowest = max(slowest, time.perf_counter() - started)
        offered.append(event.request_id)

    log.start()
    try:
        assert log.offer(_events(20, "before")) == 0
        _until(lambda: log.sent == 20, 30)
        assert log.connected and log.dropped == {}

        proxy.close()
        _until(lambda: not log.connected, 30, offer)
        _until(lambda: log.dropped.get("delivery_failed", 0) >= 20, 30, offer)
        assert not log.connected and log.sent == 20

        proxy = support.Socks5Proxy(port)
        _until(lambda: log.connected, 30, offer)
        _until(lambda: log.sent + sum(log.dropped.values()) == 20 + len(offered), 30)
        dropped = log.dropped["delivery_failed"]
        assert log.offer(_events(20, "after")) == 0
        _until(lambda: log.sent + dropped == 20 + len(offered) + 20, 30)
        assert log.dropped == {"delivery_failed": dropped} and log.connected
    finally:
        log.close(timeout_s=5)
        proxy.close()
    assert slowest < 0.05, f"an offer took {slowest:.3f} s while Kafka was away"
    assert sum(n for _, n in drops) == dropped  # what the service counts in its metric
    got = {e.request_id for e in _read(own_topics, 20 + len(offered) - dropped + 20)}
    assert {f"before-{i}" for i in range(20)} | {f"after-{i}" for i in range(20)} <= got
    assert len(got & set(offered)) == len(offered) - dropped


def test_a_replica_keeps_answering_while_kafka_is_away_and_logs_again_after(serving_world):
    """An application of its own (its prediction log goes through a SOCKS proxy)."""
    from ray import serve

    repo, model = serving_world.settings, serving_world.v1
    port = support.closed_port()
    proxy = support.Socks5Proxy(port)
    name = support.app_name()
    args = support.serve_args(repo, log_proxy_url=proxy.url, log_delivery_timeout_ms=6_000)
    dropped = "driftloop_serving_prediction_log_dropped_total"
    dropped_sample = f'{dropped}{{reason="delivery_failed"}}'
    slowest = 0.0
    try:
        support.deploy(name, args, support.user_config(model))
        url = f"{repo.serve_url}/{name}"
        with httpx.Client(base_url=url, headers=support.stack_headers(), timeout=30) as client:

            def predict(request_id: str | None = None) -> None:
                nonlocal slowest
                headers = {"X-Request-ID": request_id} if request_id else {}
                started = time.monotonic()
                r = client.post("/predict", json=support.transaction(0), headers=headers)
                slowest = max(slowest, time.monotonic() - started)
                assert r.status_code == 200, r.text

            def connected() -> bool:
                return bool(client.get("/healthz").json()["prediction_log_connected"])

            def logged() -> float:
                return support.metric(url, "driftloop_serving_prediction_log_sent_total")

            for _ in range(5):
                predict()
            _until(lambda: logged() >= 5 and connected(), 60)

            proxy.close()
            _until(lambda: not connected(), 60, predict)
            assert support.metric(url, dropped_sample, at_least=1) > 0
            outage_slowest, slowest = slowest, 0.0

            proxy = support.Socks5Proxy(port)
            _until(connected, 60, predict)
            ids = [f"back-{uuid.uuid4().hex[:8]}-{i}" for i in range(5)]
            for request_id in ids:
                predict(request_id)
            health = client.get("/healthz").json()
    finally:
        serve.delete(name)
        proxy.close()
    assert outage_slowest < 1.0, f"an answer took {outage_slowest:.2f} s while Kafka was away"
    assert health["ready"] and health["prediction_log_connected"]
    got = [e.request_id for e in _read(repo, len(ids), among=set(ids))]
    assert sorted(got) == sorted(ids)
