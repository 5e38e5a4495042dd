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
