from __future__ import annotations

import base64

from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError

from driftloop.events import DeadLetter, Transaction
from driftloop.kafka import dead_letter_for


def _record(value: bytes, offset: int = 11) -> ConsumerRecord:
    return ConsumerRecord(
        topic="driftloop.transactions",
        partition=2,
        leader_epoch=0,
        offset=offset,
        timestamp=0,
        timestamp_type=0,
        key=b"c-1",
        value=value,
        headers=[],
        checksum=None,
        serialized_key_size=3,
        serialized_value_size=len(value),
        serialized_header_size=0,
    )


def _error(value: bytes) -> Exception:
    try:
        Transaction.model_validate_json(value)
    except ValidationError as exc:
        return exc
    raise AssertionError("expected the record to be invalid")


def test_invalid_json_keeps_the_original_bytes_and_a_reason():
    raw = b"\x00not json at all"
    letter = dead_letter_for(_record(raw), "stream", _error(raw))
    assert base64.b64decode(letter.value_b64) == raw
    assert base64.b64decode(letter.key_b64 or "") == b"c-1"
    assert "json" in letter.reason.lower()
    assert (letter.source_topic, letter.partition, letter.offset) == (
        "driftloop.transactions",
        2,
        11,
    )


def test_schema_violations_name_each_field():
    raw = (
        b'{"transaction_id": "t", "customer_id": "c", "merchant_id": "m", "amount": -1,'
        b' "currency": "EUR", "merchant_category": "x", "channel": "fax machine",'
        b' "country": "DE", "card_country": "DE"}'
    )
    letter = dead_letter_for(_record(raw), "stream", _error(raw))
    assert {e["field"] for e in letter.errors} == {"amount", "channel"}
    assert "amount" in letter.reason and "channel" in letter.reason


def test_a_redelivered_bad_record_produces_the_same_dead_letter_id():
    raw = b"{}"
    first = dead_letter_for(_record(raw), "stream", _error(raw))
    again = dead_letter_for(_record(raw), "stream", _error(raw))
    other = dead_letter_for(_record(raw, offset=12), "stream", _error(raw))
    assert first.event_id == again.event_id != other.event_id
    assert DeadLetter.model_validate_json(first.to_bytes()) == first
