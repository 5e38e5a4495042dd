"""A scored batch's predictions travel as one record: both ways, old records still read,
a malformed batch refused whole (and dead-lettered whole)."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest
from kafka.consumer.fetcher import ConsumerRecord
from pydantic import ValidationError

from driftloop.events import Prediction, PredictionBatch
from driftloop.kafka import dead_letter_for

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def _predictions(n: int = 3) -> list[Prediction]:
    return [
        Prediction(
            request_id="r-1", transaction_id=f"t-{i}", model_name="fraud",
            model_version="sha256-abc", score=0.25 * i / n, decision=False, threshold=0.5,
            features={"amount": 10.0 + i, "channel": "pos", "n": None}, latency_ms=1.5,
            event_time=T0 + timedelta(seconds=i), role="shadow" if i == 2 else "serving",
        )
        for i in range(n)
    ]  # fmt: skip


def _record(value: bytes) -> ConsumerRecord:
    return ConsumerRecord(
        topic="driftloop.predictions", partition=1, leader_epoch=0, offset=5, timestamp=0,
        timestamp_type=0, key=b"t-0", value=value, headers=[], checksum=None,
        serialized_key_size=3, serialized_value_size=len(value), serialized_header_size=0,
    )  # fmt: skip


def test_a_batch_reads_back_as_the_predictions_logged_alone():
    predictions = _predictions()
    batch = PredictionBatch.of(predictions)
    raw = batch.to_bytes()
    assert json.loads(raw)["schema_version"] == 2
    again = Prediction.decode(raw)
    assert again == predictions
    assert [p.event_id for p in again] == [p.event_id for p in predictions]
    assert PredictionBatch.decode(raw) == [batch]
    # its key is its first prediction's, as a lone prediction's record's is
    assert batch.partition_key() == predictions[0].partition_key() == "t-0"
    assert batch.event_time == predictions[-1].event_time


def test_a_single_prediction_record_still_reads():
    [one] = _predictions(1)
    assert Prediction.decode(one.to_bytes()) == [one]
    [batch] = PredictionBatch.decode(one.to_bytes())
    assert batch.predictions == [one]


def test_a_batch_id_derives_from_its_predictions():
    predictions = _predictions()
    first, again = PredictionBatch.of(predictions), PredictionBatch.of(list(predictions))
    other = PredictionBatch.of(predictions[:2])
    assert first.event_id == again.event_id != other.event_id
    # built without validating its predictions again, it is what validation builds
    assert PredictionBatch.model_validate(first.model_dump()) == first
    with pytest.raises(ValueError, match="at least one"):
        PredictionBatch.of([])
    with pytest.raises(ValidationError, match="natural key"):
        PredictionBatch(predictions=predictions, event_id=other.event_id)


def test_a_malformed_batch_is_refused_whole_and_dead_lettered_as_written():
    body = PredictionBatch.of(_predictions()).model_dump(mode="json")
    body["predictions"][1]["score"] = 1.5
    raw = json.dumps(body).encode()
    with pytest.raises(ValidationError) as refused:
        Prediction.decode(raw)
    letter = dead_letter_for(_record(raw), "monitor", refused.value)
    assert base64.b64decode(letter.value_b64) == raw
    assert [e["field"] for e in letter.errors] == ["predictions.1.score"]
    assert (letter.partition, letter.offset) == (1, 5)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"schema_version": 2, "predictions": []}, "predictions"),
        ({"schema_version": 2, "predictions": "none"}, "predictions"),
        ({"schema_version": 1, "predictions": [_predictions(1)[0].model_dump(mode="json")]},
         "schema_version"),
    ],
)  # fmt: skip
def test_a_batch_without_predictions_or_of_another_version_is_refused(body, field):
    with pytest.raises(ValidationError) as refused:
        Prediction.decode(json.dumps(body).encode())
    fields = {e["field"] for e in dead_letter_for(_record(b"x"), "g", refused.value).errors}
    assert field in fields


def test_records_that_are_not_json_are_refused_as_before():
    with pytest.raises(ValidationError, match=r"(?i)json"):
        Prediction.decode(b"\xff not json")
    with pytest.raises(ValidationError):
        Prediction.decode(b'["predictions"]')


def test_an_event_made_without_validation_equals_the_validated_one():
    for validated in _predictions():
        fields = validated.model_dump(exclude={"event_id"})
        made = Prediction.made(**fields)
        assert made == validated and made.event_id == validated.event_id
        assert made.to_bytes() == validated.to_bytes()
