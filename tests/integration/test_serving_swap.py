"""Model swaps in place under load, refusals that keep the loaded model, and a replica
that has no model or no Kafka — on the running Ray Serve."""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from driftloop_serving import API_KEY_ENV, ModelRefused, ModelSlot

from tests.integration import security_support as sec
from tests.integration import serving_support as support

pytestmark = pytest.mark.timeout(180)


def test_swap_under_load_fails_no_request(serving_world, fraud_app):
    url = fraud_app.url
    v1, v2 = serving_world.v1.version, serving_world.v2.version
    loaded_before = support.metric(url, 'driftloop_serving_model_loads_total{outcome="loaded"}')
    with support.Load(f"{url}/predict", headers=fraud_app.headers) as load:
        load.wait_for(v1, 20)
        fraud_app.deploy(support.user_config(serving_world.v2))
        load.wait_for(v2, 20)
    answers = load.answers
    failed = [a for a in answers if a.status != 200]
    assert not failed, failed[:5]
    assert {a.version for a in answers} == {v1, v2}
    # Once an answer from v2 has come back, no request sent after it is answered by v1.
    # (Ordered by when answers were read, a v1 answer may still arrive after a v2 one: it
    # was scored first but its thread read it later.)
    first_v2 = min(a.at for a in answers if a.version == v2)
    late = [a for a in answers if a.version == v1 and a.sent > first_v2]
    assert not late, f"v1 answered {len(late)} requests sent after v2 had answered"
    # In place: the same replica loaded one more model (a new replica would count 1).
    loaded = 'driftloop_serving_model_loads_total{outcome="loaded"}'
    assert support.metric(url, loaded, at_least=loaded_before + 1) == loaded_before + 1


def test_refused_versions_leave_the_loaded_model_serving(serving_world, fraud_app):
    url = fraud_app.url
    v1, v2, gone = serving_world.v1, serving_world.v2, serving_world.gone
    fraud_app.deploy(support.user_config(v2))
    wrong_digest = v1.sha256[:16] + "0" * 48  # names v1's version, not v1's bytes
    unknown = "f" * 64
    refusals = [
        ({"model_uri": f"models:/fraud/{v1.version}", "model_digest": wrong_digest},
         "sha256 mismatch"),
        (support.user_config(gone), "model.json"),  # its file is gone
        ({"model_uri": f"models:/fraud/sha256-{unknown[:16]}", "model_digest": unknown},
         "has no complete version"),
        ({"model_uri": "relative/path", "model_digest": unknown}, "invalid user_config"),
    ]  # fmt: skip
    refused_before = support.metric(url, 'driftloop_serving_model_loads_total{outcome="refused"}')
    with support.Load(f"{url}/predict", headers=fraud_app.headers) as load:
        load.wait_for(v2.version, 5)
        for config, reason in refusals:
            fraud_app.deploy(config)
            health = httpx.get(f"{url}/healthz", timeout=30).json()
            assert health["ready"] and health["model_version"] == v2.version
            assert health["refused"] is not None, config
            assert reason in health["refused"]["reason"], health["refused"]
        n = load.count(v2.version)
        load.wait_for(v2.version, n + 5)
    assert not [a for a in load.answers if a.status != 200]
    assert {a.version for a in load.answers} == {v2.version}
    refused = 'driftloop_serving_model_loads_total{outcome="refused"}'
    expected = refused_before + len(refusals)
    assert support.metric(url, refused, at_least=expected) == expected
    # Back to a good configuration: the refusal is cleared; a threshold alone needs no load.
    fraud_app.deploy(support.user_config(v2, threshold=0.9))
    info = httpx.get(f"{url}/model", headers=fraud_app.headers, timeout=30).json()
    assert info["refused"] is None and info["model_version"] == v2.version
    assert (info["threshold"], info["threshold_source"]) == (0.9, "user_config")


def test_a_replica_without_a_model_or_kafka_still_answers(serving_world):
    """Also: the API key from the replica's environment (how a real key gets there) guards
    every scoring route, whatever is wrong with it (security_support.assert_key_guards,
    formerly test_security's own application)."""
    from ray import serve

    settings = serving_world.settings
    name = support.app_name()
    args = support.serve_args(
        settings, kafka_bootstrap_servers=f"127.0.0.1:{support.closed_port()}", log_queue_size=4
    )
    url = f"{settings.serve_url}/{name}"
    key = uuid.uuid4().hex
    try:
        support.deploy(name, args, {}, env={API_KEY_ENV: key})
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=30) as client:
            r = client.post("/predict", json=support.transaction(1), headers={"X-API-Key": "no"})
            assert r.status_code == 401
            r = client.post("/predict", json=support.transaction(1))
            assert r.status_code == 503 and "no model loaded" in r.json()["detail"]
            health = client.get("/healthz")
            assert health.status_code == 503 and health.json()["ready"] is False
            assert client.get("/model").status_code == 503

            config = support.user_config(serving_world.v1)
            support.deploy(name, args, config, env={API_KEY_ENV: key})
            latencies = []
            for i in range(20):
                started = time.perf_counter()
                r = client.post("/predict", json=support.transaction(i))
                latencies.append(time.perf_counter() - started)
                assert r.status_code == 200, r.text
            assert max(latencies) < 2.0, latencies
            health = client.get("/healthz").json()
            assert health["ready"] and not health["prediction_log_connected"]
            assert health["prediction_log_queued"] == 4
            dropped = 'driftloop_serving_prediction_log_dropped_total{reason="queue_full"}'
            assert support.metric(url, dropped, at_least=16.0) == 16.0
        sec.assert_key_guards(url, key)
    finally:
        serve.delete(name)


def test_a_fresh_slot_refuses_to_start_on_a_bad_model_but_a_loaded_one_keeps_serving(
    serving_world,
):
    settings, v1, v2 = serving_world.settings, serving_world.v1, serving_world.v2
    bad = {"model_uri": f"models:/fraud/{v1.version}", "model_digest": v1.sha256[:16] + "0" * 48}

    fresh = ModelSlot(settings)
    fresh.apply({})  # no model configured: not ready, not an error
    assert fresh.active is None and fresh.refused is None
    with pytest.raises(ModelRefused, match="sha256 mismatch"):
        fresh.apply(bad)
    assert fresh.active is None

    slot = ModelSlot(settings)
    slot.apply(support.user_config(v1))
    assert slot.active is not None and slot.active.model.version == v1.version
    for config in (bad, {"model_uri": 3}, {}):
        slot.apply(config)
        assert slot.active.model.version == v1.version and slot.refused is not None
    slot.apply(support.user_config(v2))
    assert slot.active.model.version == v2.version and slot.refused is None
    assert slot.active.threshold == 0.4 and slot.active.threshold_source == "model"
