"""The HTTP contract's own rules, apart from the app: the ``event_time`` form the OpenAPI
states against the contract it narrows, the paths an answer must never carry, and the
request ids a replica keeps (the app itself: tests/integration/test_serving_contract.py)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pytest
from driftloop_serving._api import EVENT_TIME
from driftloop_serving._errors import public
from driftloop_serving._service import FraudServiceImpl
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from driftloop.events import EARLIEST, LATEST, Transaction
from driftloop.models import DigestMismatch

VERSION = "sha256-0123456789abcdef"
TXN = {
    "transaction_id": "t-1", "customer_id": "c1", "merchant_id": "m1", "amount": 42.5,
    "currency": "EUR", "merchant_category": "grocery", "channel": "pos", "country": "DE",
    "card_country": "DE",
}  # fmt: skip


def _accepted(event_time: str) -> bool:
    """Whether the contract takes ``event_time`` as a strict JSON request body would."""
    try:
        Transaction.model_validate_json(json.dumps({**TXN, "event_time": event_time}), strict=True)
    except ValidationError:
        return False
    return True


def _edges() -> list[str]:
    """Times around each end of the contract's range, with the widest offsets."""
    days = [
        edge + timedelta(days=d)
        for edge in (EARLIEST.date(), LATEST.date())
        for d in (-800, -400, -367, -366, -365, -2, -1, 0, 1, 2, 365, 366, 400)
    ]
    return [
        f"{day:%Y-%m-%d}T{clock}{offset}"
        for day in days
        for clock in ("00:00:00", "12:00:00", "23:59:59.999999")
        for offset in ("Z", "+23:59", "-23:59", "+00:00", "-00:00")
    ]


def test_the_event_time_form_is_inside_the_contract_and_spans_its_inner_years():
    matched = [when for when in _edges() if EVENT_TIME.fullmatch(when)]
    assert matched and all(_accepted(when) for when in matched)
    years = {int(when[:4]) for when in matched}
    assert (min(years), max(years)) == (EARLIEST.year + 1, LATEST.year - 2)
    # Outside the form but inside the contract: what the narrowing gives up.
    assert _accepted("1970-06-01T00:00:00Z") and not EVENT_TIME.fullmatch("1970-06-01T00:00:00Z")


@pytest.mark.parametrize(
    "when",
    [
        "2026-06-01T10:00:00Z", "2026-06-01T10:00:00.5+01:00", "2024-02-29T23:59:59-23:59",
        "2026-06-01T10:00:00.123456789Z", f"{date(1971, 1, 1)}T00:00:00+23:59",
    ],
)  # fmt: skip
def test_rfc3339_times_in_the_form_are_accepted(when):
    assert EVENT_TIME.fullmatch(when) and _accepted(when)


@pytest.mark.parametrize(
    "when",
    [
        "2026-06-01 10:00:00Z", "2026-06-01t10:00:00z", "2026-06-01T10:00Z", "2026-06-01T10:00:00",
        "2026-06-01T10:00:00+0100", "2026-06-01T10:00:00,5Z", "1780000000", "2026-06-01",
        "2026-06-01T23:59:60Z", "2026-06-01T10:00:00+24:00", "2026-06-01T10:00:00Z\n",
        "\uff12\uff10\uff12\uff16-06-01T10:00:00Z",  # full-width digits: \\d would take them
    ],
)  # fmt: skip
def test_what_the_form_refuses_is_not_rfc3339_with_an_offset(when):
    assert not EVENT_TIME.fullmatch(when)


def test_public_text_names_stored_files_by_the_store_and_hides_other_paths(tmp_path):
    store = tmp_path / "models"
    stored = str(store / "fraud" / VERSION / "model.json")
    mismatch = str(DigestMismatch(stored, "a" * 64, "b" * 64))
    assert stored in mismatch
    assert public(f"DigestMismatch: {mismatch}") == (
        f"DigestMismatch: models:/fraud/{VERSION}/model.json: sha256 mismatch: "
        f"expected {'a' * 64}, actual {'b' * 64}"
    )
    assert public(str(store / "fraud" / VERSION)) == f"models:/fraud/{VERSION}"
    assert public(f"s3://bucket/prefix/fraud/{VERSION}") == f"models:/fraud/{VERSION}"
    missing = str(FileNotFoundError(2, "No such file or directory", str(tmp_path / "x.json")))
    assert public(missing) == "[Errno 2] No such file or directory: '<path>'"
    listed = f"input_value={{'model_uri': '{tmp_path}/state/x', 'n': 1}} at file://{tmp_path}"
    assert public(listed) == "input_value={'model_uri': '<path>', 'n': 1} at <path>"
    for kept in (f"models:/fraud/{VERSION}", "no model loaded: at most 4/16 items", "a/b"):
        assert public(kept) == kept
    assert str(Path.home()) not in public(f"see {Path.home()}/.cache")


@pytest.mark.parametrize(
    ("header", "kept"),
    [("req-1.a:b_c", True), ("x" * 128, True), ("x" * 129, False), ("é", False),
     ("٣", False), ("a b", False), ("", False), (None, False)],
)  # fmt: skip
def test_a_request_id_is_kept_only_if_a_prediction_can_carry_it(header, kept):
    request_id = FraudServiceImpl.request_id(header)
    assert (request_id == header) is kept
    assert request_id.isascii() and 0 < len(request_id) <= 128


def _strict_json_mode(body: object) -> Transaction | list[ErrorDetails]:
    """What strict JSON mode makes of ``body``'s JSON text (as the request body was
    validated before: written back to JSON): the transaction, or its errors."""
    try:
        return Transaction.model_validate_json(json.dumps(body), strict=True)
    except ValidationError as exc:
        return exc.errors(include_url=False)


def _request_body(body: object) -> Transaction | list[ErrorDetails]:
    from driftloop_serving._api import RequestTransaction
    from pydantic import TypeAdapter

    try:
        return TypeAdapter(RequestTransaction).validate_python(json.loads(json.dumps(body)))
    except ValidationError as exc:
        return exc.errors(include_url=False)


_FIELD_VALUES: list[object] = [
    None, True, False, 0, 1, -1, 42, 42.5, 1e308, "", "42.5", "DE", "eur", "x" * 200,
    [], ["DE"], {}, {"a": 1},
]  # fmt: skip
_TIMES = [
    "2026-06-01T10:00:00Z", "2026-06-01T10:00:00.123456789+02:00", "2026-02-29T10:00:00Z",
    "2024-02-29T23:59:59-23:59", "2026-02-30T10:00:00Z", "2026-04-31T00:00:00Z",
    "1971-01-01T00:00:00+23:59", "2198-12-31T23:59:59-23:59", "2026-06-01T10:00:00.Z",
]  # fmt: skip


@pytest.mark.parametrize("field", [*TXN, "event_time", "device_id", "schema_version", "extra"])
def test_a_request_body_is_validated_as_strict_json_mode_validates_its_text(field):
    """Strict Python mode on the parsed body, with ``event_time`` read as JSON mode reads
    it, answers what strict JSON mode answers for the same text: the same transaction, or
    the same errors (type, place, message, input), for every JSON type in every field.
    (Times outside the form the OpenAPI states are refused before either: see above.)"""
    values = _FIELD_VALUES + (_TIMES if field == "event_time" else [])
    base = {**TXN, "event_time": _TIMES[0]}  # not the time of each validation
    for value in values:
        body = {**base, field: value}
        if field == "event_time" and isinstance(value, str) and not EVENT_TIME.fullmatch(value):
            continue  # refused by the form first, the same either way
        assert _request_body(body) == _strict_json_mode(body), (field, value)
    missing = {k: v for k, v in base.items() if k != field}
    if field in base and field != "event_time":  # absent: the time it arrives
        assert _request_body(missing) == _strict_json_mode(missing), field
