"""Faults and overload on the running Ray Serve: a replica's process killed under load,
and a request rate raised until Serve pushes back — real HTTP, real replicas."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.integration import serving_support as support

SERVE_YAML = Path(__file__).resolve().parents[2] / "deploy" / "apps" / "fraud" / "serve.yaml"
DEPLOYMENT = "FraudService"
MIN_SUCCESS = 0.99  # of calls, after the client's retries, while a replica is killed
RECOVERY_TIMEOUT_S = 90.0  # Serve starts a replacement replica within this
RATES = (25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 600.0, 800.0)  # open loop, per second
STEP_S = 3.0
HARD_TIMEOUT_S = 15.0  # an answer later than this (or none) is a hang; > request_timeout_s
BACKPRESSURE_P99_S = 1.0  # how fast Serve must say "no": a 2-core machine shared by all


def shipped_request_timeout_s() -> float:
    """serve.yaml's ``http_options.request_timeout_s``: Serve-wide and read when Serve
    starts, so a test sends it per request (Serve's ``x-request-timeout-seconds``)."""
    return float(yaml.safe_load(SERVE_YAML.read_text())["http_options"]["request_timeout_s"])


def shipped_options() -> dict[str, Any]:
    """FraudService's request limits in deploy/apps/fraud/serve.yaml, so that the tests
    load the configuration that ships."""
    document = yaml.safe_load(SERVE_YAML.read_text())
    [app] = [a for a in document["applications"] if a["name"] == "fraud"]
    [deployment] = [d for d in app["deployments"] if d["name"] == DEPLOYMENT]
    keys = ("max_ongoing_requests", "max_queued_requests", "backpressure_config")
    return {k: deployment[k] for k in keys if k in deployment}


@pytest.fixture(scope="module")
def repo(settings, tmp_path_factory):
    repo = support.feature_repo(settings, tmp_path_factory.mktemp("faults"), settings.topic_prefix)
    version = support.put_model(repo, support.fraud_features(repo), seed=1, threshold=0.5)
    support.connect_ray(repo)
    return repo, version


def replica_actors(app: str) -> dict[str, Any]:
    """The app's live replica actors by replica id."""
    from ray.util.state import list_actors

    actors = list_actors(
        filters=[("class_name", "=", f"ServeReplica:{app}:{DEPLOYMENT}"), ("state", "=", "ALIVE")],
        detail=True,
    )
    return {str(a.name).rsplit("#", 1)[-1]: a for a in actors}


def running_replicas(app: str) -> int:
    from ray import serve
    from ray.serve._private.common import ReplicaState

    status = serve.status().applications.get(app)
    if status is None or DEPLOYMENT not in status.deployments:
        return 0
    return int(status.deployments[DEPLOYMENT].replica_states.get(ReplicaState.RUNNING, 0))


def answered_by(app: str, replica: str, node_id: str, request_ids: set[str]) -> bool:
    """Whether Serve's access log of ``replica`` shows one of ``request_ids`` answered."""
    from ray.util.state import get_log

    filename = f"serve/replica_{app}_{DEPLOYMENT}_{replica}.log"
    try:
        text = "".join(get_log(node_id=node_id, filename=filename, tail=-1, timeout=10))
    except Exception:  # the file appears with the replica's first line
        return False
    return any(f" {rid} -- POST /{app}/predict 200 " in text for rid in request_ids)


def kill_replica_process(actor: Any) -> None:
    """SIGKILL the replica's worker process (after checking that the pid is one)."""
    pid = int(actor.pid)
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    assert b"ServeReplica" in cmdline, (pid, cmdline)
    os.kill(pid, signal.SIGKILL)


def test_a_killed_replica_is_replaced_while_retried_calls_succeed(repo):
    from ray import serve

    settings, version = repo
    name = support.app_name()
    args = support.serve_args(settings)
    try:
        config = support.user_config(version)
        support.deploy(name, args, config, num_replicas=2, **shipped_options())
        before = replica_actors(name)
        assert len(before) == 2 and running_replicas(name) == 2, before
        with support.RetryingLoad(f"{settings.serve_url}/{name}/predict", threads=4) as load:
            load.wait_for(50)
            victim, actor = sorted(before.items())[0]
            kill_replica_process(actor)
            killed = time.monotonic()
            deadline = killed + RECOVERY_TIMEOUT_S
            while True:
                alive = replica_actors(name)
                fresh = set(alive) - set(before)
                replaced = victim not in alive and fresh and len(alive) == 2
                if replaced and running_replicas(name) == 2:  # status read after the actors
                    break
                assert time.monotonic() < deadline, f"no replacement in {RECOVERY_TIMEOUT_S} s"
                time.sleep(0.2)
            running_s = time.monotonic() - killed
            [new] = fresh
            while not answered_by(
                name, new, alive[new].node_id, {c.request_id for c in load.calls if c.request_id}
            ):
                assert time.monotonic() < deadline, f"replacement {new} answered nothing"
                time.sleep(0.5)
            answered_s = time.monotonic() - killed
            load.wait_for(load.succeeded() + 50)  # and the load carries on at two replicas
        calls = load.calls
        first_failed = [c for c in calls if c.first_status != 200]
        failed = [c for c in calls if c.status != 200]
        success = 1 - len(failed) / len(calls)
        slowest = max(c.seconds for c in calls)
        print(
            f"\nreplica kill: {len(calls)} calls, {len(first_failed)} first-attempt failures "
            f"({sorted({c.first_status for c in first_failed})}), {len(failed)} failed after "
            f"retries, success {success:.2%}; replacement RUNNING after {running_s:.1f} s, "
            f"answering after {answered_s:.1f} s; slowest call {slowest:.2f} s, most attempts "
            f"{max(c.attempts for c in calls)}"
        )
        assert success >= MIN_SUCCESS, failed[:5]
        after = replica_actors(name)
        assert len(after) == 2 and victim not in after and new in after
        assert running_replicas(name) == 2
    finally:
        serve.delete(name)


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@dataclass(frozen=True)
class Step:
    rate: float
    shots: list[support.Shot]
    sent: float  # the rate actually sent

    def seconds(self, status: int) -> list[float]:
        return [s.seconds for s in self.shots if s.status == status]

    def throughput(self) -> float:
        """Answers 200 per second, from the step's start to its last answer."""
        ok = [s for s in self.shots if s.status == 200]
        return len(ok) / max((s.sent_s + s.seconds for s in ok), default=1.0)

    def line(self, refusal: int) -> str:
        ok, refused = self.seconds(200), self.seconds(refusal)
        return (
            f"{self.rate:5.0f}/s (sent {self.sent:5.1f}/s): {len(ok):4d} x 200 "
            f"= {self.throughput():5.1f}/s, p50 {_quantile(ok, 0.5) * 1000:5.0f} ms, "
            f"p99 {_quantile(ok, 0.99) * 1000:5.0f} ms | {len(refused):4d} x {refusal}, "
            f"p50 {_quantile(refused, 0.5) * 1000:4.0f} ms, "
            f"p99 {_quantile(refused, 0.99) * 1000:4.0f} ms"
        )


async def _ramp(url: str, refusal: int) -> tuple[list[Step], Step]:
    """Open-loop steps of rising rate up to the first step with refusals (beyond it the
    sender and the proxy, on the same two cores, would measure each other); then a low
    rate again."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    steps: list[Step] = []
    timeout = {"x-request-timeout-seconds": str(shipped_request_timeout_s())}
    async with httpx.AsyncClient(
        base_url=url, headers=timeout, timeout=HARD_TIMEOUT_S, limits=limits
    ) as client:
        for rate in RATES:
            if steps and steps[-1].seconds(refusal):
                break
            steps.append(
                Step(
                    rate, *await support.open_loop(client, "/predict", rate, STEP_S, HARD_TIMEOUT_S)
                )
            )
        recovery = Step(10, *await support.open_loop(client, "/predict", 10, 2, HARD_TIMEOUT_S))
    return steps, recovery


def test_overload_is_refused_fast_and_nothing_hangs(repo):
    from ray import serve

    settings, version = repo
    options = shipped_options()
    limit = options.get("max_queued_requests", -1)
    assert limit >= 1, "serve.yaml must bound FraudService's queue (max_queued_requests)"
    refusal = int(options.get("backpressure_config", {}).get("status_code", 503))
    name = support.app_name()
    try:
        support.deploy(name, support.serve_args(settings), support.user_config(version), **options)
        steps, recovery = asyncio.run(_ramp(f"{settings.serve_url}/{name}", refusal))
    finally:
        serve.delete(name)

    first = next((s.rate for s in steps if s.seconds(refusal)), None)
    ceiling = max(s.throughput() for s in steps)
    print(f"\nbackpressure, 1 replica, {options}, open-loop {STEP_S:g} s steps:")
    for step in [*steps, recovery]:
        print("  " + step.line(refusal))
    print(f"  refusals from {first}/s on; at most {ceiling:.1f} answers 200/s")
    shots = [s for step in steps for s in step.shots]
    refused = [s for s in shots if s.status == refusal]
    assert refused, f"no {refusal} up to {RATES[-1]:g} requests/s"
    timed_out = [s for s in shots if s.status == 408]  # Serve's request_timeout_s
    hung = [s for s in shots if s.status == 0]
    print(
        f"  {len(timed_out)} answered 408 by Serve, {len(hung)} unanswered in {HARD_TIMEOUT_S:g} s"
    )
    unexpected = [s for s in shots if s.status not in (200, refusal, 408)]
    assert not unexpected, unexpected[:5]  # no 500, no client timeout: nothing hung
    assert max(s.seconds for s in shots) < HARD_TIMEOUT_S
    for s in refused:  # Serve's own refusal at the configured limit, not the app's 503
        assert "backpressure" in s.body and f"max_queued_requests={limit})" in s.body, s.body
    assert _quantile([s.seconds for s in refused], 0.99) < BACKPRESSURE_P99_S
    assert recovery.shots and {s.status for s in recovery.shots} == {200}, recovery.shots[:5]
