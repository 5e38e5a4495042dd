"""Faults and overload on the running Ray Serve: a replica's process killed under load,
and a request rate raised until Serve pushes back — real HTTP, real replicas.

Both tests share one application with the request limits that ship in serve.yaml (the
session's fraud app has Serve's defaults): two replicas for the kill, then one for the
ramp. What they take (recovery seconds, throughput ceiling) is measured by
bench/serving_ops.py."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from driftloop_serving import BATCH_FULL

from tests.integration import serving_support as support

MIN_SUCCESS = 0.99  # of calls, after the client's retries, while a replica is killed
RECOVERY_TIMEOUT_S = 90.0  # Serve starts a replacement replica within this
# The overload is of batches: a request of BATCH payments costs the replica ~BATCH times
# what it costs the proxy, so the replica's limits fill while the proxy (and the sender, on
# the same two cores) still keep up; with single payments the proxy saturated first, and
# every answer, refusal or not, waited seconds in its queue.
BATCH = 128
# open loop, batches per second; a replica scores ~5,000 payments a second here (~40
# batches), and its gate (max_batch_payments) fills within a step from 32-64/s
RATES = (4.0, 8.0, 16.0, 24.0, 32.0, 48.0, 64.0, 96.0)
STEP_S = 3.0
HARD_TIMEOUT_S = 15.0  # an answer later than this (or none) is a hang; > request_timeout_s
BACKPRESSURE_P50_S = 0.5  # how fast Serve says "no" to most: a 2-core machine shared by all
BACKPRESSURE_P99_S = 1.0  # ... and to nearly all, unless its proxy answers nothing faster


@dataclass(frozen=True)
class Limited:
    name: str
    url: str
    args: dict[str, Any]
    config: dict[str, Any]
    options: dict[str, Any]

    def scale(self, replicas: int) -> None:
        support.deploy(self.name, self.args, self.config, num_replicas=replicas, **self.options)


@pytest.fixture(scope="module")
def limited(serving_world) -> Iterator[Limited]:
    """An application of the fraud model with serve.yaml's request limits and two replicas,
    started together: the kill's (first in this file), scaled in place to one for the ramp
    (stopping a replica takes seconds, starting one the most of a test)."""
    from ray import serve

    settings = serving_world.settings
    name = support.app_name()
    app = Limited(name, f"{settings.serve_url}/{name}",
                  support.serve_args(settings, **support.shipped_gate()),
                  support.user_config(serving_world.v1), support.shipped_options())  # fmt: skip
    try:
        app.scale(2)
        yield app
    finally:
        serve.delete(name)  # only our own application


@pytest.mark.timeout(300)
def test_a_killed_replica_is_replaced_while_retried_calls_succeed(limited):
    name = limited.name
    limited.scale(2)
    before = support.replica_actors(name)
    assert len(before) == 2 and support.running_replicas(name) == 2, before
    with support.RetryingLoad(f"{limited.url}/predict", threads=4) as load:
        load.wait_for(50)
        victim, actor = sorted(before.items())[0]
        support.kill_replica_process(actor)
        killed = time.monotonic()
        deadline = killed + RECOVERY_TIMEOUT_S
        while True:
            alive = support.replica_actors(name)
            fresh = set(alive) - set(before)
            replaced = victim not in alive and fresh and len(alive) == 2
            if replaced and support.running_replicas(name) == 2:  # status read after actors
                break
            assert time.monotonic() < deadline, f"no replacement in {RECOVERY_TIMEOUT_S} s"
            time.sleep(0.2)
        [new] = fresh
        while not support.answered_by(
            name, new, alive[new].node_id, {c.request_id for c in load.calls if c.request_id}
        ):
            assert time.monotonic() < deadline, f"replacement {new} answered nothing"
            time.sleep(0.5)
        load.wait_for(load.succeeded() + 50)  # and the load carries on at two replicas
    calls = load.calls
    failed = [c for c in calls if c.status != 200]
    success = 1 - len(failed) / len(calls)
    assert success >= MIN_SUCCESS, failed[:5]
    after = support.replica_actors(name)
    assert len(after) == 2 and victim not in after and new in after
    assert support.running_replicas(name) == 2


def _batch(i: int) -> dict[str, Any]:
    return {"transactions": [support.transaction(i * BATCH + k) for k in range(BATCH)]}


def _summary(steps: list[support.Step], refusal: int) -> str:
    """Each step's rate asked and sent, and its answers' counts and seconds (p50/p99)."""
    lines = []
    for step in steps:
        parts = [f"{step.rate:g}/s asked, {step.sent:.0f}/s sent"]
        for status in sorted({s.status for s in step.shots}):
            seconds = step.seconds(status)
            parts.append(f"{status}: {len(seconds)}, p50 {support.quantile(seconds, 0.5):.3f} s,"
                         f" p99 {support.quantile(seconds, 0.99):.3f} s")  # fmt: skip
        lines.append("; ".join(parts))
    return "\n".join(lines)


@pytest.mark.timeout(240)
def test_overload_is_refused_fast_and_nothing_hangs(limited):
    options = limited.options
    limit = options.get("max_queued_requests", -1)
    assert limit >= 1, "serve.yaml must bound FraudService's queue (max_queued_requests)"
    refusal = int(options.get("backpressure_config", {}).get("status_code", 503))
    limited.scale(1)
    steps, recovery = asyncio.run(support.ramp(limited.url, refusal, RATES, STEP_S, HARD_TIMEOUT_S,
                                               path="/predict/batch", body=_batch))  # fmt: skip
    shots = [s for step in steps for s in step.shots]
    refused = [s for s in shots if s.status == refusal]
    assert refused, f"no {refusal} up to {RATES[-1]:g} requests/s"
    unexpected = [s for s in shots if s.status not in (200, refusal, 408)]  # 408: Serve's
    assert not unexpected, unexpected[:5]  # no 500, no client timeout: nothing hung
    assert max(s.seconds for s in shots) < HARD_TIMEOUT_S
    # Refusals at the limits, not the app's "no model" 503: the replica's gate on the
    # payments of the batches in flight (before a body is read) refuses first; Serve's own
    # (its request limits) only if the gate's refusals themselves wait for a slot.
    gate = json.dumps({"detail": BATCH_FULL})
    for s in refused:
        assert s.body in (gate, "Request dropped due to backpressure"), s.body
    # Refused instead of queued: with the replica's payments in flight at the budget, most
    # refusals are quick, and nearly all no slower than the slowest answer accepted at the
    # same step, which a refusal that waited for a slot would be. (The tails of
    # single-payment overload, where the proxy saturates first, are measured by
    # bench/serving_ops.py.)
    shown = _summary(steps, refusal)
    assert any(s.body == gate for s in refused), shown
    refused_s = [s.seconds for s in refused]
    accepted_s = steps[-1].seconds(200)
    assert support.quantile(refused_s, 0.5) < BACKPRESSURE_P50_S, shown
    bound = max(BACKPRESSURE_P99_S, max(accepted_s, default=0.0))
    assert support.quantile(refused_s, 0.95) < bound, shown
    assert recovery.shots and {s.status for s in recovery.shots} == {200}, recovery.shots[:5]
    print(shown)
