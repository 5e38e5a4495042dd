"""The fraud app on Ray Serve when something changes, with the figures the serving tests
assert bounds on (or nothing about), each against a baseline measured in the same run:

* ``swap``: a model swap under load (seconds until the first v2 answer, failed requests)
  against a redeploy that changes nothing (Serve's own round trip);
* ``kill``: a replica's process killed under retried load with serve.yaml's request
  limits (seconds until the replacement is RUNNING and answering, first-attempt failures)
  against the seconds a fresh deploy took to bring its replicas up;
* ``overload``: an open-loop ramp until Serve refuses (the ceiling of answers 200 per
  second, the first refusing rate, the refusals' p99) against one closed-loop sender;
* ``log_outage``: Kafka cut off behind a SOCKS proxy, in process (the prediction log) and
  in a replica (/healthz): seconds until the outage is noticed and until logging is back,
  against the seconds the log took to connect at start; answer p50 while cut off against
  p50 while connected.

Needs the stack (`make up`); requests carry the stack's API key. Uses its own topics,
Feast repo, model store and Serve application, all removed at the end."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx

from bench._common import percentiles, record
from driftloop.events import Prediction
from driftloop.kafka import connect_admin, ensure_topics
from driftloop.settings import TOPICS, Settings
from tests.integration import serving_support as support

RATES = (25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0, 800.0)
STEP_S = 3.0
DEADLINE_S = 15.0


def until(condition: Callable[[], bool], timeout_s: float, between: Callable[[], object]) -> float:
    """Seconds until ``condition()``, calling ``between()`` meanwhile (a request stream)."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout_s:
            raise TimeoutError(f"not within {timeout_s} s")
        between()
        time.sleep(0.1)
    return time.monotonic() - started


def swap(name: str, args: dict[str, Any], options: dict[str, Any], v1: Any, v2: Any, url: str
         ) -> dict[str, float]:  # fmt: skip
    with support.Load(f"{url}/predict") as load:
        load.wait_for(v1.version, 20)
        started = time.monotonic()
        support.deploy(name, args, support.user_config(v1), num_replicas=2, **options)
        noop_s = time.monotonic() - started
        started = time.monotonic()
        support.deploy(name, args, support.user_config(v2), num_replicas=2, **options)
        deployed_s = time.monotonic() - started
        load.wait_for(v2.version, 1)
        first_s = time.monotonic() - started
        load.wait_for(v2.version, 20)
    return {
        "requests": float(len(load.answers)),
        "failed": float(sum(a.status != 200 for a in load.answers)),
        "noop_deploy_s": noop_s,
        "swap_deploy_s": deployed_s,
        "first_v2_answer_s": first_s,
        "ratio_first_v2_over_noop_deploy": first_s / noop_s,
    }


def kill(name: str, url: str, deploy_s: float) -> dict[str, float]:
    before = support.replica_actors(name)
    with support.RetryingLoad(f"{url}/predict", threads=4) as load:
        load.wait_for(50)
        victim, actor = sorted(before.items())[0]
        support.kill_replica_process(actor)
        killed = time.monotonic()
        fresh: set[str] = set()
        while not (fresh and support.running_replicas(name) == 2):
            alive = support.replica_actors(name)
            fresh = set(alive) - set(before) if victim not in alive else set()
            time.sleep(0.2)
        running_s = time.monotonic() - killed
        [new] = fresh
        while not support.answered_by(
            name, new, alive[new].node_id, {c.request_id for c in load.calls if c.request_id}
        ):
            time.sleep(0.5)
        answered_s = time.monotonic() - killed
        load.wait_for(load.succeeded() + 50)
    calls = load.calls
    return {
        "calls": float(len(calls)),
        "first_attempt_failed": float(sum(c.first_status != 200 for c in calls)),
        "success": sum(c.status == 200 for c in calls) / len(calls),
        "slowest_call_s": max(c.seconds for c in calls),
        "most_attempts": float(max(c.attempts for c in calls)),
        "fresh_deploy_s": deploy_s,
        "replacement_running_s": running_s,
        "replacement_answering_s": answered_s,
        "ratio_replacement_running_over_fresh_deploy": running_s / deploy_s,
    }


async def _closed(url: str, seconds: float) -> float:
    headers = support.stack_headers()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=DEADLINE_S) as client:
        shots, _ = await support.closed_loop(client, "/predict", 1, seconds, DEADLINE_S)
    ok = [s for s in shots if s.status == 200]
    return len(ok) / seconds


def overload(url: str, refusal: int) -> dict[str, float]:
    closed = asyncio.run(_closed(url, STEP_S))
    steps, recovery = asyncio.run(support.ramp(url, refusal, RATES, STEP_S, DEADLINE_S))
    shots = [s for step in steps for s in step.shots]
    refused = [s.seconds for s in shots if s.status == refusal]
    ceiling = max(step.throughput() for step in steps)
    first = next((step.rate for step in steps if step.seconds(refusal)), float("nan"))
    out = {
        "closed_loop_c1_rps": closed,
        "ceiling_rps": ceiling,
        "first_refusing_rate": first,
        "refused": float(len(refused)),
        "timed_out_408": float(sum(s.status == 408 for s in shots)),
        "unanswered": float(sum(s.status == 0 for s in shots)),
        "refusal_p99_s": support.quantile(refused, 0.99),
        "recovery_ok_share": sum(s.status == 200 for s in recovery.shots) / len(recovery.shots),
        "ratio_ceiling_over_closed_loop_c1": ceiling / closed,
    }
    for step in steps:
        ok = step.seconds(200)
        out[f"step_{step.rate:g}_sent_rps"] = step.sent
        out[f"step_{step.rate:g}_ok_rps"] = step.throughput()
        out[f"step_{step.rate:g}_ok_p99_s"] = support.quantile(ok, 0.99)
    return out


def _event(i: int) -> Prediction:
    return Prediction(
        request_id=f"bench-{i}", transaction_id=f"t-{i}", model_name="fraud",
        model_version="sha256-0123456789abcdef", score=0.25, decision=False, threshold=0.5,
        features={"amount_to_mean_7d": 1.5}, latency_ms=3.0,
    )  # fmt: skip


def log_inprocess(settings: Settings) -> dict[str, float]:
    from driftloop_serving import PredictionLog

    port = support.closed_port()
    proxy = support.Socks5Proxy(port)
    log = PredictionLog(settings, capacity=1000, retry_s=0.2, linger_ms=5,
                        delivery_timeout_ms=3_000, proxy_url=proxy.url)  # fmt: skip
    n = 0
    slowest = 0.0

    def offer() -> None:
        nonlocal n, slowest
        n += 1
        started = time.perf_counter()
        log.offer([_event(n)])
        slowest = max(slowest, time.perf_counter() - started)

    log.start()
    try:
        connect_s = until(lambda: log.connected, 30, offer)
        proxy.close()
        noticed_s = until(lambda: not log.connected, 30, offer)
        proxy = support.Socks5Proxy(port)
        recovered_s = until(lambda: log.connected, 30, offer)
    finally:
        log.close(timeout_s=5)
        proxy.close()
    return {
        "connect_s": connect_s,
        "outage_noticed_s": noticed_s,
        "back_after_kafka_s": recovered_s,
        "dropped": float(sum(log.dropped.values())),
        "slowest_offer_ms": slowest * 1e3,
        "ratio_back_over_connect": recovered_s / connect_s,
    }


def log_replica(url: str, proxy_port: int, proxy: support.Socks5Proxy) -> dict[str, float]:
    latencies: list[float] = []
    with httpx.Client(base_url=url, headers=support.stack_headers(), timeout=30) as client:

        def predict() -> None:
            started = time.perf_counter()
            client.post("/predict", json=support.transaction(0)).raise_for_status()
            latencies.append(time.perf_counter() - started)

        def connected() -> bool:
            return bool(client.get("/healthz").json()["prediction_log_connected"])

        until(connected, 60, predict)
        latencies.clear()
        for _ in range(20):
            predict()
        connected_p50 = percentiles(latencies)["p50"]
        latencies.clear()
        proxy.close()
        noticed_s = until(lambda: not connected(), 60, predict)
        for _ in range(20):
            predict()
        cut = percentiles(latencies)
        proxy = support.Socks5Proxy(proxy_port)
        try:
            back_s = until(connected, 60, predict)
        finally:
            proxy.close()
        dropped = support.metric(
            url, 'driftloop_serving_prediction_log_dropped_total{reason="delivery_failed"}'
        )
    return {
        "p50_connected_ms": connected_p50 * 1e3,
        "p50_cut_off_ms": cut["p50"] * 1e3,
        "p99_cut_off_ms": cut["p99"] * 1e3,
        "outage_in_healthz_s": noticed_s,
        "back_after_kafka_s": back_s,
        "dropped": dropped,
        "ratio_p50_cut_off_over_connected": cut["p50"] / connected_p50,
    }


def main() -> None:
    from ray import serve

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-ops-"))
    base = Settings().model_copy(update={"topic_prefix": f"bench-{uuid.uuid4().hex[:6]}."})
    ensure_topics(base)
    settings = support.feature_repo(base, tmp, base.topic_prefix)
    spec = support.fraud_features(settings)
    v1 = support.put_model(settings, spec, seed=1, threshold=0.5)
    v2 = support.put_model(settings, spec, seed=2, threshold=0.4)
    support.connect_ray(settings)
    name = support.app_name()
    url = f"{settings.serve_url}/{name}"
    port = support.closed_port()
    proxy = support.Socks5Proxy(port)
    args = support.serve_args(settings, log_proxy_url=proxy.url, log_delivery_timeout_ms=6_000)
    options = support.shipped_options()
    refusal = int(options.get("backpressure_config", {}).get("status_code", 503))
    results: dict[str, dict[str, float]] = {}
    try:
        started = time.monotonic()
        support.deploy(name, args, support.user_config(v1), num_replicas=2, **options)
        deploy_s = time.monotonic() - started
        results["swap"] = swap(name, args, options, v1, v2, url)
        results["kill"] = kill(name, url, deploy_s)
        support.deploy(name, args, support.user_config(v2), num_replicas=1, **options)
        results["overload"] = overload(url, refusal)
        results["log_replica"] = log_replica(url, port, proxy)
        results["log_inprocess"] = log_inprocess(base)
    finally:
        proxy.close()
        serve.delete(name)
        admin = connect_admin(base)
        admin.delete_topics([base.topic(t) for t in TOPICS])
        admin.close()
    record(
        "serving_ops",
        {
            f"{part}_{key}": value
            for part, numbers in results.items()
            for key, value in numbers.items()
        },
    )


if __name__ == "__main__":
    main()
