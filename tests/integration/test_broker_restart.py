"""The broker stops and starts while a producer and a consumer run: both resume and nothing
the broker acknowledged is lost."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Sequence

import pytest

from driftloop.events import Transaction
from driftloop.kafka import EventConsumer, EventProducer, Received
from driftloop.stack import LocalStack

# about 3x what it needs: ten seconds of traffic around a broker restart (~16 s)
pytestmark = pytest.mark.timeout(60)

N = 600
RATE = 60  # events per second: ten seconds of traffic


def test_producer_and_consumer_survive_a_broker_restart(own_topics):
    settings = own_topics
    if not settings.kafka_managed:
        pytest.skip("the broker is an existing cluster; driftloop does not restart it")
    stack = LocalStack(settings)
    tag = uuid.uuid4().hex[:8]
    acked: set[str] = set()
    failed: list[BaseException] = []
    consumed: list[str] = []
    consumer_errors: list[BaseException] = []
    stop = threading.Event()

    def produce() -> None:
        with EventProducer(settings) as producer:
            for i in range(N):
                event = Transaction(
                    transaction_id=f"br-{tag}-{i}", customer_id=f"c-{i % 11}", merchant_id="m",
                    amount=10, currency="EUR", merchant_category="fuel", channel="pos",
                    country="DE", card_country="DE",
                )  # fmt: skip
                future = producer.send(event)
                future.add_callback(lambda _md, eid=event.event_id: acked.add(eid))
                future.add_errback(failed.append)
                time.sleep(1 / RATE)
            producer.flush()

    def consume() -> None:
        consumer = EventConsumer(settings, Transaction, group_id=f"br-{tag}")

        def effect(batch: Sequence[Received[Transaction]]) -> None:
            consumed.extend(r.event.event_id for r in batch)

        try:
            while not stop.is_set():
                consumer.poll_batch(effect, timeout_s=0.5)
        except BaseException as exc:
            consumer_errors.append(exc)
            raise
        finally:
            consumer.close()

    producer_thread = threading.Thread(target=produce)
    consumer_thread = threading.Thread(target=consume)
    producer_thread.start()
    consumer_thread.start()
    time.sleep(3)
    acked_before = len(acked)
    stack.supervisor.stop_program("kafka")
    time.sleep(3)
    stack.supervisor.start_program("kafka")
    stack.kafka.wait_ready()
    producer_thread.join(timeout=180)
    assert not producer_thread.is_alive(), "the producer hung after the broker came back"

    deadline = time.monotonic() + 120
    while not acked <= set(consumed) and time.monotonic() < deadline and not consumer_errors:
        time.sleep(0.5)
    stop.set()
    consumer_thread.join(timeout=60)

    assert 0 < acked_before < N, "the restart must fall in the middle of the traffic"
    assert failed == []
    assert consumer_errors == [], "the consumer gave up"
    assert len(acked) == N  # every send was acknowledged in the end (the producer retried)
    lost = acked - set(consumed)
    assert not lost, f"{len(lost)} acknowledged events never reached the consumer"
