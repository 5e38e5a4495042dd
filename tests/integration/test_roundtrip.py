"""Every contract goes through the real broker and comes back equal."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import pytest

from driftloop.events import CONTRACTS, Event
from driftloop.kafka import EventConsumer, EventProducer, Received
from tests.samples import sample_events

pytestmark = pytest.mark.timeout(20)  # about 3x what it needs: every contract through Kafka (~2 s)


def _drain(
    consumer: EventConsumer[Any], want: set[str], timeout_s: float = 60
) -> list[Received[Any]]:
    """Poll until every event id in ``want`` arrived (or time runs out)."""
    got: list[Received[Any]] = []

    def collect(batch: Sequence[Received[Any]]) -> None:
        got.extend(batch)

    deadline = time.monotonic() + timeout_s
    while not want <= {r.event.event_id for r in got} and time.monotonic() < deadline:
        consumer.poll_batch(collect, timeout_s=0.5)
    return got


def test_every_contract_round_trips_through_kafka(settings):
    events = sample_events()
    with EventProducer(settings) as producer:
        metadata = {type(e): producer.publish(e) for e in events}
    for event in events:
        contract = type(event)
        consumer = EventConsumer(settings, contract, group_id=f"rt-{uuid.uuid4().hex[:6]}")
        try:
            got = [r for r in _drain(consumer, {event.event_id}) if r.event == event]
        finally:
            consumer.close()
        assert [r.event for r in got] == [event], contract.__name__
        assert got[0].topic == settings.topic(contract.topic)
        assert (got[0].partition, got[0].offset) == (
            metadata[contract].partition,
            metadata[contract].offset,
        )
    assert {type(e) for e in events} == set(CONTRACTS)


def test_records_with_one_key_keep_their_order(settings):
    events: list[Event] = []
    base = sample_events()[0]
    for i in range(50):
        events.append(base.model_copy(update={"transaction_id": f"order-{i}", "event_id": ""}))
    # model_copy skips validation, so rebuild each to derive its id from the new key
    events = [type(e).model_validate(e.model_dump()) for e in events]
    group = f"order-{uuid.uuid4().hex[:6]}"
    with EventProducer(settings) as producer:
        for e in events:
            producer.send(e)
        producer.flush()
    consumer = EventConsumer(settings, type(base), group_id=group)
    try:
        got = _drain(consumer, {e.event_id for e in events})
    finally:
        consumer.close()
    mine = [r.event.event_id for r in got if r.event.event_id in {e.event_id for e in events}]
    assert mine == [e.event_id for e in events]
