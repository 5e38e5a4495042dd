"""A shadow version declared in ``user_config`` beside the serving one, on the running Ray
Serve and the real broker: it never changes an answer, it scores every request on the
same rows (its scores are exactly what it gives when it serves), its predictions reach
the log with their version and role, and a shadow that cannot load is refused without
touching the serving model."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from driftloop.events import Prediction
from tests.integration import serving_support as support

pytestmark = pytest.mark.timeout(240)


def _payments(n: int) -> list[dict[str, Any]]:
    """Payments of known and unknown customers at fixed times (every feature repeatable)."""
    at = datetime.now(UTC) - timedelta(minutes=5)
    return [
        support.transaction(i, customer=support.CUSTOMERS[i % 7] if i % 5 else f"new-{i}",
                            merchant=f"m{i % 3}", amount=5.0 + 37.0 * i,
                            event_time=(at + timedelta(seconds=i)).isoformat())
        for i in range(n)
    ]  # fmt: skip


def _answers(app, payments: list[dict[str, Any]], tag: str) -> dict[str, tuple[float, bool]]:
    """{transaction id: (score, decision)}: the first five one per call, the rest in one
    batch; every request id starts with ``tag``."""
    got: dict[str, tuple[float, bool]] = {}
    with httpx.Client(base_url=app.url, headers=app.headers, timeout=30) as client:
        for i, body in enumerate(payments[:5]):
            r = client.post("/predict", json=body, headers={"X-Request-Id": f"{tag}-{i}"})
            assert r.status_code == 200, r.text
            got[body["transaction_id"]] = (r.json()["score"], r.json()["decision"])
        r = client.post("/predict/batch", json={"transactions": payments[5:]},
                        headers={"X-Request-Id": f"{tag}-batch"})  # fmt: skip
        assert r.status_code == 200, r.text
        for answer in r.json()["predictions"]:
            got[answer["transaction_id"]] = (answer["score"], answer["decision"])
    return got


def _logged(settings, tag: str, want: int) -> list[Prediction]:
    """The predictions of requests tagged ``tag``."""
    return support.read_predictions(settings, want, lambda p: p.request_id.startswith(f"{tag}-"))


def test_a_shadow_scores_every_request_and_never_changes_an_answer(serving_world, fraud_app):
    v1, v2 = serving_world.v1, serving_world.v2
    payments = _payments(21)  # 5 single calls and a batch of 16 (the app's limit)
    alone_v1 = _answers(fraud_app, payments, f"v1-{uuid.uuid4().hex[:6]}")
    fraud_app.deploy(support.user_config(v2))
    alone_v2 = _answers(fraud_app, payments, f"v2-{uuid.uuid4().hex[:6]}")

    fraud_app.deploy(support.user_config(
        v1, shadow_uri=f"models:/{v2.name}/{v2.version}", shadow_digest=v2.sha256
    ))  # fmt: skip
    info = httpx.get(f"{fraud_app.url}/model", headers=fraud_app.headers, timeout=30).json()
    assert info["model_version"] == v1.version
    assert info["shadow"]["model_version"] == v2.version
    assert info["shadow"]["model_digest"] == v2.sha256 and info["shadow_refused"] is None
    tag = f"shadowed-{uuid.uuid4().hex[:6]}"
    shadowed = _answers(fraud_app, payments, tag)
    assert shadowed == alone_v1  # the answers are the serving version's, exactly
    assert alone_v2 != alone_v1  # (and the shadow would have answered otherwise)

    logged = _logged(serving_world.settings, tag, want=2 * len(payments))
    serving = {p.transaction_id: p for p in logged if p.role == "serving"}
    shadow = {p.transaction_id: p for p in logged if p.role == "shadow"}
    assert len(logged) == 2 * len(payments)  # one of each per payment, no more
    assert set(serving) == set(shadow) == set(alone_v1)
    for tid, p in serving.items():
        assert p.model_version == v1.version and (p.score, p.decision) == alone_v1[tid]
        s = shadow[tid]
        assert s.model_version == v2.version and s.request_id == p.request_id
        assert (s.score, s.decision) == alone_v2[tid]  # its own threshold (0.4)
        assert s.features == p.features  # scored on the same rows
        assert s.event_id != p.event_id
    # a shadow counts in no serving metric, only in its own
    scored = support.metric(fraud_app.url,
                            'driftloop_serving_shadow_scores_total{outcome="scored"}',
                            at_least=len(payments))  # fmt: skip
    assert scored >= len(payments)


def test_a_shadow_that_cannot_load_is_refused_and_serving_goes_on(serving_world, fraud_app):
    v1, gone = serving_world.v1, serving_world.gone
    fraud_app.deploy(support.user_config(
        v1, shadow_uri=f"models:/{gone.name}/{gone.version}", shadow_digest=gone.sha256
    ))  # fmt: skip
    info = httpx.get(f"{fraud_app.url}/model", headers=fraud_app.headers, timeout=30).json()
    assert info["model_version"] == v1.version and info["refused"] is None
    assert info["shadow"] is None
    assert info["shadow_refused"]["model_digest"] == gone.sha256
    assert "model.json" in info["shadow_refused"]["reason"]
    tag = f"refused-{uuid.uuid4().hex[:6]}"
    payments = _payments(8)
    answers = _answers(fraud_app, payments, tag)
    logged = _logged(serving_world.settings, tag, want=len(payments))
    assert {p.role for p in logged} == {"serving"} and len(logged) == len(answers)
    # removing the shadow from user_config clears it
    fraud_app.deploy(support.user_config(v1))
    info = httpx.get(f"{fraud_app.url}/model", headers=fraud_app.headers, timeout=30).json()
    assert info["shadow"] is None and info["shadow_refused"] is None


def test_user_config_refuses_a_shadow_it_cannot_check(serving_world, fraud_app):
    """A shadow without its digest, one whose digest is another file's, one without a
    serving model and the serving model as its own shadow: refused as a whole config,
    the loaded model (and no shadow) kept."""
    v1, v2, gone = serving_world.v1, serving_world.v2, serving_world.gone
    shadow_uri = f"models:/{v2.name}/{v2.version}"
    bad = [
        (support.user_config(v1, shadow_uri=shadow_uri), "set together"),
        (support.user_config(v1, shadow_uri=shadow_uri, shadow_digest=gone.sha256),
         "shadow_digest is another file's"),
        ({"shadow_uri": shadow_uri, "shadow_digest": v2.sha256}, "without a serving model"),
        (support.user_config(v1, shadow_uri=f"models:/{v1.name}/{v1.version}",
                             shadow_digest=v1.sha256), "the serving model itself"),
    ]  # fmt: skip
    for config, reason in bad:
        fraud_app.deploy(config)
        health = httpx.get(f"{fraud_app.url}/healthz", timeout=30).json()
        assert health["model_version"] == v1.version
        assert reason in health["refused"]["reason"], (reason, health["refused"])
        info = httpx.get(f"{fraud_app.url}/model", headers=fraud_app.headers, timeout=30).json()
        assert info["shadow"] is None
