"""A canary version declared in ``user_config`` beside the serving one, on the running
Ray Serve and the real broker: the payments of a stable fraction of customers are
answered by the canary (each customer by one version, whatever the request shape), its
answers are exactly what it gives when it serves alone, the rest exactly the serving
version's, and the prediction log holds one prediction per payment with the role and
version that answered it. The replicas' split is computed again here, in another
process, with ``in_canary``."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from driftloop_serving import in_canary

from driftloop.events import Prediction
from tests.integration import serving_support as support

pytestmark = pytest.mark.timeout(240)
FRACTION = 0.3


def _payments() -> list[dict[str, Any]]:
    """Two payments of each known customer and one of six unknown ones, at fixed times
    (every feature repeatable), the customers' payments apart in the order."""
    at = datetime.now(UTC) - timedelta(minutes=5)
    customers = [*support.CUSTOMERS, *support.CUSTOMERS, *(f"new-{i}" for i in range(6))]
    return [
        support.transaction(i, customer=c, merchant=f"m{i % 3}", amount=5.0 + 37.0 * i,
                            event_time=(at + timedelta(seconds=i)).isoformat())
        for i, c in enumerate(customers)
    ]  # fmt: skip


def _answers(app: Any, payments: list[dict[str, Any]], tag: str) -> dict[str, dict[str, Any]]:
    """{transaction id: answer}: the first five one per call (scored inline), the rest in
    batches of the app's limit; every request id starts with ``tag``."""
    got: dict[str, dict[str, Any]] = {}
    with httpx.Client(base_url=app.url, headers=app.headers, timeout=30) as client:
        for i, body in enumerate(payments[:5]):
            r = client.post("/predict", json=body, headers={"X-Request-Id": f"{tag}-{i}"})
            assert r.status_code == 200, r.text
            got[body["transaction_id"]] = r.json()
        rest = payments[5:]
        for k in range(0, len(rest), app.max_items):
            r = client.post("/predict/batch", json={"transactions": rest[k : k + app.max_items]},
                            headers={"X-Request-Id": f"{tag}-batch{k}"})  # fmt: skip
            assert r.status_code == 200, r.text
            for answer in r.json()["predictions"]:
                got[answer["transaction_id"]] = answer
    return got


def _given(answers: dict[str, dict[str, Any]]) -> dict[str, tuple[str, float, bool]]:
    return {t: (a["model_version"], a["score"], a["decision"]) for t, a in answers.items()}


def _logged(settings: Any, tag: str, want: int) -> list[Prediction]:
    return support.read_predictions(settings, want, lambda p: p.request_id.startswith(f"{tag}-"))


def test_a_canary_answers_its_customers_and_the_serving_version_the_rest(serving_world,
                                                                         fraud_app):  # fmt: skip
    v1, v2 = serving_world.v1, serving_world.v2
    payments = _payments()
    customer = {p["transaction_id"]: p["customer_id"] for p in payments}
    alone_v1 = _given(_answers(fraud_app, payments, f"v1-{uuid.uuid4().hex[:6]}"))
    fraud_app.deploy(support.user_config(v2))
    alone_v2 = _given(_answers(fraud_app, payments, f"v2-{uuid.uuid4().hex[:6]}"))

    fraud_app.deploy(support.user_config(
        v1, canary_uri=f"models:/{v2.name}/{v2.version}", canary_digest=v2.sha256,
        canary_fraction=FRACTION,
    ))  # fmt: skip
    info = httpx.get(f"{fraud_app.url}/model", headers=fraud_app.headers, timeout=30).json()
    assert info["model_version"] == v1.version and info["shadow"] is None
    assert info["canary"]["model_version"] == v2.version
    assert info["canary"]["fraction"] == FRACTION and info["canary_refused"] is None
    tag = f"canary-{uuid.uuid4().hex[:6]}"
    answered = _given(_answers(fraud_app, payments, tag))

    picked = {t for t, c in customer.items() if in_canary(c, FRACTION)}
    assert 0 < len(picked) < len(payments)  # both sides answered something
    assert picked & {p["transaction_id"] for p in payments[:5]}  # a single call, too
    assert set(answered) == set(customer)
    for tid, given in answered.items():
        assert given == (alone_v2 if tid in picked else alone_v1)[tid], tid
    by_customer: dict[str, set[str]] = {}
    for tid, (version, _, _) in answered.items():
        by_customer.setdefault(customer[tid], set()).add(version)
    assert all(len(versions) == 1 for versions in by_customer.values())

    logged = _logged(serving_world.settings, tag, want=len(payments))
    assert len(logged) == len(payments)  # one prediction per payment, no more
    assert {p.transaction_id for p in logged} == set(customer)
    for p in logged:
        version, score, decision = answered[p.transaction_id]
        role = "canary" if p.transaction_id in picked else "serving"
        assert (p.role, p.model_version) == (role, version), p
        assert (p.score, p.decision) == (score, decision)
    answers_v2 = support.metric(fraud_app.url,
                                f'driftloop_serving_canary_answers_total{{version="{v2.version}"}}',
                                at_least=len(picked))  # fmt: skip
    assert answers_v2 >= len(picked)

    # without the canary in user_config, every customer is the serving version's again
    fraud_app.deploy(support.user_config(v1))
    assert _given(_answers(fraud_app, payments, f"after-{uuid.uuid4().hex[:6]}")) == alone_v1


def test_a_canary_that_cannot_load_is_refused_and_its_customers_served(serving_world,
                                                                         fraud_app):  # fmt: skip
    v1, gone = serving_world.v1, serving_world.gone
    fraud_app.deploy(support.user_config(
        v1, canary_uri=f"models:/{gone.name}/{gone.version}", canary_digest=gone.sha256,
        canary_fraction=0.5,
    ))  # fmt: skip
    info = httpx.get(f"{fraud_app.url}/model", headers=fraud_app.headers, timeout=30).json()
    assert info["model_version"] == v1.version and info["refused"] is None
    assert info["canary"] is None and info["canary_refused"]["model_digest"] == gone.sha256
    payments = _payments()
    answered = _given(_answers(fraud_app, payments, f"refused-{uuid.uuid4().hex[:6]}"))
    assert {version for version, _, _ in answered.values()} == {v1.version}
