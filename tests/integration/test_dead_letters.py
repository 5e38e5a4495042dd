"""Malformed records go to the DLQ with their reason and bytes; the consumer keeps going.
A batch of predictions is one record: malformed, it goes to the DLQ whole."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Sequence

import pytest

from driftloop.events import DeadLetter, Prediction, PredictionBatch, Transaction
from driftloop.kafka import EventConsumer, EventProducer, Received
from tests.samples import sample_events

pytestmark = pytest.mark.timeout(20)  # about 3x what it needs: a consumer over a few records (~4 s)


def test_malformed_records_land_in_the_dlq_and_the_consumer_keeps_going(settings):
    tag = uuid.uuid4().hex[:8]
    good = [
        Transaction.model_validate(
            {**sample_events()[0].model_dump(), "transaction_id": f"dlq-{tag}-{i}", "event_id": ""}
        )
        for i in range(2)
    ]
    not_json = b"\xff\xfe this is not json " + tag.encode()
    wrong_schema = (
        b'{"transaction_id": "x-' + tag.encode() + b'", "customer_id": "c", "merchant_id": "m",'
        b' "amount": "free", "currency": "EUR", "merchant_category": "x", "channel": "pos",'
        b' "country": "DE", "card_country": "DE"}'
    )
    with EventProducer(settings) as producer:
        producer.send(good[0])
        producer.send_raw("transactions", not_json, key=b"c-17")
        producer.send_raw("transactions", wrong_schema, key=b"c-17")
        producer.send(good[1])
        producer.flush()

    group = f"dlq-{tag}"
    handled: list[Received[Transaction]] = []

    def effect(batch: Sequence[Received[Transaction]]) -> None:
        handled.extend(batch)

    consumer = EventConsumer(settings, Transaction, group_id=group)
    dead = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            dead += consumer.poll_batch(effect, timeout_s=0.5).dead_lettered
            if {g.event_id for g in good} <= {h.event.event_id for h in handled} and dead >= 2:
                break
    finally:
        consumer.close()
    mine = [h.event for h in handled if h.event.transaction_id.startswith(f"dlq-{tag}")]
    assert mine == good  # both valid records, in order, around the two bad ones
    assert dead == 2

    letters: list[DeadLetter] = []
    reader = EventConsumer(settings, DeadLetter, group_id=f"dlq-reader-{tag}")
    deadline = time.monotonic() + 60
    try:
        while len(letters) < 2 and time.monotonic() < deadline:
            reader.poll_batch(
                lambda b: letters.extend(r.event for r in b if r.event.consumer_group == group),
                timeout_s=0.5,
            )
    finally:
        reader.close()
    by_bytes = {base64.b64decode(letter.value_b64): letter for letter in letters}
    assert set(by_bytes) == {not_json, wrong_schema}
    assert "json" in by_bytes[not_json].reason.lower()
    assert [e["field"] for e in by_bytes[wrong_schema].errors] == ["amount"]
    assert "amount" in by_bytes[wrong_schema].reason
    assert all(letter.source_topic == settings.topic("transactions") for letter in letters)
    # The bad records' offsets were committed: a restarted consumer does not see them again.
    again = EventConsumer(settings, Transaction, group_id=group)
    try:
        assert again.poll_batch(effect, timeout_s=3).dead_lettered == 0
    finally:
        again.close()


def test_a_malformed_batch_of_predictions_lands_in_the_dlq_whole(settings):
    """A batch record is one offset: read as predictions, a valid batch is handed on as
    its predictions, all at the record's offset; a batch with one bad prediction goes to
    the DLQ whole, its bytes as written, and none of its predictions is handed on."""
    tag = uuid.uuid4().hex[:8]
    batch = next(e for e in sample_events(tag) if isinstance(e, PredictionBatch))
    body = batch.model_dump(mode="json")
    body["predictions"][1]["score"] = 1.5
    bad = json.dumps(body).encode()
    with EventProducer(settings) as producer:
        producer.send_raw("predictions", bad, key=b"k")
        sent = producer.publish(batch)

    group = f"dlq-batch-{tag}"
    handled: list[Received[Prediction]] = []
    consumer = EventConsumer(settings, Prediction, group_id=group)
    dead = 0
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            dead += consumer.poll_batch(handled.extend, timeout_s=0.5).dead_lettered
            if dead >= 1 and len([h for h in handled if h.event.request_id == f"rb-{tag}"]) >= 3:
                break
    finally:
        consumer.close()
    mine = [h for h in handled if h.event.request_id == f"rb-{tag}"]
    assert [h.event for h in mine] == batch.predictions
    assert {(h.partition, h.offset) for h in mine} == {(sent.partition, sent.offset)}
    assert dead == 1

    letters: list[DeadLetter] = []
    reader = EventConsumer(settings, DeadLetter, group_id=f"dlq-reader-{tag}")
    deadline = time.monotonic() + 60
    try:
        while not letters and time.monotonic() < deadline:
            reader.poll_batch(
                lambda b: letters.extend(r.event for r in b if r.event.consumer_group == group),
                timeout_s=0.5,
            )
    finally:
        reader.close()
    [letter] = letters
    assert base64.b64decode(letter.value_b64) == bad
    assert [e["field"] for e in letter.errors] == ["predictions.1.score"]
    assert letter.source_topic == settings.topic("predictions")
