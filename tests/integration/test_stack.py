"""The running local stack, as a user and `driftloop` see it."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from driftloop.apikey import fingerprint, read_key
from driftloop.kafka import EventProducer, KafkaUnavailable
from driftloop.metrics import serve_metrics
from driftloop.ports import PortInUse
from driftloop.raycluster import auth_token
from driftloop.settings import Settings
from driftloop.stack import LocalStack

# about 3x what it needs: a few `driftloop` CLI runs (~3 s) a test
pytestmark = pytest.mark.timeout(30)

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / ".driftloop" / "tools" / "bin" / "prometheus"
DL = [sys.executable, "-m", "driftloop"]


def _cli(*args: str, env: dict[str, str] | None = None, timeout_s: float = 300):
    return subprocess.run(
        [*DL, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
        env={**os.environ, **(env or {})}, check=False,
    )  # fmt: skip


def test_status_json_reports_each_component_with_topics_and_dashboard(settings):
    result = _cli("status", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    components = {c["name"]: c for c in json.loads(result.stdout)}
    assert components["kafka"]["up"] and components["ray"]["up"] and components["serve"]["up"]
    topics = components["kafka"]["detail"]["topics"]
    assert {"driftloop.transactions", "driftloop.dlq"} <= set(topics)
    assert all(len(t["end_offsets"]) == t["partitions"] for t in topics.values())
    assert components["ray"]["detail"]["dashboard"] == "http://127.0.0.1:8265"


def test_status_shows_where_the_serve_key_is_and_never_the_key(base_settings):
    """`make up` made the key (0600); status names its file and fingerprint, in both
    forms, and prints the key nowhere: status output ends up in logs."""
    if base_settings.serve_auth == "off":
        pytest.skip("the stack runs with DRIFTLOOP_SERVE_AUTH=off")
    key = read_key(base_settings)
    assert key, "`driftloop up` makes the Serve API key"
    text, as_json = _cli("status"), _cli("status", "--json")
    for result in (text, as_json):
        assert key not in result.stdout + result.stderr
    detail = {c["name"]: c for c in json.loads(as_json.stdout)}["serve"]["detail"]
    assert detail["auth"] == "X-API-Key required on the scoring routes"
    assert detail["api_key_sha256"] == fingerprint(key)
    assert f"api_key_sha256: {fingerprint(key)}" in text.stdout
    if base_settings.serve_api_key is None:  # not given by DRIFTLOOP_SERVE_API_KEY
        path = base_settings.serve_api_key_path
        assert detail["api_key_file"] == str(path)
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_up_is_idempotent_and_says_what_already_runs():
    result = _cli("up")
    assert result.returncode == 0, result.stderr
    if Settings().kafka_managed:
        assert "kafka: already running" in result.stdout
    if Settings().ray_managed:
        assert "ray: already running" in result.stdout
        assert "serve: already listening" in result.stdout
    if PROMETHEUS.is_file():  # `make up` and `make test` build it
        assert "prometheus: already running on http://127.0.0.1:" in result.stdout


def _listeners() -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr:
            found.setdefault(conn.laddr.port, set()).add(conn.laddr.ip)
    return found


def test_client_facing_ports_listen_on_loopback_only(base_settings):
    s = base_settings
    listeners = _listeners()
    ports = {"kafka": s.kafka_port, "dashboard": s.ray_dashboard_port, "serve": s.serve_port}
    if PROMETHEUS.is_file():
        ports["prometheus"] = s.prometheus_port
    for name, port in ports.items():
        assert port in listeners, f"{name} is not listening on {port}"
        addresses = {a.removeprefix("::ffff:") for a in listeners[port]}
        assert addresses == {"127.0.0.1"}, f"{name} listens on {addresses}"


def test_the_ray_dashboard_refuses_requests_without_the_token(base_settings):
    url = base_settings.dashboard_url + "/api/version"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(url, timeout=10)
    assert refused.value.code == 401
    token = auth_token(base_settings)
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as ok:
        assert json.loads(ok.read())["ray_version"]


def test_serve_runs_with_the_http_options_git_declares(base_settings):
    """Serve reads http_options only when it starts: `up` gives it serve.yaml's (the
    request timeout), with the settings' host and port."""
    import yaml

    from driftloop.raycluster import dashboard_request

    declared = yaml.safe_load((base_settings.deploy_dir / "apps/fraud/serve.yaml").read_text())
    live = dashboard_request(base_settings, "GET", "/api/serve/applications/")["http_options"]
    assert live["request_timeout_s"] == declared["http_options"]["request_timeout_s"]
    assert (live["host"], live["port"]) == (base_settings.bind_host, base_settings.serve_port)


def test_metrics_are_served_on_the_bind_host(base_settings):
    server = serve_metrics(base_settings, 0)
    try:
        with urllib.request.urlopen(server.url, timeout=10) as response:
            body = response.read().decode()
        assert "python_info" in body or "process_" in body
        assert server.host == "127.0.0.1"
        assert {a.removeprefix("::ffff:") for a in _listeners()[server.port]} == {"127.0.0.1"}
    finally:
        server.shutdown()


# -- bad input and environment ------------------------------------------------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(1)
        yield sock.getsockname()[1]


def test_a_taken_port_is_named_with_its_process(taken_port, tmp_path):
    settings = Settings(
        state_dir=tmp_path / "state", kafka_port=taken_port, kafka_controller_port=taken_port + 1,
        ray_address="127.0.0.1:6379",  # only Kafka is under test here
    )  # fmt: skip
    stack = LocalStack(settings)
    try:
        with pytest.raises(PortInUse) as info:
            stack.up(lambda line: None)
    finally:
        stack.down(lambda line: None)
    message = str(info.value)
    assert f"port {taken_port}" in message
    assert f"(pid {os.getpid()})" in message and "Kafka broker" in message


def test_a_taken_port_is_reported_by_the_cli(taken_port, tmp_path):
    env = {
        "DRIFTLOOP_STATE_DIR": str(tmp_path / "state"),
        "DRIFTLOOP_KAFKA_PORT": str(taken_port),
        "DRIFTLOOP_RAY_ADDRESS": "127.0.0.1:6379",
    }
    try:
        result = _cli("up", env=env)
    finally:
        _cli("down", env=env)
    assert result.returncode == 1
    assert f"port {taken_port}" in result.stderr and f"pid {os.getpid()}" in result.stderr


@pytest.fixture
def silent_server() -> Iterator[int]:
    """Accepts TCP connections and never answers: a hung broker."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        sock.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(sock.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield sock.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    sock.close()


@pytest.mark.parametrize("kind", ["refused", "silent"])
def test_an_unreachable_kafka_fails_clearly_within_the_timeout(kind, taken_port, silent_server):
    port = silent_server if kind == "silent" else _closed_port()
    settings = Settings(kafka_bootstrap_servers=f"127.0.0.1:{port}", kafka_timeout_s=2)
    started = time.monotonic()
    with pytest.raises(KafkaUnavailable, match=f"127.0.0.1:{port} did not answer within 2 s"):
        EventProducer(settings)
    assert time.monotonic() - started < 6


def test_the_cli_reports_an_unreachable_kafka_within_the_timeout():
    port = _closed_port()
    started = time.monotonic()
    result = _cli(
        "topics", env={"DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{port}",
                       "DRIFTLOOP_KAFKA_TIMEOUT_S": "2"},
    )  # fmt: skip
    assert result.returncode == 1
    assert f"Kafka at 127.0.0.1:{port} did not answer within 2 s" in result.stderr
    assert "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS" in result.stderr
    assert time.monotonic() - started < 20


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_existing_clusters_are_used_not_started_and_down_leaves_them(tmp_path, base_settings):
    env = {
        "DRIFTLOOP_STATE_DIR": str(tmp_path / "state"),
        "DRIFTLOOP_KAFKA_BOOTSTRAP_SERVERS": ",".join(base_settings.kafka_bootstrap),
        "DRIFTLOOP_RAY_ADDRESS": base_settings.ray_gcs_address,
        "DRIFTLOOP_RAY_DASHBOARD_URL": base_settings.dashboard_url,
    }
    up = _cli("up", env=env)
    assert up.returncode == 0, up.stderr
    assert "kafka: using the existing cluster" in up.stdout
    assert "ray: using the existing cluster" in up.stdout
    assert "started" not in up.stdout
    assert not (tmp_path / "state" / "supervisor.sock").exists()
    down = _cli("down", env=env)
    assert down.returncode == 0 and "nothing to stop" in down.stdout
    status = _cli("status", "--json", env=env)
    components = {c["name"]: c for c in json.loads(status.stdout)}
    assert components["kafka"]["up"] and not components["kafka"]["managed"]
    assert components["ray"]["up"] and not components["ray"]["managed"]


def test_missing_java_is_reported_with_what_to_install(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "python").symlink_to(sys.executable)
    env = {"PATH": str(bin_dir), "DRIFTLOOP_STATE_DIR": str(tmp_path / "state")}
    result = _cli("up", env=env)
    assert result.returncode == 1
    assert "install OpenJDK 17" in result.stderr
    assert not (tmp_path / "state").exists()
