"""Security guarantees of the running local stack and of the scoring service, checked on
the real thing: the sockets the kernel reports, real unauthenticated calls to Ray, the
session's shared Serve application and model store (serving_worlds.py).

Already proven elsewhere (not repeated here): Kafka, dashboard and Serve ports on loopback
and the dashboard's 401 on /api/version (test_stack.py); a wrong declared digest refused
while the old model serves, and a key in the replica's DRIFTLOOP_SERVE_API_KEY on every
scoring route (test_serving_swap.py, with security_support.assert_key_guards); the key's
file made once, 0600, shown by `driftloop status` by its fingerprint only
(tests/unit/test_apikey.py, test_stack.py); flipped
bytes and default-protocol pickles refused by the store itself
(tests/unit/test_model_store.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from driftloop.models import LoadedModel, ModelStore, RefusedModel
from driftloop.raycluster import auth_token
from driftloop.settings import Settings
from tests.integration import contract_support as contract
from tests.integration import security_support as sec
from tests.integration import serving_support as support

ROOT = Path(__file__).resolve().parents[2]
SERVICE_METRICS = {"stream": 9101, "monitor": 9102, "trigger": 9103, "sync": 9104}
FUZZ_CASES = 1_000  # requests at least (coverage cases, then valid and invalid fuzzed ones)
SENDERS = 4  # schemathesis workers: requests in flight at once


# -- ports -------------------------------------------------------------------------------


def test_every_client_facing_port_that_listens_is_on_loopback_only(base_settings):
    s = base_settings
    required = {
        "kafka": s.kafka_port,
        "kafka controller": s.kafka_controller_port,
        "ray dashboard + job API": s.ray_dashboard_port,
        "ray serve": s.serve_port,
        "ray serve ingress metrics": s.serve_ingress_metrics_port,
        "ray serve ingress stats": s.serve_ingress_stats_port,
    }
    optional = {f"{name} metrics": port for name, port in SERVICE_METRICS.items()}
    optional["prometheus"] = s.prometheus_port
    seen = sec.listeners()
    report = {}
    for name, port in {**required, **optional}.items():
        if port not in seen:
            assert name not in required, f"{name} is not listening on {port}"
            report[name] = f"{port}: not running"
            continue
        bound = set().union(*seen[port].values())
        report[name] = f"{port}: {sorted(bound)}"
        assert bound == {"127.0.0.1"}, f"{name} listens on {bound}"
    print("\n" + "\n".join(f"  {k:24} {v}" for k, v in report.items()))


def test_serve_s_haproxy_and_its_replicas_listen_on_loopback_only(base_settings, fraud_app):
    """Serve's ingress is HAProxy, which forwards to each replica's own HTTP port: neither
    may listen off loopback (Ray's template binds HAProxy's exporter and stats page to every
    interface; deploy/local/haproxy-loopback rebinds them)."""
    from ray.serve._private.constants import (  # where replicas take their HTTP ports
        RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT,
        RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT,
    )

    replica_ports = range(RAY_SERVE_DIRECT_INGRESS_MIN_HTTP_PORT,
                          RAY_SERVE_DIRECT_INGRESS_MAX_HTTP_PORT + 1)  # fmt: skip
    ray = sec.ray_processes(base_settings.ray_port)
    found: dict[str, set[str]] = {}
    for port, owners in sec.listeners().items():
        for pid, addresses in owners.items():
            process = ray.get(pid) if pid is not None else None
            name = (process.cmdline() or [process.name()])[0] if process is not None else ""
            # a replica's other ports are Ray's own, under the cluster token (the test below)
            replica = name.startswith("ray::ServeReplica") and port in replica_ports
            if name.endswith("haproxy") or replica:
                found[f"{name} {port}"] = addresses
    assert any("haproxy" in k for k in found), f"no HAProxy among the head's processes: {found}"
    assert any("ServeReplica" in k for k in found), f"no replica listens: {found}"
    off = {k: v for k, v in found.items() if v != {"127.0.0.1"}}
    assert not off, off
    print("\n" + "\n".join(f"  {k:40} {sorted(v)}" for k, v in sorted(found.items())))


def _service_env(settings: Settings, root: Path, port: int) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("DRIFTLOOP_")}
    return {
        **clean,
        "DRIFTLOOP_STATE_DIR": str(root / "state"),
        "DRIFTLOOP_TOPIC_PREFIX": settings.topic_prefix,
        "DRIFTLOOP_FEATURE_ENV": "local",
        "DRIFTLOOP_FEATURE_DATA_URI": str(root / "features"),
        "DRIFTLOOP_MODEL_STORE_URI": str(root / "models"),
        "DRIFTLOOP_STREAM_METRICS_PORT": str(port),
        "DRIFTLOOP_MONITOR_METRICS_PORT": str(port),
        "DRIFTLOOP_TRIGGER_METRICS_PORT": str(port),
        "DRIFTLOOP_TRIGGER_GROUP": f"security-{uuid.uuid4().hex[:6]}",
    }


@pytest.mark.parametrize("service", ["stream", "monitor", "trigger"])
def test_a_started_service_serves_metrics_on_loopback_only(settings, tmp_path, service):
    """The real service binary, on this session's topics and a free port (its default port
    may belong to the demo): the socket it opens, as the kernel lists it. The sync service
    is not started here (it takes over Serve); its metrics use the same ``serve_metrics``."""
    port = support.closed_port()
    env = _service_env(settings, tmp_path, port)
    module = f"driftloop_{service}.cli"
    log = tmp_path / f"{service}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", module, "run", "--exit-when-idle", "60"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        bound: set[str] = set()
        while time.monotonic() < deadline and not bound:
            assert proc.poll() is None, f"{service} exited: {log.read_text()[-2000:]}"
            bound = sec.listeners().get(port, {}).get(proc.pid, set())
            time.sleep(0.2)
        assert bound, f"{service} never listened on {port}: {log.read_text()[-2000:]}"
        assert bound == {"127.0.0.1"}, f"{service} metrics listen on {bound}"
        body = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
        assert "# HELP" in body
        print(f"\n{service}: metrics port {port} bound to {sorted(bound)}")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_ray_ports_reachable_off_loopback_refuse_work_without_the_token(base_settings):
    """Ray binds its gRPC servers (GCS, raylet, workers, agents) on every interface. Each
    Ray port that is reachable at a non-loopback address is called without the token: a
    gRPC server must answer UNAUTHENTICATED (or not have the method), an HTTP server 401 or
    403; a Prometheus exporter must only serve metrics. Anything else fails."""
    token = auth_token(base_settings)
    assert token
    procs = sec.ray_processes(base_settings.ray_port)
    verdicts = []
    for port, owners in sorted(sec.listeners().items()):
        for pid, bound in owners.items():
            if pid not in procs or bound <= sec.LOOPBACK:
                continue
            try:
                name = procs[pid].name()
            except Exception:  # the process (an idle worker) went away meanwhile
                continue
            verdicts.append(sec.judge_port(port, name, bound))
    lines = [f"  {v.port:>5} {v.process[:36]:36} {sorted(v.bound)!s:34} {v.kind}" for v in verdicts]
    print("\nRay ports off loopback:\n" + "\n".join(lines))
    assert verdicts, "no Ray port off loopback: the premise changed, revisit this test"
    open_ = [v for v in verdicts if v.kind.endswith("OPEN")]
    assert not open_, [(v.port, v.process, v.detail) for v in open_]
    kinds = Counter(v.kind for v in verdicts)
    print(f"  verdicts: {dict(kinds)}")
    for v in verdicts:
        if v.kind == "metrics-read-only":
            print(f"  FINDING: {v.port} ({v.process}) serves Ray metrics to anyone: {v.detail}")
    # The GCS is the cluster's front door: refused without the token, served with it.
    gcs = sec.reachable_address(sec.addresses(base_settings.ray_port))
    without = sec.grpc_codes(gcs, base_settings.ray_port)
    with_token = sec.grpc_codes(gcs, base_settings.ray_port, token)
    method = "/ray.rpc.NodeInfoGcsService/GetAllNodeInfo"
    assert (without[method], with_token[method]) == ("UNAUTHENTICATED", "OK")
    wrong = sec.grpc_codes(gcs, base_settings.ray_port, uuid.uuid4().hex)
    assert wrong[method] == "UNAUTHENTICATED"
    # Every port must be proven: a gRPC port none of whose probed methods exist is unproven.
    unproven = [v for v in verdicts if v.kind == "unproven"]
    assert not unproven, [(v.port, v.process, v.detail) for v in unproven]


def _job_body(marker: Path) -> dict[str, object]:
    return {
        "entrypoint": sec.touch_command(marker),
        "submission_id": f"security-{uuid.uuid4().hex[:10]}",
        "entrypoint_num_cpus": 0,
    }


def test_a_job_submitted_without_the_token_is_refused_and_never_runs(base_settings, tmp_path):
    token = auth_token(base_settings)
    dashboard = base_settings.dashboard_url
    agent_ports = [
        port
        for port, owners in sec.listeners().items()
        for pid, bound in owners.items()
        if pid in sec.ray_processes(base_settings.ray_port)
        and bound - sec.LOOPBACK
        and sec.judge_port(port, "?", bound).kind == "http-token"
    ]
    marker = tmp_path / "job-ran"
    with httpx.Client(timeout=30) as client:
        refused = []
        for headers, expected in (
            ({}, 401),
            ({"Authorization": f"Bearer {uuid.uuid4().hex}"}, 403),
        ):
            body = _job_body(marker)
            r = client.post(f"{dashboard}/api/jobs/", json=body, headers=headers)
            assert r.status_code == expected, (r.status_code, r.text)
            refused.append(body["submission_id"])
        # Other calls that would read or change the cluster: all 401 without the token.
        for method, path, payload in [
            ("GET", "/api/jobs/", None),
            ("GET", "/api/serve/applications/", None),
            ("PUT", "/api/serve/applications/", {"applications": "not-a-list"}),
            ("GET", "/api/v0/actors", None),
            ("GET", "/nodes?view=summary", None),
            ("GET", "/logical/actors", None),
        ]:
            r = client.request(method, f"{dashboard}{path}", json=payload)
            assert r.status_code == 401, (method, path, r.status_code, r.text[:200])
        # The job agent (reached at the node's address, not only via the dashboard).
        for port in agent_ports:
            address = sec.reachable_address(sec.addresses(port))
            r = client.post(f"http://{address}:{port}/api/job_agent/jobs/", json=_job_body(marker))
            assert r.status_code == 401, (port, r.status_code, r.text[:200])
        assert sec.never_appears(marker, 5), "a job submitted without the token ran"
        auth = {"Authorization": f"Bearer {token}"}
        known = {
            j["submission_id"] for j in client.get(f"{dashboard}/api/jobs/", headers=auth).json()
        }
        assert not set(refused) & known

        # The control: the same submission with the token runs (so the refusal was the token's).
        control = _job_body(marker)
        r = client.post(f"{dashboard}/api/jobs/", json=control, headers=auth)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 120
        status = ""
        while time.monotonic() < deadline and status not in {"SUCCEEDED", "FAILED", "STOPPED"}:
            time.sleep(1)
            url = f"{dashboard}/api/jobs/{control['submission_id']}"
            status = client.get(url, headers=auth).json()["status"]
        assert status == "SUCCEEDED" and marker.exists(), status
    print(f"\njob API: 401 without token, 403 with a wrong one, agent ports {agent_ports} 401; "
          "the same job with the token SUCCEEDED")  # fmt: skip


def test_ray_clients_without_the_token_cannot_connect(base_settings, tmp_path):
    """`ray job submit`, a driver's ``ray.init(address=<gcs>)`` and a Ray Client
    (``ray://``) in processes that cannot find the token: all fail, nothing runs."""
    env = sec.untokened_env(tmp_path)
    marker = tmp_path / "client-ran"
    gcs = f"{sec.reachable_address(sec.addresses(base_settings.ray_port))}:{base_settings.ray_port}"
    client_port = base_settings.ray_client_port
    client = f"ray://{sec.reachable_address(sec.addresses(client_port))}:{client_port}"
    ray_cli = str(Path(sys.executable).with_name("ray"))
    touch = f"import pathlib; pathlib.Path({str(marker)!r}).touch()"
    attempts = {
        "ray job submit": [ray_cli, "job", "submit", "--address", base_settings.dashboard_url,
                           "--no-wait", "--", *sec.touch_command(marker).split(" ", 2)],
        "ray.init(gcs)": [sys.executable, "-c",
                          f"import ray; ray.init(address={gcs!r}, log_to_driver=False); "
                          f"ray.get(ray.remote(lambda: exec({touch!r})).remote()); print('RAN')"],
        "ray.init(ray://)": [sys.executable, "-c",
                             f"import ray; ray.init({client!r}); "
                             f"ray.get(ray.remote(lambda: exec({touch!r})).remote()); "
                             "print('RAN')"],
    }  # fmt: skip
    # Each client gives up after a few real attempts, each refused, not after Ray's default
    # windows (a driver retries the GCS 20 times a second apart, a Ray Client backs off
    # 5 + 10 + 15 s): the same refusal, seen sooner.
    env.update(sec.SHORT_CONNECT_WINDOWS)

    def attempt(args: list[str]) -> tuple[int, str, float]:
        started = time.monotonic()
        try:
            result = sec.run(args, env, timeout_s=150)
            code, out = result.returncode, result.stdout + result.stderr
        except subprocess.TimeoutExpired as exc:
            code, out = -1, f"timed out: {exc.stdout!r} {exc.stderr!r}"
        return code, out, round(time.monotonic() - started, 1)

    with ThreadPoolExecutor(len(attempts)) as pool:  # independent clients, run side by side
        results = dict(zip(attempts, pool.map(attempt, attempts.values()), strict=True))
    outcomes = {}
    for name, (code, out, seconds) in results.items():
        outcomes[name] = (code, seconds)
        assert code != 0 and "RAN" not in out.splitlines(), (name, out[-3000:])
        # The Ray Client retries UNAUTHENTICATED until its connection timeout (the raw
        # UNAUTHENTICATED of its port is asserted in the port test above).
        why = ("unauthenticated", "authentication", "401", "ray client connection timeout")
        assert any(w in out.lower() for w in why), (name, out[-3000:])
    assert not marker.exists()
    print(f"\nwithout the token (exit code, seconds): {outcomes}")


# -- the scoring service -----------------------------------------------------------------


def test_the_api_key_guards_every_scoring_route(fraud_app):
    """The shared application's key, from its deployment args; the same checks on a key
    from the replica's environment are made in test_serving_swap.py, on the stack's key
    file below."""
    counts = sec.assert_key_guards(fraud_app.url, fraud_app.key)
    assert counts == {401: 3 * 7, 200: 3}, counts


@pytest.mark.timeout(240)
def test_by_default_a_replica_requires_the_stack_s_key_which_no_serve_config_shows(
    serving_world,
):
    """No key in the args and auth not switched off: the replica reads the key file that
    `make up` made (the Ray head passes its path), every scoring route needs that key, and
    neither Serve's config in the dashboard nor any answer carries it."""
    from ray import serve

    from driftloop.raycluster import dashboard_request

    settings = serving_world.settings
    if settings.serve_auth == "off":
        pytest.skip("the stack runs with DRIFTLOOP_SERVE_AUTH=off")
    [key] = support.stack_headers().values()
    name = support.app_name()
    url = f"{settings.serve_url}/{name}"
    try:
        support.deploy(name, support.serve_args(settings), support.user_config(serving_world.v1))
        assert sec.assert_key_guards(url, key) == {401: 3 * 7, 200: 3}
        shown = json.dumps(dashboard_request(settings, "GET", "/api/serve/applications/"))
        assert name in shown and key not in shown
        answers = [httpx.get(f"{url}/{path}", headers={"X-API-Key": key}, timeout=30).text
                   for path in ("healthz", "model", "openapi.json")]  # fmt: skip
        assert not [text for text in answers if key in text]
    finally:
        serve.delete(name)


@pytest.mark.timeout(300)
def test_a_replica_with_no_key_refuses_to_start_unless_auth_is_off(serving_world, tmp_path):
    """Its environment names no key and a key file that is not there: Serve reports the
    deployment failed with the replica's reason. With ``auth: off`` in its args the same
    deployment serves anyone."""
    from ray import serve

    settings = serving_world.settings
    refused, served = support.app_name(), support.app_name()
    keyless = {"DRIFTLOOP_SERVE_API_KEY": "", "DRIFTLOOP_SERVE_AUTH": "key",
               "DRIFTLOOP_SERVE_API_KEY_PATH": str(tmp_path / "absent")}  # fmt: skip
    config = support.user_config(serving_world.v1)
    try:
        with pytest.raises(RuntimeError, match="failed"):  # at its first start: the reason
            # does not change by retrying (Serve's default is three starts, ~10 s each here)
            support.deploy(refused, support.serve_args(settings), config, env=keyless,
                           max_constructor_retry_count=1)  # fmt: skip
        # The application's status names the deployment; the deployment's, the reason.
        reason = serve.status().applications[refused].deployments[support.DEPLOYMENT].message
        assert "no API key for the scoring routes" in reason, reason[-3000:]
        assert "DRIFTLOOP_SERVE_AUTH=off" in reason, reason[-3000:]
        # A new application: Serve keeps a failed one's replicas of the same code version.
        support.deploy(served, support.serve_args(settings, auth="off"), config, env=keyless)
        url = f"{settings.serve_url}/{served}"
        r = httpx.post(f"{url}/predict", json=support.transaction(1), timeout=30)
        assert r.status_code == 200, r.text
        spec = httpx.get(f"{url}/openapi.json", timeout=30).json()
        assert "securitySchemes" not in spec.get("components", {})
    finally:
        serve.delete(refused)
        serve.delete(served)


def test_a_model_file_with_one_flipped_byte_is_refused_and_the_old_model_keeps_serving(
    serving_world, fraud_app
):
    import xgboost

    v1, v2 = serving_world.v1, serving_world.v2
    url, headers = fraud_app.url, fraud_app.headers
    path = Path(v2.model_uri)
    original = path.read_bytes()
    tampered, _ = sec.flip_one_digit(original)
    # The control: the tampered file is still a model XGBoost loads; only the digest stops it.
    xgboost.Booster(model_file=bytearray(tampered))
    assert sum(a != b for a, b in zip(original, tampered, strict=True)) == 1
    refused = 'driftloop_serving_model_loads_total{outcome="refused"}'
    refused_before = support.metric(url, refused)
    path.write_bytes(tampered)
    try:
        with support.Load(f"{url}/predict", headers=headers) as load:
            load.wait_for(v1.version, 5)
            fraud_app.deploy(support.user_config(v2))
            n = load.count(v1.version)
            load.wait_for(v1.version, n + 10)
    finally:
        path.write_bytes(original)  # v2 belongs to the session's world
    health = httpx.get(f"{url}/healthz", timeout=30).json()
    assert health["ready"] and health["model_version"] == v1.version
    assert "DigestMismatch" in health["refused"]["reason"], health["refused"]
    assert hashlib.sha256(tampered).hexdigest() in health["refused"]["reason"]
    assert not [a for a in load.answers if a.status != 200]
    assert {a.version for a in load.answers} == {v1.version}
    assert support.metric(url, refused, at_least=refused_before + 1) == refused_before + 1
    info = httpx.get(f"{url}/model", headers=headers, timeout=30).json()
    assert info["model_version"] == v1.version and info["model_digest"] == v1.sha256


@pytest.mark.parametrize("protocol", range(6))
def test_a_pickle_is_never_unpickled_by_the_store_or_the_loader(serving_world, tmp_path, protocol):
    """Every pickle protocol (0 is text and slips past a 0x80 check): refused on put and,
    planted straight into the store with agreeing digests, refused on load, under either
    model file name; the payload's marker never appears."""
    marker = tmp_path / f"pwned-{protocol}"
    payload = sec.marker_pickle(marker, protocol)
    # The control: unpickling this payload does create the marker (in a child process).
    control = tmp_path / f"control-{protocol}"
    unpickle = "import pickle, sys; pickle.loads(sys.stdin.buffer.read())"
    subprocess.run([sys.executable, "-c", unpickle], input=sec.marker_pickle(control, protocol),
                   check=True, cwd=ROOT)  # fmt: skip
    assert control.exists()

    repo, v1 = serving_world.settings, serving_world.v1
    store = ModelStore(repo.model_store)
    for filename in ("model.json", "model.ubj", "model.pkl"):
        with pytest.raises(RefusedModel):
            store.put("fraud", payload, filename=filename, features=v1.read_features(),
                      lineage=v1.metadata)  # fmt: skip
    root = Path(repo.model_store)
    for model_file in ("model.json", "model.ubj"):
        planted = root / "fraud"
        version, digest = sec.forge_version(root, v1, payload, model_file)
        try:
            stored = store.get("fraud", version)  # the store accepts it: digests agree
            assert stored.read_model() == payload
            with pytest.raises(RefusedModel):
                LoadedModel.load(stored, expected_sha256=digest)
        finally:
            shutil.rmtree(planted / version)
    assert sec.never_appears(marker, 1)


def test_a_pickle_planted_in_the_store_is_refused_by_serving(serving_world, fraud_app, tmp_path):
    v1 = serving_world.v1
    url, headers = fraud_app.url, fraud_app.headers
    root = Path(serving_world.settings.model_store)
    marker = tmp_path / "pwned-serve"
    results = {}
    for protocol in (0, 5):
        version, digest = sec.forge_version(root, v1, sec.marker_pickle(marker, protocol),
                                            "model.json")  # fmt: skip
        config = {"model_uri": f"models:/fraud/{version}", "model_digest": digest}
        fraud_app.deploy(config)
        health = httpx.get(f"{url}/healthz", timeout=30).json()
        assert health["ready"] and health["model_version"] == v1.version, health
        assert "RefusedModel" in health["refused"]["reason"], health["refused"]
        r = httpx.post(f"{url}/predict", json=support.transaction(1), headers=headers, timeout=30)
        assert r.status_code == 200 and r.json()["model_version"] == v1.version
        results[protocol] = health["refused"]["reason"][:90]
    assert sec.never_appears(marker, 3), "the replica unpickled the payload"
    print(f"\npickles planted in the store, refused by the replica: {results}")


# -- fuzzing -------------------------------------------------------------------------------


@pytest.mark.timeout(300)
def test_the_openapi_fuzzed_over_http_passes_every_schemathesis_check(fraud_app):
    """The in-process fuzzing of test_serving_contract.py, through the Serve proxy on a
    deployment serving v1 with a key: every check, valid and invalid data, unexpected
    methods and content types; no 5xx allowed (a valid request is scored: 200)."""
    import schemathesis

    url, key = fraud_app.url, fraud_app.key  # serving v1, no refusal on record
    config = contract.config(max_examples=FUZZ_CASES // 2, headers={"X-API-Key": key},
                             base_url=url, workers=SENDERS)  # fmt: skip
    schema = schemathesis.openapi.from_url(f"{url}/openapi.json", config=config, timeout=30)
    report = contract.fuzz(schema)
    print(f"\n{report.requests} requests: {sorted(report.statuses.items())}")
    assert not report.errors, report.errors
    assert not report.failures, "\n".join(report.failures[:10])
    assert set(report.checks) == contract.all_checks(), contract.all_checks() - set(report.checks)
    assert report.requests >= FUZZ_CASES, report.statuses
    routes = report.by_route()
    for route in ("POST /predict", "POST /predict/batch"):
        assert {200, 400, 401, 415, 422} <= routes[route], (route, routes[route])
        assert all(status < 500 for status in routes[route]), (route, routes[route])
