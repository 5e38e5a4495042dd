from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from driftloop.events import (
    CONTRACTS,
    ColumnDrift,
    DriftEvent,
    Prediction,
    PredictionBatch,
    Transaction,
    Window,
    stable_id,
)
from driftloop.schemas import write_schemas
from tests.samples import sample_events

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize("event", sample_events(), ids=lambda e: type(e).__name__)
def test_every_contract_round_trips_through_json(event):
    again = type(event).model_validate_json(event.to_bytes())
    assert again == event
    assert again.schema_version == (2 if isinstance(event, DriftEvent | PredictionBatch) else 1)
    assert again.event_id and again.event_time.tzinfo is not None


def test_a_version_1_drift_event_still_reads_and_keeps_its_id():
    """Schema version 2 of drift events adds the change point and the evidence after it;
    a record written by a version-1 monitor reads as before, with neither."""
    current = next(e for e in sample_events() if isinstance(e, DriftEvent))
    old = current.model_dump(mode="json", exclude={"change_point", "evidence"})
    old["schema_version"] = 1
    read = DriftEvent.model_validate_json(json.dumps(old))
    assert read.schema_version == 1 and read.change_point is None and read.evidence is None
    assert read.event_id == current.event_id
    with pytest.raises(ValidationError, match="schema_version"):
        DriftEvent.model_validate({**old, "schema_version": 3})


def test_evidence_travels_with_the_event_and_does_not_change_its_id():
    current = next(e for e in sample_events() if isinstance(e, DriftEvent))
    since = current.window.start
    grown = DriftEvent.model_validate(
        {**current.model_dump(), "change_point": since,
         "evidence": {"since": since, "labelled_rows": 2400, "positives": 61}}
    )  # fmt: skip
    again = DriftEvent.model_validate_json(grown.to_bytes())
    assert again.evidence is not None and again.evidence.labelled_rows == 2400
    assert again.change_point == since
    assert again.event_id == current.event_id
    with pytest.raises(ValidationError, match="positives"):
        DriftEvent.model_validate(
            {
                **grown.model_dump(),
                "evidence": {"since": since, "labelled_rows": 1, "positives": -1},
            }
        )


def test_samples_cover_every_contract():
    assert {type(e) for e in sample_events()} == set(CONTRACTS)


def test_missing_and_mistyped_fields_are_named():
    raw = {
        "transaction_id": "t1",
        "customer_id": "c1",
        "merchant_id": "m1",
        "amount": "lots",
        "currency": "EUR",
        "merchant_category": "grocery",
        "country": "DE",
        "card_country": "DE",
    }
    with pytest.raises(ValidationError) as info:
        Transaction.model_validate(raw)
    fields = {e["loc"][0] for e in info.value.errors()}
    assert fields == {"amount", "channel"}


def test_unknown_fields_and_naive_times_are_refused():
    good = sample_events()[0].model_dump(mode="json")
    with pytest.raises(ValidationError, match="cvv"):
        Transaction.model_validate({**good, "cvv": "123"})
    with pytest.raises(ValidationError, match="timezone"):
        Transaction.model_validate({**good, "event_time": "2026-03-01T12:00:00"})


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                                  "2200-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])  # fmt: skip
def test_times_no_consumer_can_represent_are_refused_naming_the_field(when):
    good = sample_events()[0].model_dump(mode="json")
    with pytest.raises(ValidationError, match="event_time") as refused:
        Transaction.model_validate({**good, "event_time": when})
    assert "must lie in [1970-01-01, 2200-01-01)" in str(refused.value)
    assert Transaction.model_validate({**good, "event_time": "2199-12-31T23:59:59Z"})


def test_transaction_ids_derive_from_the_natural_key():
    a = Transaction(
        transaction_id="t-9",
        customer_id="c",
        merchant_id="m",
        amount=3.5,
        currency="EUR",
        merchant_category="fuel",
        channel="pos",
        country="FR",
        card_country="FR",
    )
    b = Transaction(
        transaction_id="t-9",
        customer_id="c",
        merchant_id="m",
        amount=3.5,
        currency="EUR",
        merchant_category="fuel",
        channel="pos",
        country="FR",
        card_country="FR",
        event_time=T0,
    )
    assert a.event_id == b.event_id
    assert a.partition_key() == "c"


def _drift(start: datetime, version: str = "v1", event_id: str = "") -> DriftEvent:
    return DriftEvent(
        event_id=event_id,
        model_name="fraud",
        model_version=version,
        window=Window(start=start, end=start + timedelta(minutes=5), row_count=1000),
        reference_profile="file:///models/v1/reference.bin",
        columns=[
            ColumnDrift(
                column="amount", algorithm="ks", statistic=0.4, p_value=1e-9, category="DRIFT"
            )
        ],
    )


def test_drift_event_id_is_derived_from_model_and_window_so_replays_match():
    first = _drift(T0)
    replay = _drift(T0)
    assert first.event_id == replay.event_id
    assert _drift(T0 + timedelta(minutes=5)).event_id != first.event_id
    assert _drift(T0, version="v2").event_id != first.event_id
    # The id travels with the record and survives a round trip through JSON.
    assert DriftEvent.model_validate_json(first.to_bytes()).event_id == first.event_id


def test_an_event_id_that_contradicts_its_key_is_refused():
    with pytest.raises(ValidationError, match="does not match its natural key"):
        _drift(T0, event_id="forged")


def test_window_must_not_end_before_it_starts():
    with pytest.raises(ValidationError, match="before its start"):
        Window(start=T0, end=T0 - timedelta(seconds=1), row_count=0)


def test_json_schemas_are_written_for_every_contract(tmp_path):
    paths = write_schemas(tmp_path)
    assert sorted(p.name for p in paths) == sorted(f"{c.__name__}.schema.json" for c in CONTRACTS)
    drift = json.loads((tmp_path / "DriftEvent.schema.json").read_text())
    assert drift["x-topic"] == "drift-events"
    assert {"model_name", "model_version", "window", "reference_profile"} <= set(drift["required"])
    assert drift["additionalProperties"] is False


def test_a_shadow_prediction_has_an_id_of_its_own_and_a_serving_one_keeps_its_id():
    fields = {
        "request_id": "r-1", "transaction_id": "t-1", "model_name": "fraud",
        "model_version": "sha256-0123456789abcdef", "score": 0.2, "decision": False,
        "threshold": 0.5, "latency_ms": 1.0,
    }  # fmt: skip
    serving = Prediction(**fields)
    assert serving.role == "serving"
    assert serving.event_id == stable_id("Prediction", "r-1", "t-1")  # as before roles
    shadow = Prediction(**{**fields, "model_version": "sha256-fedcba9876543210", "role": "shadow"})
    assert shadow.event_id not in {serving.event_id, ""}
    canary = Prediction(**{**fields, "model_version": "sha256-fedcba9876543210", "role": "canary"})
    assert canary.event_id == serving.event_id  # the payment's one answer, whoever gave it
    with pytest.raises(ValidationError, match="role"):
        Prediction(**{**fields, "role": "mirror"})


def _verdict(verdict: str = "better", action: str = "promote", **extra: object) -> DriftEvent:
    return DriftEvent.model_validate(
        {
            "kind": "shadow_verdict", "model_name": "fraud", "model_version": "sha256-aa",
            "window": {"start": T0, "end": T0 + timedelta(hours=5), "row_count": 3000},
            "reference_profile": "models:/fraud/sha256-aa",
            "shadow": {
                "version": "sha256-bb", "verdict": verdict, "action": action, "rows": 3000,
                "positives": 61, "first_seen": T0, "deadline": T0 + timedelta(hours=72),
                "comparisons": [{"metric": "pr_auc", "serving": 0.41, "shadow": 0.63,
                                 "standard_error": 0.05, "p_better": 1e-5, "p_worse": 1.0}],
            },
            **extra,
        }
    )  # fmt: skip


def test_a_shadow_verdict_is_schema_version_3_with_an_id_from_both_versions_and_the_verdict():
    event = _verdict()
    assert event.schema_version == 3
    assert event.event_id == stable_id(
        "DriftEvent", "shadow_verdict", "fraud", "sha256-aa", "sha256-bb", "better"
    )
    later = _verdict(window={"start": T0, "end": T0 + timedelta(hours=9), "row_count": 5000})
    assert later.event_id == event.event_id  # more evidence, the same verdict: one event
    assert _verdict("worse", "remove").event_id != event.event_id
    assert DriftEvent.model_validate_json(event.to_bytes()) == event
    with pytest.raises(ValidationError, match="is to promote"):
        _verdict("better", "remove")
    with pytest.raises(ValidationError, match="schema_version 3"):
        _verdict(schema_version=2)
    data = next(e for e in sample_events() if isinstance(e, DriftEvent)).model_dump()
    data.pop("event_id")
    with pytest.raises(ValidationError, match="only it"):
        DriftEvent.model_validate({**data, "shadow": event.shadow})


def _canary_verdict(verdict: str = "worse", action: str = "remove", **extra: object) -> DriftEvent:
    return DriftEvent.model_validate(
        {
            "kind": "canary_verdict", "model_name": "fraud", "model_version": "sha256-aa",
            "window": {"start": T0, "end": T0 + timedelta(hours=5), "row_count": 3000},
            "reference_profile": "models:/fraud/sha256-aa",
            "canary": {
                "version": "sha256-cc", "verdict": verdict, "action": action, "rows": 3000,
                "positives": 61, "serving_rows": 27000, "serving_positives": 540,
                "first_seen": T0, "deadline": T0 + timedelta(hours=72),
                "comparisons": [{"metric": "pr_auc", "serving": 0.63, "canary": 0.41,
                                 "standard_error": 0.05, "p_better": 1.0, "p_worse": 1e-5}],
            },
            **extra,
        }
    )  # fmt: skip


def test_a_canary_verdict_is_schema_version_5_and_carries_each_sides_counts():
    event = _canary_verdict()
    assert event.schema_version == 5 and event.live_verdict is event.canary
    assert event.canary is not None and event.canary.comparisons[0].challenger == 0.41
    assert (event.canary.serving_rows, event.canary.serving_positives) == (27000, 540)
    assert event.event_id == stable_id(
        "DriftEvent", "canary_verdict", "fraud", "sha256-aa", "sha256-cc", "worse"
    )
    assert DriftEvent.model_validate_json(event.to_bytes()) == event
    # not the shadow verdict of the same versions: a canary is ended by another commit
    assert _verdict().event_id != _canary_verdict("better", "promote").event_id
    with pytest.raises(ValidationError, match="canary judged worse is to remove"):
        _canary_verdict("worse", "promote")
    with pytest.raises(ValidationError, match="schema_version 5"):
        _canary_verdict(schema_version=3)
    with pytest.raises(ValidationError, match="only it"):
        _canary_verdict(shadow=_verdict().shadow)
    with pytest.raises(ValidationError, match="shadow"):  # a shadow's comparison is not one
        _canary_verdict(canary={**event.canary.model_dump(), "comparisons": [
            {"metric": "pr_auc", "serving": 0.6, "shadow": 0.4, "standard_error": 0.1,
             "p_better": 1.0, "p_worse": 0.01}]})  # fmt: skip
