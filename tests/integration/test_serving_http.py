"""The replica's HTTP layer (``build_http``) on a real ``FraudServiceImpl`` with no model,
through FastAPI's TestClient: what a request body must be, and what the counters record.

With no model a valid body gets past validation and is answered 503 (nothing to score
with), where an invalid body is a 422, so each case shows which of the two the body was.
Kafka points at a closed loopback port: the prediction log only retries in the background.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from driftloop_serving import ServeArgs
from driftloop_serving._http import build_http
from driftloop_serving._service import FraudServiceImpl
from fastapi.testclient import TestClient

from driftloop.events import Transaction

MAX_ITEMS = 4


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _service(kind: type[FraudServiceImpl] = FraudServiceImpl) -> FraudServiceImpl:
    """Auth off: these tests are about bodies and counters (the key: test_serving_contract)."""
    args = ServeArgs(
        kafka_bootstrap_servers=f"127.0.0.1:{_closed_port()}",
        max_request_items=MAX_ITEMS,
        auth="off",
    )
    return kind(args)


def _close(service: FraudServiceImpl) -> None:
    service.log.close(timeout_s=1)
    service._executor.shutdown(wait=False)


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    service = _service()
    try:
        with TestClient(build_http(service)) as c:
            yield c
    finally:
        _close(service)


def _body(i: int = 1, **change: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "transaction_id": f"t-{i}", "customer_id": "c1", "merchant_id": "m1", "amount": 42.5,
        "currency": "EUR", "merchant_category": "grocery", "channel": "pos", "country": "DE",
        "card_country": "DE", "device_id": "d1", "event_time": "2026-06-01T10:00:00+00:00",
    }  # fmt: skip
    body.update(change)
    return {k: v for k, v in body.items() if v is not None}


def _error(response: Any) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    [error] = response.json()["detail"]
    assert isinstance(error, dict)
    return error


def test_valid_bodies_pass_validation(client):
    """Integer amounts, ISO datetimes with an offset, a null device and a matching
    event_id are all valid JSON for the contract: 503 (scoring), not 422."""
    event_id = Transaction.model_validate(_body(7)).event_id
    for body in (
        _body(),
        _body(amount=42),
        _body(device_id=None),
        _body(event_time="2026-06-01T10:00:00Z"),
        _body(7, event_id=event_id),
        _body(event_id=""),
    ):
        r = client.post("/predict", json=body)
        assert r.status_code == 503, (body, r.text)
    r = client.post("/predict/batch", json={"transactions": [_body(1), _body(2, amount=3)]})
    assert r.status_code == 503, r.text


MISTYPED = [
    ("amount", True, "float_type"),
    ("amount", False, "float_type"),
    ("amount", "42.5", "float_type"),
    ("amount", [42.5], "float_type"),
    ("customer_id", 17, "string_type"),
    ("merchant_id", 1.5, "string_type"),
    ("currency", True, "string_type"),
    ("device_id", 5, "string_type"),
    ("event_time", 1_780_000_000, "datetime_type"),
    ("schema_version", "1", "literal_error"),
]


@pytest.mark.parametrize(("field", "value", "kind"), MISTYPED)
def test_a_mistyped_field_is_422_naming_it(client, field, value, kind):
    error = _error(client.post("/predict", json=_body(**{field: value})))
    assert (error["loc"], error["type"]) == (["body", field], kind)
    assert error["input"] == value


@pytest.mark.parametrize(("field", "value", "kind"), MISTYPED)
def test_a_mistyped_field_in_a_batch_is_422_naming_item_and_field(client, field, value, kind):
    items = [_body(1), _body(2), _body(3, **{field: value})]
    error = _error(client.post("/predict/batch", json={"transactions": items}))
    assert (error["loc"], error["type"]) == (["body", "transactions", 2, field], kind)


def test_unknown_and_missing_fields_in_a_batch_item_name_the_item(client):
    unknown = [_body(1, colour="red"), _body(2)]
    error = _error(client.post("/predict/batch", json={"transactions": unknown}))
    assert (error["loc"], error["type"]) == (
        ["body", "transactions", 0, "colour"],
        "extra_forbidden",
    )
    missing = {k: v for k, v in _body(2).items() if k != "amount"}
    error = _error(client.post("/predict/batch", json={"transactions": [_body(1), missing]}))
    assert (error["loc"], error["type"]) == (["body", "transactions", 1, "amount"], "missing")


def test_a_batch_body_is_strict_too(client):
    cases = [
        ({"transactions": {"0": _body()}}, ["body", "transactions"], "list_type"),
        ({"transactions": [_body(), 5]}, ["body", "transactions", 1], "model_type"),
        ({"transactions": [_body()], "extra": 1}, ["body", "extra"], "extra_forbidden"),
    ]
    for body, loc, kind in cases:
        error = _error(client.post("/predict/batch", json=body))
        assert (error["loc"], error["type"]) == (loc, kind), body


def test_a_mismatched_event_id_is_422_naming_event_id(client):
    other = Transaction.model_validate(_body(2)).event_id
    error = _error(client.post("/predict", json=_body(1, event_id=other)))
    assert (error["loc"], error["type"]) == (["body", "event_id"], "event_id_mismatch")
    assert error["input"] == other
    assert Transaction.model_validate(_body(1)).event_id in error["msg"]
    error = _error(client.post("/predict", json=_body(1, event_id=5)))
    assert (error["loc"], error["type"]) == (["body", "event_id"], "string_type")
    items = [_body(1), _body(2, event_id=other), _body(3, event_id=other)]
    r = client.post("/predict/batch", json={"transactions": items})
    assert r.status_code == 422, r.text
    assert [e["loc"] for e in r.json()["detail"]] == [["body", "transactions", 2, "event_id"]]


def test_the_openapi_schema_still_names_the_contract(client):
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/Transaction"
    schemas = spec["components"]["schemas"]
    assert schemas["Transaction"]["properties"]["amount"]["type"] == "number"
    items = schemas["BatchRequest"]["properties"]["transactions"]["items"]
    assert items["$ref"] == "#/components/schemas/Transaction"


def _sample(text: str, sample: str) -> float:
    match = re.search(rf"^{re.escape(sample)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


class _Raising(FraudServiceImpl):
    """A replica whose state breaks: a route raises (nothing turns it into an answer)."""

    def not_ready_reason(self) -> str:
        raise RuntimeError("broken replica state")


def test_a_route_that_raises_is_counted_as_a_500():
    service = _service(_Raising)
    try:
        with TestClient(build_http(service), raise_server_exceptions=False) as client:
            assert client.get("/model").status_code == 500
            assert client.get("/model").status_code == 500
            assert client.post("/predict", json={"bad": 1}).status_code == 422
            text = client.get("/metrics").text
    finally:
        _close(service)
    assert _sample(text, 'driftloop_serving_requests_total{route="/model",status="500"}') == 2
    assert _sample(text, 'driftloop_serving_errors_total{route="/model",status="500"}') == 2
    assert _sample(text, 'driftloop_serving_latency_seconds_count{route="/model"}') == 2
    assert _sample(text, 'driftloop_serving_errors_total{route="/predict",status="422"}') == 1


def test_a_raising_route_still_raises_for_the_server():
    """The middleware counts and re-raises: the exception reaches Starlette (and the log)."""
    service = _service(_Raising)
    try:
        with TestClient(build_http(service)) as client, pytest.raises(RuntimeError, match="broken"):
            client.get("/model")
    finally:
        _close(service)
