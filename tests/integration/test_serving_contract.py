"""The scoring API's contract, in-process: FastAPI's TestClient (and schemathesis' ASGI
transport) on ``build_http`` of a real ``FraudServiceImpl`` with no model, whose last model
configurations were refused with the paths of its state and model store in them.

* Every bad request is a 4xx naming what was wrong (415 media type, 400 not JSON, 422 the
  field), never a 5xx; every status a route answers is declared in its OpenAPI
  ``responses``; no answer carries a path of the server.
* schemathesis, with every check it has, valid and invalid data, unexpected methods and
  content types, finds nothing (``contract_support``).

A valid body answers 503 here: the service has no model (its configurations were refused),
as in test_serving_http.py and in a replica without a model. The 503 is declared,
so the fuzzing allows that one 5xx; test_security.py runs the same fuzzing over HTTP on a
deployment serving a model, where it allows none. Kafka points at a closed port: the
prediction log only retries in the background.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from driftloop_serving import ModelRefused, ServeArgs
from driftloop_serving._http import build_http
from driftloop_serving._service import FraudServiceImpl
from fastapi.testclient import TestClient
from pydantic import SecretStr

from tests.integration import contract_support as contract
from tests.integration.serving_support import closed_port

MAX_ITEMS = 4
KEY = "contract-key"
JSON = {"Content-Type": "application/json"}
UNKNOWN_VERSION = "sha256-0123456789abcdef"
pytestmark = pytest.mark.timeout(300)


@dataclass
class Api:
    client: TestClient
    service: FraudServiceImpl
    root: Path  # the state directory and the model store are under it


def _service(root: Path, key: str | None) -> FraudServiceImpl:
    """A replica with ``key``, or with auth switched off when None."""
    args = ServeArgs(
        kafka_bootstrap_servers=f"127.0.0.1:{closed_port()}",
        max_request_items=MAX_ITEMS,
        state_dir=str(root / "state"),
        model_store_uri=str(root / "models"),
        api_key=SecretStr(key) if key else None,
        auth=None if key else "off",
    )
    return FraudServiceImpl(args)


def _refuse(service: FraudServiceImpl, root: Path, *, valid: bool) -> None:
    """Record a refused configuration naming a local path: a version missing from a store
    given by its absolute path (``valid``), or a ``model_uri`` that is not a version."""
    digest = UNKNOWN_VERSION.removeprefix("sha256-") * 4
    target = root / "models" / "fraud" / UNKNOWN_VERSION if valid else root / "state" / "x"
    with pytest.raises(ModelRefused):
        service.reconfigure({"model_uri": str(target), "model_digest": digest})


@pytest.fixture(scope="module", params=[None, KEY], ids=["auth-off", "keyed"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    root = tmp_path_factory.mktemp("contract")
    service = _service(root, request.param)
    _refuse(service, root, valid=True)
    headers = {} if request.param is None else {"X-API-Key": KEY}
    try:
        with TestClient(build_http(service), headers=headers) as client:
            yield Api(client, service, root)
    finally:
        service.log.close(timeout_s=1)
        service._executor.shutdown(wait=False)


# -- bodies ------------------------------------------------------------------------------


def _transaction(i: int = 1) -> dict[str, Any]:
    return {
        "transaction_id": f"t-{i}", "customer_id": "c1", "merchant_id": "m1", "amount": 42.5,
        "currency": "EUR", "merchant_category": "grocery", "channel": "pos", "country": "DE",
        "card_country": "DE", "device_id": "d1", "event_time": "2026-06-01T10:00:00Z",
    }  # fmt: skip


def _text(**tokens: str) -> str:
    """A transaction as JSON text, ``tokens`` replacing (or adding) fields as raw text."""
    fields = {name: json.dumps(value) for name, value in _transaction().items()} | tokens
    return "{" + ", ".join(f'"{name}": {token}' for name, token in fields.items()) + "}"


# A route and how it wraps a transaction's JSON text and an error's location in it.
ROUTES: dict[str, tuple[Callable[[str], str], list[str | int]]] = {
    "/predict": (lambda text: text, ["body"]),
    "/predict/batch": (lambda text: f'{{"transactions": [{text}]}}', ["body", "transactions", 0]),
}


@dataclass(frozen=True)
class Case:
    """A request body and the answer it must get: ``status``, and ``why`` — a part of the
    sentence for a 4xx other than 422, or the ``loc`` tail and ``type`` of the 422."""

    name: str
    headers: dict[str, str]
    body: bytes | None
    status: int
    why: str | tuple[list[str | int], str] = ""
    wrap: bool = False  # body is a transaction: wrapped per route


def _t(name: str, status: int, why: str | tuple[list[str | int], str], **tokens: str) -> Case:
    return Case(name, JSON, _text(**tokens).encode(), status, why, wrap=True)


VALID = _text().encode()
CASES = [
    # The media type: 415 before the body is read.
    Case("a form (curl -d)", {"Content-Type": "application/x-www-form-urlencoded"},
         b"transaction_id=t-1&amount=42.5", 415, "'application/x-www-form-urlencoded'"),
    Case("JSON sent as text/plain", {"Content-Type": "text/plain"}, VALID, 415, "'text/plain'"),
    Case("multipart without a boundary", {"Content-Type": "multipart/form-data"}, VALID, 415,
         "'multipart/form-data'"),
    Case("XML", {"Content-Type": "application/xml"}, b"<t/>", 415, "'application/xml'"),
    Case("a +json media type", {"Content-Type": "application/merge-patch+json"}, VALID, 415,
         "is not application/json"),
    Case("bytes without a Content-Type", {}, VALID, 415, "Content-Type missing"),
    Case("application/json with a charset", {"Content-Type": "application/json; charset=utf-8"},
         VALID, 503, "no model loaded", wrap=True),
    Case("APPLICATION/JSON", {"Content-Type": "APPLICATION/JSON"}, VALID, 503, "no model loaded",
         wrap=True),
    # No body: the body is a missing field.
    Case("no body at all", {}, None, 422, ([], "missing")),
    Case("an empty body", JSON, b"", 422, ([], "missing")),
    # Bytes that are not JSON text: 400.
    Case("only whitespace", JSON, b"  \n", 400, "EOF while parsing"),
    Case("a syntax error", JSON, b"{nope", 400, "key must be a string at line 1 column 2"),
    Case("trailing bytes", JSON, VALID + b" x", 400, "trailing characters"),
    Case("not UTF-8", JSON, b'{"customer_id": "\xff"}', 400, "invalid unicode code point"),
    Case("UTF-16", JSON, VALID.decode().encode("utf-16"), 400, "expected value at line 1"),
    Case("a byte order mark", JSON, b"\xef\xbb\xbf" + VALID, 400, "expected value at line 1"),
    _t("NaN", 400, "NaN and Infinity are not JSON numbers", amount="NaN"),
    _t("Infinity", 400, "NaN and Infinity are not JSON numbers", amount="Infinity"),
    _t("-Infinity", 400, "NaN and Infinity are not JSON numbers", colour="-Infinity"),
    _t("an integer of 5000 digits", 400, "number out of range", amount="9" * 5000),
    _t("1000 levels of nesting", 400, "recursion limit exceeded", colour="[" * 1000 + "]" * 1000),
    _t("a raw NUL in a string", 400, "control character", customer_id='"c\x001"'),
    _t("a lone surrogate", 400, "escape", customer_id='"\\ud800"'),
    # JSON of the wrong shape: 422 naming the field.
    Case("a JSON array", JSON, b"[1, 2]", 422, ([], "")),
    Case("JSON null", JSON, b"null", 422, ([], "")),
    _t("1e400 (beyond a double)", 422, (["amount"], "less_than"), amount="1e400"),
    _t("-1e400", 422, (["amount"], "greater_than"), amount="-1e400"),
    _t("a 40-digit amount", 422, (["amount"], "less_than"), amount="9" * 40),
    _t("a number where a string goes", 422, (["customer_id"], "string_type"), customer_id="17"),
    _t("100 levels of nesting, unknown", 422, (["colour"], "extra_forbidden"),
       colour="[" * 100 + "]" * 100),
    _t("an escaped NUL in an id", 422, (["customer_id"], "string_pattern_mismatch"),
       customer_id='"c\\u00001"'),
    _t("event_time in 1970", 422, (["event_time"], "string_pattern_mismatch"),
       event_time='"1970-06-01T00:00:00Z"'),
    _t("event_time in 2199", 422, (["event_time"], "string_pattern_mismatch"),
       event_time='"2199-06-01T00:00:00Z"'),
    _t("event_time without an offset", 422, (["event_time"], "string_pattern_mismatch"),
       event_time='"2026-06-01T10:00:00"'),
    _t("event_time with a space", 422, (["event_time"], "string_pattern_mismatch"),
       event_time='"2026-06-01 10:00:00Z"'),
    _t("event_time as epoch text", 422, (["event_time"], "string_pattern_mismatch"),
       event_time='"1780000000"'),
    _t("event_time on 30 February", 422, (["event_time"], "datetime_parsing"),
       event_time='"2026-02-30T10:00:00Z"'),
    _t("event_time at the earliest offset", 503, "no model loaded",
       event_time='"1971-01-01T00:00:00+23:59"'),
    _t("event_time at the latest offset", 503, "no model loaded",
       event_time='"2198-12-31T23:59:59.123456789-23:59"'),
]  # fmt: skip


def _send(client: TestClient, route: str, case: Case, **kwargs: Any) -> Any:
    wrap, _ = ROUTES[route]
    body = wrap(case.body.decode()).encode() if case.wrap and case.body is not None else case.body
    return client.post(route, headers=case.headers, content=body, **kwargs)


def _assert_answer(response: Any, route: str, case: Case) -> None:
    assert response.status_code == case.status, (route, case.name, response.text[:300])
    detail = response.json()["detail"]
    if case.status != 422:
        assert isinstance(case.why, str) and isinstance(detail, str)
        assert case.why in detail, (route, case.name, detail)
        return
    assert isinstance(case.why, tuple)
    tail, kind = case.why
    loc = (ROUTES[route][1] if case.wrap else ["body"]) + tail
    assert any(e["loc"] == loc and kind in e["type"] for e in detail), (route, case.name, detail)


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_every_body_gets_the_4xx_that_names_what_is_wrong(api, route, case):
    _assert_answer(_send(api.client, route, case), route, case)


def test_a_batch_over_the_limit_or_repeating_an_id_is_422_naming_it(api):
    items = [_transaction(i) for i in range(MAX_ITEMS + 1)]
    r = api.client.post("/predict/batch", json={"transactions": items})
    [error] = r.json()["detail"]
    assert (r.status_code, error["loc"], error["type"]) == (422, ["body", "transactions"],
                                                            "too_long")  # fmt: skip
    assert f"at most {MAX_ITEMS}" in error["msg"]
    twice = [_transaction(1), _transaction(2), _transaction(1)]
    [error] = api.client.post("/predict/batch", json={"transactions": twice}).json()["detail"]
    assert (error["loc"], error["type"]) == (["body", "transactions", 2, "transaction_id"],
                                             "duplicate")  # fmt: skip
    r = api.client.post("/predict/batch", json={"transactions": []})
    assert r.status_code == 422 and r.json()["detail"][0]["type"] == "too_short"


def test_query_strings_and_unknown_headers_are_ignored(api):
    headers = {"X-Unknown": "1", "X-Request-ID": "é".encode("latin-1"), "Accept": "text/html"}
    params = {"debug": "1", "transaction_id": "other"}
    for route, (wrap, _) in ROUTES.items():
        body = wrap(_text()).encode()
        r = api.client.post(route, params=params, headers={**JSON, **headers}, content=body)
        assert r.status_code == 503 and "no model loaded" in r.json()["detail"], r.text
        r = api.client.post(route, params=params, headers=JSON, content=b"[]")
        assert r.status_code == 422


@pytest.mark.parametrize(
    ("path", "allowed"),
    [("/predict", "POST"), ("/predict/batch", "POST"), ("/model", "GET"), ("/healthz", "GET")],
)
def test_a_wrong_method_is_405_naming_the_allowed_one(api, path, allowed):
    for method in ("GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"):
        if method == allowed:
            continue
        r = api.client.request(method, path, json=_transaction())
        assert (r.status_code, r.headers["allow"]) == (405, allowed), (method, path)
        assert r.json() == {"detail": "Method Not Allowed"}


def test_an_unknown_path_is_404(api):
    for method, path in [("GET", "/"), ("POST", "/score"), ("GET", "/predict/batch/1"),
                         ("POST", "/fraud/predict")]:  # fmt: skip
        r = api.client.request(method, path, json=_transaction())
        assert (r.status_code, r.json()) == (404, {"detail": "Not Found"}), (method, path)


def test_the_key_is_needed_unless_auth_is_off_and_checked_after_the_media_type(api):
    """A deployment with auth off ignores X-API-Key; one with a key refuses a wrong one
    after the body's media type and JSON text (415, 400), before its fields (422)."""
    keyed = api.service.api_key is not None
    anonymous = {"X-API-Key": ""}
    for route, (wrap, _) in ROUTES.items():
        body = wrap(_text()).encode()
        for headers, content, status in [
            ({**JSON, **anonymous}, body, 401 if keyed else 503),
            ({**JSON, "X-API-Key": KEY.upper()}, body, 401 if keyed else 503),
            ({**JSON, "X-API-Key": KEY}, body, 503),
            ({"Content-Type": "text/plain", **anonymous}, body, 415),
            ({**JSON, **anonymous}, b"{nope", 400),
            ({**JSON, **anonymous}, b"[]", 401 if keyed else 422),
        ]:
            # The key in the query string does not count either.
            r = api.client.post(route, headers=headers, content=content, params={"api_key": KEY})
            assert r.status_code == status, (route, headers, content[:20], r.text)
    assert api.client.get("/model", headers=anonymous).status_code == (401 if keyed else 503)
    assert api.client.get("/healthz", headers=anonymous).status_code == 503


# -- the OpenAPI -------------------------------------------------------------------------


def _declared(spec: dict[str, Any]) -> dict[str, set[int]]:
    return {
        f"{method.upper()} {path}": {int(status) for status in operation["responses"]}
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }


def test_every_status_answered_is_declared_for_its_route(api):
    observed: dict[str, set[int]] = {}

    def record(response: Any) -> None:
        request = response.request
        observed.setdefault(f"{request.method} {request.url.path}", set()).add(response.status_code)

    client = api.client
    client.event_hooks = {"response": [record]}
    try:
        for route in ROUTES:
            for case in CASES:
                _send(client, route, case)
            client.post(route, headers={**JSON, "X-API-Key": "wrong"}, content=VALID)
        client.post("/predict/batch", json={"transactions": [_transaction(1)] * 2})
        for path in ("/model", "/healthz"):
            client.get(path)
            client.get(path, headers={"X-API-Key": "wrong"})
    finally:
        client.event_hooks = {"response": []}
    declared = _declared(client.get("/openapi.json").json())
    for route, statuses in observed.items():
        assert statuses <= declared[route], (route, statuses - declared[route])
    errors = {400, 415, 422, 503} | ({401} if api.service.api_key else set())
    assert observed["POST /predict"] == observed["POST /predict/batch"] == errors
    assert observed["GET /model"] == (errors & {401, 503})
    assert observed["GET /healthz"] == {503}


def test_the_openapi_states_the_rules_the_server_enforces(api):
    spec = api.client.get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    keyed = api.service.api_key is not None
    for path, method in [("/predict", "post"), ("/predict/batch", "post"), ("/model", "get")]:
        operation = spec["paths"][path][method]
        assert ("security" in operation) is keyed, path
        assert ("401" in operation["responses"]) is keyed, path
        for status, answer in operation["responses"].items():
            schema = answer["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
            if status != "200":
                assert schema == ("Invalid" if status == "422" else "Error"), (path, status)
    assert ("securitySchemes" in spec.get("components", {})) is keyed
    assert "security" not in spec["paths"]["/healthz"]["get"]
    assert schemas["Error"]["properties"]["detail"]["type"] == "string"
    assert schemas["Invalid"]["properties"]["detail"]["items"]["$ref"].endswith("/FieldError")
    transactions = schemas["BatchRequest"]["properties"]["transactions"]
    assert (transactions["minItems"], transactions["maxItems"]) == (1, MAX_ITEMS)
    assert "distinct transaction ids" in transactions["description"]
    fields = schemas["Transaction"]["properties"]
    assert "a year from 1971 to 2198" in fields["event_time"]["description"]
    assert "[1970-01-01, 2200-01-01) UTC" in fields["event_time"]["description"]
    assert fields["event_time"]["pattern"].startswith("^(197[1-9]|")
    assert fields["event_id"]["const"] == ""
    assert schemas["Transaction"]["additionalProperties"] is False
    [request_id] = spec["paths"]["/predict"]["post"]["parameters"]
    assert request_id["name"] == "x-request-id" and "1-128" in request_id["description"]
    description = spec["info"]["description"]
    for rule in ("**415**", "**400**", "NaN", "more than 200 levels", "4300 digits", "maxItems",
                 "strict", "models:/<name>/<version>"):  # fmt: skip
        assert rule in description, rule


# -- paths -------------------------------------------------------------------------------


def test_no_answer_carries_a_path_of_the_server(api, caplog):
    """The refused configurations name the model store by its absolute path; the answers
    name it ``models:/…`` (or ``<path>``), the log keeps the full text."""
    client, root = api.client, str(api.root)
    answers = []
    for valid in (True, False):
        _refuse(api.service, api.root, valid=valid)
        health = client.get("/healthz").json()
        refused = health["refused"]
        if valid:
            assert refused["model_uri"] == f"models:/fraud/{UNKNOWN_VERSION}"
            assert "has no complete version" in refused["reason"]
        else:
            assert refused["model_uri"] is None
            assert "<path>" in refused["reason"] and "invalid user_config" in refused["reason"]
        assert health["reason"].endswith(refused["reason"])
        answers.append(health)
        for method, path in [("GET", "/model"), ("GET", "/metrics"), ("GET", "/openapi.json"),
                             ("GET", "/docs"), ("GET", "/nope"), ("PUT", "/healthz")]:  # fmt: skip
            answers.append(client.request(method, path).text)
        with caplog.at_level(logging.ERROR, logger="driftloop_serving._http"):
            for route, (wrap, _) in ROUTES.items():
                answers.append(client.post(route, headers=JSON, content=wrap(_text())).json())
                for case in CASES:
                    answers.append(_send(client, route, case).text)
    text = json.dumps(answers)
    assert root not in text and "/tmp" not in text
    _refuse(api.service, api.root, valid=True)  # the module's other tests expect this one


def _serving(root: Path, **args: Any) -> tuple[Any, FraudServiceImpl]:
    """A fresh Feast repository (applied in this process) with one model, and a service
    serving it with ``args`` over the defaults (auth off: these tests are about scoring):
    (its settings, the service)."""
    from driftloop.settings import Settings
    from tests.integration import serving_support as support
    from tests.integration.monitor_support import apply_in_process

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(support, "apply_repo", apply_in_process)
        repo = support.feature_repo(
            Settings(kafka_bootstrap_servers=f"127.0.0.1:{closed_port()}"), root, "c."
        )
    version = support.put_model(repo, support.fraud_features(repo), seed=2, threshold=0.5)
    defaults = {**support.serve_args(repo), "auth": "off"}
    service = FraudServiceImpl(ServeArgs.model_validate({**defaults, **args}))
    service.reconfigure(support.user_config(version))
    return repo, service


def test_a_scoring_failure_is_a_503_whose_detail_stays_in_the_log(tmp_path, caplog):
    """A model that loaded, then an online store that fails under it (its table dropped):
    the answer names the exception's type and the request, the log keeps the message."""
    import sqlite3

    from tests.integration import serving_support as support

    repo, service = _serving(tmp_path)
    try:
        with TestClient(build_http(service)) as client:
            assert client.post("/predict", json=support.transaction(1)).status_code == 200
            online = sqlite3.connect(repo.state_dir / "feast" / "online.db")
            like = "SELECT name FROM sqlite_master WHERE name LIKE '%customer_aggregates'"
            [table] = [name for (name,) in online.execute(like)]
            online.execute(f'DROP TABLE "{table}"')
            online.commit()
            online.close()
            with caplog.at_level(logging.ERROR, logger="driftloop_serving._http"):
                r = client.post("/predict", json=support.transaction(2),
                                headers={"X-Request-ID": "broken-1"})  # fmt: skip
    finally:
        service.log.close(timeout_s=1)
        service._executor.shutdown(wait=False)
    assert r.status_code == 503, r.text
    detail = r.json()["detail"]
    assert "scoring failed (OperationalError)" in detail and "broken-1" in detail, detail
    assert "no such table" not in detail and str(tmp_path) not in detail
    assert "no such table" in caplog.text  # what the answer left out


# -- fuzzing -----------------------------------------------------------------------------


def test_schemathesis_with_every_check_finds_nothing(api):
    """Every check, positive and negative data, every phase; one 5xx allowed: the declared
    503 of a replica that cannot score. 4xx for every invalid request, 503 only for valid
    ones (``negative_data_rejection`` does not accept a 5xx here)."""
    headers = {"X-API-Key": KEY} if api.service.api_key else None
    config = contract.config(max_examples=150, headers=headers, server_errors=("503",))
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.client.app, config=config)
    report = contract.fuzz(schema)
    print(f"\n{report.requests} requests: {sorted(report.statuses.items())}")
    assert not report.errors, report.errors
    assert not report.failures, "\n".join(report.failures[:10])
    assert set(report.checks) == contract.all_checks(), contract.all_checks() - set(report.checks)
    assert report.requests >= 600, report.statuses
    routes = report.by_route()
    for route in ("POST /predict", "POST /predict/batch"):
        assert {400, 415, 422, 503} <= routes[route], (route, routes[route])
    assert 405 in routes["PUT /predict"] and 405 in routes["GET /predict/batch"]


def test_a_telemetry_backlog_is_bounded_and_counted(tmp_path):
    """With the telemetry thread held up, predictions beyond the log's capacity waiting for
    it are dropped and counted, and the answers do not wait for it."""
    import threading

    from tests.integration import serving_support as support

    _, service = _serving(tmp_path, log_queue_size=5)
    held = threading.Event()
    try:
        service.telemetry.submit(held.wait, 30)  # the telemetry thread is busy
        with TestClient(build_http(service)) as client:
            batch = {"transactions": [support.transaction(i) for i in range(3)]}
            for _ in range(4):  # 3 + 3 > 5: only the first batch waits for telemetry
                assert client.post("/predict/batch", json=batch).status_code == 200
            held.set()
            service.telemetry.submit(lambda: None).result(timeout=30)  # drained
            text = client.get("/metrics").text
    finally:
        held.set()
        service.log.close(timeout_s=1)
        service._executor.shutdown(wait=False)
    dropped = 'driftloop_serving_prediction_log_dropped_total{reason="telemetry_backlog"}'
    assert f"{dropped} 9.0" in text, text
    decided = [line for line in text.splitlines()
               if line.startswith("driftloop_serving_decisions_total{")]  # fmt: skip
    assert sum(float(line.rsplit(" ", 1)[1]) for line in decided) == 3.0  # the first batch
    assert service._backlog == 0


def test_the_fast_predict_path_answers_as_fastapi_does(tmp_path):
    """``POST /predict`` with and without its fast path (``_fast``), on one replica with a
    model and a key: an ordinary request is answered by the fast path with what FastAPI's
    route answers (status, media type, every field but the time taken); every other
    request goes to FastAPI and gets its answer; the metrics label both by route."""
    from tests.integration import serving_support as support

    _, service = _serving(tmp_path, auth=None, api_key=KEY)
    keyed = {"X-API-Key": KEY, "X-Request-Id": "same-id"}
    good = json.dumps(support.transaction(3)).encode()
    unknown = json.dumps(support.transaction(4, customer="nobody", merchant="nowhere")).encode()
    invalid = json.dumps({**support.transaction(5), "amount": "42.5"}).encode()
    requests: list[tuple[str, dict[str, str], bytes]] = [
        ("ordinary", {**keyed, **JSON}, good),
        ("unknown customer and merchant", {**keyed, **JSON}, unknown),
        ("charset parameter", {**keyed, "Content-Type": "Application/JSON; charset=utf-8"}, good),
        ("no request id", {"X-API-Key": KEY, **JSON}, good),
        ("no key", JSON, good),
        ("wrong key", {**keyed, "X-API-Key": "not-it", **JSON}, good),
        ("form body", {**keyed, "Content-Type": "application/x-www-form-urlencoded"}, good),
        ("no content type", keyed, good),
        ("not JSON", {**keyed, **JSON}, b"{"),
        ("NaN", {**keyed, **JSON}, good.replace(b"42.5", b"NaN")),
        ("invalid field", {**keyed, **JSON}, invalid),
        ("empty body", {**keyed, **JSON}, b""),
    ]
    fast_app, slow_app = build_http(service), build_http(service, fast_predict=False)
    try:
        with TestClient(fast_app) as fast, TestClient(slow_app) as slow:
            for name, headers, body in requests:
                a = fast.post("/predict", headers=headers, content=body)
                b = slow.post("/predict", headers=headers, content=body)
                assert a.status_code == b.status_code, (name, a.text, b.text)
                assert a.headers["content-type"] == b.headers["content-type"], name
                answer, reference = a.json(), b.json()
                if a.status_code == 200:
                    assert reference.pop("latency_ms") >= 0 and answer.pop("latency_ms") >= 0
                    if "X-Request-Id" not in headers:  # each made its own
                        assert answer.pop("request_id") != reference.pop("request_id")
                    ages = [answer.pop("feature_ages_s"), reference.pop("feature_ages_s")]
                    assert ages[0].keys() == ages[1].keys(), name
                    for age, then in [*zip(ages[0].values(), ages[1].values(), strict=True),
                                      (answer.pop("feature_age_s"),
                                       reference.pop("feature_age_s"))]:  # fmt: skip
                        # scored a moment apart: their features a moment older
                        assert (age is None) == (then is None), name
                        assert age is None or abs(age - then) < 5, name
                assert answer == reference, name
            service.telemetry.flush(10)
            text = fast.get("/metrics").text
    finally:
        service.log.close(timeout_s=1)
        service._executor.shutdown(wait=False)
    assert fast_app.state.fast_predict == {"fast": 4, "fastapi": 8}
    assert slow_app.state.fast_predict == {"fast": 0, "fastapi": 0}
    # both apps count into the one registry: 4 + 4 answered, by the route's path
    assert 'driftloop_serving_requests_total{route="/predict",status="200"} 8.0' in text, text
